"""Behavioural score: decay by half-lives, fearful events never raise a score, and the automatic adjustment stays
within its bound (-1 or 0) whatever the event stream."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from profiling.behaviour import (
    ADJUST_THRESHOLD,
    ADVISOR_THRESHOLD,
    CODES,
    EVENT_WEIGHTS,
    HALF_LIVES_COUNTED,
    LOOKBACK_DAYS,
    WEIGHTS,
    adjustment_for,
    adjustments_for,
    explain,
    needs_advisor,
    score_events,
)
from profiling.models import BehaviorEventType

FEARFUL = [w.code for w in EVENT_WEIGHTS if w.weight < 0]

events = st.lists(
    st.tuples(st.integers(1, 8), st.sampled_from(CODES), st.integers(-30, 1000)),
    max_size=300,
)


def score_of(stream: list[tuple[int, str, int]], investor: int) -> float:
    if not stream:
        return 0.0
    ids, codes, ages = zip(*stream, strict=True)
    scores = score_events(ids, codes, ages)
    rows = np.flatnonzero(scores.investor_ids == investor)
    return float(scores.scores[rows[0]]) if len(rows) else 0.0


def test_the_table_covers_every_event_type_the_product_records() -> None:
    assert set(CODES) == set(BehaviorEventType.values)
    assert all(w.half_life_days > 0 for w in EVENT_WEIGHTS)
    assert [w.code for w in EVENT_WEIGHTS if w.weight > 0] == ["added_money_in_fall"]


@given(events)
def test_the_adjustment_stays_in_its_bound_whatever_the_event_stream(stream: list[tuple[int, str, int]]) -> None:
    if not stream:
        return
    ids, codes, ages = zip(*stream, strict=True)
    scores = score_events(ids, codes, ages)
    assert set(adjustments_for(scores.scores).tolist()) <= {-1, 0}
    assert all(adjustment_for(float(s)) in (-1, 0) for s in scores.scores)
    assert np.array_equal(adjustments_for(scores.scores), [adjustment_for(float(s)) for s in scores.scores])


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_the_adjustment_is_never_positive_and_never_below_minus_one(score: float) -> None:
    assert adjustment_for(score) in (-1, 0)
    assert adjustments_for([score]).tolist() in ([-1], [0])


@pytest.mark.parametrize("weight", EVENT_WEIGHTS, ids=lambda w: w.code)
def test_decay_halves_a_weight_after_each_half_life(weight) -> None:  # type: ignore[no-untyped-def]
    ages = [0, weight.half_life_days, 2 * weight.half_life_days]
    scores = score_events([1, 2, 3], [weight.code] * 3, ages)
    assert scores.scores[0] == weight.weight
    assert math.isclose(scores.scores[1], weight.weight / 2, rel_tol=1e-12)
    assert math.isclose(scores.scores[2], weight.weight / 4, rel_tol=1e-12)


def test_events_too_old_or_after_the_scoring_date_are_not_counted() -> None:
    panic = WEIGHTS["panic_sell_request"]
    last_counted = min(HALF_LIVES_COUNTED * panic.half_life_days, LOOKBACK_DAYS)
    scores = score_events([1, 2, 3], ["panic_sell_request"] * 3, [last_counted, last_counted + 1, -1])
    assert math.isclose(scores.scores[0], panic.weight / 2**HALF_LIVES_COUNTED, rel_tol=1e-12)
    assert scores.scores[1:].tolist() == [0.0, 0.0]
    assert scores.events_counted.tolist() == [1, 0, 0]


@given(events, st.integers(1, 8), st.sampled_from(FEARFUL), st.integers(-30, 1000))
def test_one_more_fearful_event_never_raises_the_score(
    stream: list[tuple[int, str, int]], investor: int, code: str, age: int
) -> None:
    assert score_of([*stream, (investor, code, age)], investor) <= score_of(stream, investor)


@given(events, st.integers(1, 8), st.integers(0, 360), st.integers(1, 360))
def test_a_fearful_event_weighs_less_as_it_ages(stream, investor: int, age: int, later: int) -> None:  # type: ignore[no-untyped-def]
    fresh = score_of([*stream, (investor, "panic_sell_request", age)], investor)
    aged = score_of([*stream, (investor, "panic_sell_request", age + later)], investor)
    assert fresh <= aged


def test_scores_are_summed_per_investor_and_explained_per_type() -> None:
    # given: investor 7 asked to sell everything today and paused contributions 90 days ago; investor 3 added money
    scores = score_events([7, 3, 7], ["panic_sell_request", "added_money_in_fall", "contributions_paused"], [0, 0, 90])
    # then
    assert scores.investor_ids.tolist() == [3, 7]
    assert scores.scores.tolist() == [1.0, -3.75]
    assert scores.events_counted.tolist() == [1, 2]
    assert [adjustment_for(s) for s in scores.scores] == [0, -1]
    assert explain(scores.contributions[1].tolist(), scores.counts[1].tolist()) == [
        "asked to sell everything during a market fall (1 event, -3.00)",
        "stopped monthly contributions during a market fall (1 event, -0.75)",
    ]


def test_thresholds() -> None:
    assert adjustment_for(ADJUST_THRESHOLD) == -1 and adjustment_for(ADJUST_THRESHOLD + 0.0001) == 0
    assert needs_advisor(ADVISOR_THRESHOLD) and not needs_advisor(ADVISOR_THRESHOLD + 0.0001)
    assert adjustment_for(-1e9) == -1  # far below: still one step; more is the advisor's decision


def test_unknown_event_types_and_ragged_input_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown behaviour event types"):
        score_events([1], ["panicked"], [0])
    with pytest.raises(ValueError, match="one entry per event"):
        score_events([1, 2], ["panic_sell_request"], [0])


def test_no_events_no_scores() -> None:
    scores = score_events([], [], [])
    assert len(scores) == 0 and scores.contributions.shape == (0, len(CODES))
