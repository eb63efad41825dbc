"""Behavioural risk score, as pure computation (numpy and pandas in, arrays out; no Django).

What the investor did, as recorded by the product (``BehaviorEvent``), is scored with a stated weight per event
type that halves every ``half_life_days`` (documented in ``docs/behaviour.md``)::

    contribution(event) = weight(type) * 0.5 ** (age_days / half_life_days(type))
    score(investor)     = sum of the contributions of their events

Fearful behaviour has negative weights, adding money during a fall a positive one. An event counts from the day
it happened (age 0) until it is ``HALF_LIVES_COUNTED`` half-lives old (by then it is worth 1/8 of its weight) and
never beyond ``LOOKBACK_DAYS``; events dated after the scoring date are not counted.

The score moves the effective risk level within a bound: ``adjustment_for`` is -1 (one level down) when the
score is at or below ``ADJUST_THRESHOLD`` and 0 otherwise, never positive and never below -1, whatever the
events. A score at or below ``ADVISOR_THRESHOLD`` suggests more than one level down: that only an advisor
decides (an override), so ``needs_advisor`` only says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd


@dataclass(frozen=True)
class EventWeight:
    code: str  # the BehaviorEventType value
    weight: float  # points the event is worth on the day it happens; negative = fearful
    half_life_days: float  # the event is worth half as much after this many days
    phrase: str  # how a profile reason words it


EVENT_WEIGHTS: tuple[EventWeight, ...] = (
    # Asking to sell everything (or withdraw everything) in a fall is the behaviour the score exists to catch.
    EventWeight("panic_sell_request", -3.0, 180, "asked to sell everything during a market fall"),
    # Lowering one's own answers after a loss is a stated change of attitude: strong and slow to fade.
    EventWeight("answers_changed_after_loss", -2.0, 365, "lowered their questionnaire answers after losses"),
    EventWeight("contributions_paused", -1.5, 90, "stopped monthly contributions during a market fall"),
    # Anxiety, not a decision: weak and quick to fade.
    EventWeight("login_spike_in_drawdown", -1.0, 30, "logged in far more often than usual during a market fall"),
    # Declining a rebalance (which usually buys what fell) in a drawdown; the advisor's reason may be unrelated.
    EventWeight("recommendation_rejected", -0.5, 60, "had a recommendation rejected during a market fall"),
    # Buying in a fall offsets fearful events, but can never raise the level (see adjustment_for).
    EventWeight("added_money_in_fall", 1.0, 180, "added money during a market fall"),
)
WEIGHTS: dict[str, EventWeight] = {w.code: w for w in EVENT_WEIGHTS}
CODES: tuple[str, ...] = tuple(w.code for w in EVENT_WEIGHTS)
_WEIGHT = np.array([w.weight for w in EVENT_WEIGHTS], dtype=np.float64)
_HALF_LIFE = np.array([w.half_life_days for w in EVENT_WEIGHTS], dtype=np.float64)
_CODE_INDEX = pd.Index(CODES)

HALF_LIVES_COUNTED = 3  # older events are worth under 1/8 of their weight: ignored
LOOKBACK_DAYS = 730  # and nothing older than two years counts, whatever its half-life
_MAX_AGE = np.minimum(HALF_LIVES_COUNTED * _HALF_LIFE, LOOKBACK_DAYS)

ADJUST_THRESHOLD = -3.0  # at or below: one level down (one panic-sell request on the day, or several lesser events)
ADVISOR_THRESHOLD = -6.0  # at or below: an advisor should consider more than one level down
SCORE_LIMIT = 1000.0  # scores are clipped to +-1000 (stored with 4 decimals); far past both thresholds


@dataclass(frozen=True)
class Scores:
    """Per investor (sorted by id): the score, the events counted, and the contribution and count per event type
    (columns in ``CODES`` order), which is what a reason explains."""

    investor_ids: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float64]
    events_counted: npt.NDArray[np.int64]
    contributions: npt.NDArray[np.float64]  # shape (investors, len(CODES))
    counts: npt.NDArray[np.int64]  # shape (investors, len(CODES))

    def __len__(self) -> int:
        return len(self.investor_ids)


def type_indexes(event_type_codes: Sequence[str] | npt.ArrayLike) -> npt.NDArray[np.intp]:
    """Column of each event type in ``CODES``; an unknown type is an error, not a silent zero."""
    indexes = _CODE_INDEX.get_indexer(pd.Index(np.asarray(event_type_codes, dtype=object)))
    if len(indexes) and indexes.min() < 0:
        unknown = sorted({str(c) for c, i in zip(np.asarray(event_type_codes), indexes, strict=True) if i < 0})
        raise ValueError(f"unknown behaviour event types: {unknown}")
    return indexes


def decayed(
    type_indexes: npt.NDArray[np.intp], ages_days: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Each event's contribution on the scoring date, and whether it is counted at all."""
    ages = np.asarray(ages_days, dtype=np.float64)
    half_life = _HALF_LIFE[type_indexes]
    counted = (ages >= 0) & (ages <= _MAX_AGE[type_indexes])
    values = np.where(counted, _WEIGHT[type_indexes] * np.exp2(-np.where(counted, ages, 0.0) / half_life), 0.0)
    return values, counted


