"""Scoring: complete answers map to a level 1-10; more risk-bearing answers never lower it; capacity caps tolerance."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from profiling.scoring import (
    QUESTIONS,
    Dimension,
    InvalidAnswersError,
    level_from_score,
    score_answers,
)


def answers_strategy() -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries({q.key: st.sampled_from([c.key for c in q.choices]) for q in QUESTIONS})


def points(question_key: str, answer: str) -> int:
    return next(q for q in QUESTIONS if q.key == question_key).choice(answer).points


def test_at_least_six_questions_cover_tolerance_and_capacity() -> None:
    keys = {q.key for q in QUESTIONS}
    assert len(QUESTIONS) >= 6
    assert {"horizon", "age", "fall_reaction", "income_stability", "emergency_savings", "experience"} <= keys
    assert {q.dimension for q in QUESTIONS} == {Dimension.TOLERANCE, Dimension.CAPACITY}


def test_most_cautious_and_most_aggressive_answers_reach_the_ends() -> None:
    cautious = {q.key: min(q.choices, key=lambda c: c.points).key for q in QUESTIONS}
    bold = {q.key: max(q.choices, key=lambda c: c.points).key for q in QUESTIONS}
    assert score_answers(cautious).risk_level == 1
    assert score_answers(bold).risk_level == 10
    assert score_answers(bold).tolerance_score == 100.0


def test_worked_example_from_the_docs() -> None:
    # docs/scoring.md walks through this response.
    result = score_answers(
        {
            "horizon": "gt20",
            "age": "30to44",
            "income_stability": "stable",
            "emergency_savings": "lt3",
            "fall_reaction": "buy_more",
            "experience": "extensive",
            "objective": "max_growth",
            "trade_off": "widest_range",
        }
    )
    # capacity: (3*4 + 2*3 + 2*3 + 2*1) / (9*4) = 26/36 = 72.22 -> level 8
    # tolerance: all 4 points -> 100 -> level 10; capacity caps it at 8
    assert result.capacity_score == 72.22
    assert result.tolerance_score == 100.0
    assert (result.tolerance_level, result.capacity_level, result.risk_level) == (10, 8, 8)
    assert result.limited_by is Dimension.CAPACITY


@given(answers_strategy())
def test_level_is_min_of_tolerance_and_capacity_levels(answers: dict[str, str]) -> None:
    result = score_answers(answers)
    assert 1 <= result.risk_level <= 10
    assert result.risk_level == min(result.tolerance_level, result.capacity_level)
    assert result.risk_level <= result.capacity_level  # capacity caps tolerance
    assert 0 <= result.tolerance_score <= 100 and 0 <= result.capacity_score <= 100


@given(answers_strategy(), st.sampled_from(QUESTIONS), st.data())
def test_a_more_risk_bearing_answer_never_lowers_the_level(
    answers: dict[str, str], question: object, data: st.DataObject
) -> None:
    q = question  # type: ignore[assignment]
    current = points(q.key, answers[q.key])  # type: ignore[attr-defined]
    bolder = [c.key for c in q.choices if c.points >= current]  # type: ignore[attr-defined]
    changed = {**answers, q.key: data.draw(st.sampled_from(bolder))}  # type: ignore[attr-defined]
    before, after = score_answers(answers), score_answers(changed)
    assert after.risk_level >= before.risk_level
    assert after.tolerance_score >= before.tolerance_score
    assert after.capacity_score >= before.capacity_score


@given(answers_strategy())
def test_high_tolerance_never_lifts_level_above_capacity(answers: dict[str, str]) -> None:
    bold = {
        **answers,
        **{q.key: max(q.choices, key=lambda c: c.points).key for q in QUESTIONS if q.dimension is Dimension.TOLERANCE},
    }
    result = score_answers(bold)
    assert result.risk_level == result.capacity_level


def test_level_from_score_boundaries() -> None:
    assert [level_from_score(s) for s in (0, 9.99, 10.0, 49.99, 50, 89.99, 90, 100)] == [1, 1, 2, 5, 6, 9, 10, 10]


def test_missing_unknown_and_invalid_answers_are_named() -> None:
    answers = {q.key: q.choices[0].key for q in QUESTIONS}
    del answers["age"]
    answers["horizon"] = "tomorrow"
    answers["favourite_colour"] = "blue"
    with pytest.raises(InvalidAnswersError) as info:
        score_answers(answers)
    assert set(info.value.errors) == {"age", "horizon", "favourite_colour"}
    assert "must be answered" in info.value.errors["age"]
    assert "'tomorrow' is not a valid choice" in info.value.errors["horizon"]


def test_drivers_explain_the_score() -> None:
    cautious = {q.key: min(q.choices, key=lambda c: c.points).key for q in QUESTIONS}
    result = score_answers(cautious)
    assert all(d.direction == "lowered" for d in result.drivers)
    assert result.drivers[0].question in ("horizon", "fall_reaction")  # weight 3: the largest effects
