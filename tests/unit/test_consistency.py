"""The inconsistency detector on a table of answer sets with their expected flags."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from profiling.consistency import detect_inconsistencies
from profiling.horizon import GoalHorizon, goal_capacity_cap
from profiling.scoring import load_definition, score_answers
from tests.factories import BALANCED_ANSWERS

DEFAULT = load_definition()
BOLD_TOLERANCE = {
    "fall_10": "buy_more", "fall_20": "buy_more", "fall_35": "buy_more", "sure_gain": "very_long_shot",
    "trade_off": "widest_range", "knowledge": "expert", "experience": "extensive", "past_downturn": "bought",
    "objective": "max_growth",
}  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        (
            {"fall_10": "sell_all", "fall_20": "sell_all", "fall_35": "sell_all", "objective": "max_growth"},
            ["panic_seller_seeks_max_growth"],
        ),
        ({"fall_10": "sell_all", "fall_35": "hold"}, ["calmer_in_bigger_falls"]),
        ({"fall_10": "sell_some", "fall_35": "rebalance"}, ["calmer_in_bigger_falls"]),
        ({"fall_10": "sell_some", "fall_35": "hold"}, []),  # one step calmer is within noise
        ({**BOLD_TOLERANCE, "horizon": "lt3"}, ["short_horizon_aggressive_tolerance"]),
        ({"horizon": "lt3"}, []),  # a short horizon with moderate tolerance is consistent
        ({"knowledge": "expert", "experience": "none"}, ["expert_without_experience"]),
        ({"sure_gain": "sure", "trade_off": "widest_range"}, ["sure_thing_and_widest_range"]),
        ({"liquidity_3y": "most", "horizon": "gt20"}, ["needs_money_soon_but_long_horizon"]),
        (
            {"fall_10": "sell_all", "objective": "max_growth", "fall_35": "buy_more"},
            ["panic_seller_seeks_max_growth", "calmer_in_bigger_falls"],
        ),
    ],
)
def test_flags(changes: dict[str, str], expected: list[str]) -> None:
    answers = BALANCED_ANSWERS | changes
    flags = detect_inconsistencies(DEFAULT, answers, score_answers(DEFAULT, answers))
    assert [f.code for f in flags] == expected
    assert all(f.message for f in flags)


def test_rules_skip_questions_an_old_version_does_not_ask() -> None:
    old = load_definition("2026.1")
    answers = {q.key: q.choices[0].key for q in old.questions}  # "sell_all" etc. exist only under other keys
    assert detect_inconsistencies(old, answers, score_answers(old, answers)) == []


TODAY = date(2026, 11, 22)


def goal(name: str, amount: str, years: float) -> GoalHorizon:
    return GoalHorizon(name, Decimal(amount), TODAY + timedelta(days=round(years * 365.25)))


@pytest.mark.parametrize(
    ("goals", "cap"),
    [
        ([], None),
        ([goal("retire", "500000", 25)], None),
        ([goal("house", "60000", 2.5), goal("retire", "100000", 25)], 3),  # 37.5% due within 3 years
        ([goal("car", "10000", 2), goal("retire", "100000", 25)], None),  # 9%: too small a share to cap
        ([goal("house", "60000", 0.5), goal("retire", "100000", 25)], 2),  # within a year
        ([goal("house", "60000", 3.5), goal("retire", "100000", 25)], None),
    ],
)
def test_goal_horizons_cap_capacity(goals: list[GoalHorizon], cap: int | None) -> None:
    result = goal_capacity_cap(goals, TODAY)
    assert (result.level if result else None) == cap
    if result:
        assert "capped at level" in result.reason