def score_events(
    investor_ids: npt.ArrayLike, event_type_codes: Sequence[str] | npt.ArrayLike, ages_days: npt.ArrayLike
) -> Scores:
    """Score every investor that has at least one event (one row per event in the three arrays), vectorised.

    Investors whose events are all too old (or in the future) get a score of 0 with 0 events counted.
    """
    ids = np.asarray(investor_ids, dtype=np.int64)
    ages = np.asarray(ages_days, dtype=np.float64)
    types = type_indexes(event_type_codes)
    if not len(ids) == len(types) == len(ages):
        raise ValueError("investor_ids, event_type_codes and ages_days must have one entry per event")
    values, counted = decayed(types, ages)
    investor_rows, unique_ids = pd.factorize(ids, sort=True)  # hashing: faster than np.unique's full sort
    n_types = len(CODES)
    cells = investor_rows * n_types + types  # one cell per (investor, event type)
    size = len(unique_ids) * n_types
    contributions = np.bincount(cells, weights=values, minlength=size).astype(np.float64).reshape(-1, n_types)
    counts = np.bincount(cells[counted], minlength=size).astype(np.int64).reshape(-1, n_types)
    scores = np.clip(contributions.sum(axis=1), -SCORE_LIMIT, SCORE_LIMIT)
    return Scores(unique_ids, scores, counts.sum(axis=1), contributions, counts)


def adjustment_for(score: float) -> int:
    """The automatic change of the effective risk level: -1 or 0, never positive, never below -1."""
    return -1 if score <= ADJUST_THRESHOLD else 0


def adjustments_for(scores: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """``adjustment_for`` over an array (NaN, like any score above the threshold, gives 0)."""
    return np.where(np.asarray(scores, dtype=np.float64) <= ADJUST_THRESHOLD, -1, 0).astype(np.int64)


def needs_advisor(score: float) -> bool:
    """More than one level down may be warranted: an advisor decides (behaviour alone never goes further)."""
    return score <= ADVISOR_THRESHOLD


def explain(contributions: Sequence[float], counts: Sequence[int]) -> list[str]:
    """One investor's events in plain words, the heaviest first: 'asked to sell ... (1 event, -2.85)'."""
    parts = [
        (value, f"{w.phrase} ({count} event{'s' if count != 1 else ''}, {value:+.2f})")
        for w, value, count in zip(EVENT_WEIGHTS, contributions, counts, strict=True)
        if count
    ]
    return [text for _, text in sorted(parts, key=lambda part: part[0])]
