"""Inconsistent answers: pairs of answers that contradict each other (pure, no Django).

A flagged response is not rejected: the investor is asked to confirm it, and an
advisor must review the profile before any recommendation for that investor is
approved. Each rule names the questions it reads; a rule whose questions a
questionnaire version does not ask is skipped. Documented in docs/scoring.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .scoring import Definition, ScoreResult


@dataclass(frozen=True)
class Flag:
    code: str
    message: str


@dataclass(frozen=True)
class ConsistencyRule:
    code: str
    questions: tuple[str, ...]
    applies: Callable[[Mapping[str, str], Mapping[str, int], ScoreResult], bool]
    message: str


def _points(definition: Definition, answers: Mapping[str, str]) -> dict[str, int]:
    return {q.key: q.choice(answers[q.key]).points for q in definition.questions if q.key in answers}


RULES: tuple[ConsistencyRule, ...] = (
    ConsistencyRule(
        "panic_seller_seeks_max_growth",
        ("fall_10", "objective"),
        lambda a, p, r: a["fall_10"] == "sell_all" and a["objective"] == "max_growth",
        "You would sell everything after a 10% fall, yet you seek maximum growth, which means falls of 30% or more.",
    ),
    ConsistencyRule(
        "short_horizon_aggressive_tolerance",
        ("horizon",),
        lambda a, p, r: a["horizon"] == "lt3" and r.tolerance_level >= 7,
        "You need this money within 3 years, yet your answers ask for high risk; a bad year could leave no time "
        "to recover.",
    ),
    ConsistencyRule(
        "calmer_in_bigger_falls",
        ("fall_10", "fall_35"),
        lambda a, p, r: p["fall_35"] - p["fall_10"] >= 2,
        "You would react more calmly to a 35% fall than to a 10% fall.",
    ),
    ConsistencyRule(
        "expert_without_experience",
        ("knowledge", "experience"),
        lambda a, p, r: a["knowledge"] == "expert" and a["experience"] == "none",
        "You rate your knowledge as expert but have no investing experience.",
    ),
    ConsistencyRule(
        "sure_thing_and_widest_range",
        ("sure_gain", "trade_off"),
        lambda a, p, r: a["sure_gain"] == "sure" and a["trade_off"] == "widest_range",
        "You prefer a sure gain to any gamble, yet you chose the widest range of outcomes.",
    ),
    ConsistencyRule(
        "needs_money_soon_but_long_horizon",
        ("liquidity_3y", "horizon"),
        lambda a, p, r: a["liquidity_3y"] == "most" and a["horizon"] in ("10to20", "gt20"),
        "You may need most of this money within 3 years, yet you gave a horizon of more than 10 years.",
    ),
)


def detect_inconsistencies(definition: Definition, answers: Mapping[str, str], result: ScoreResult) -> list[Flag]:
    asked = {q.key for q in definition.questions}
    points = _points(definition, answers)
    return [
        Flag(rule.code, rule.message)
        for rule in RULES
        if set(rule.questions) <= asked and rule.applies(answers, points, result)
    ]
