"""Scoring: scores 0-100, levels 1-10; more risk-bearing answers never lower a score or the level;
capacity (and goal horizons) cap tolerance. For every shipped questionnaire version."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from profiling.scoring import (
    DEFAULT_VERSION,
    DEFINITIONS_DIR,
    SHIPPED_VERSIONS,
    Definition,
    DefinitionError,
    Dimension,
    InvalidAnswersError,
    definition_from_json,
    level_from_score,
    load_definition,
    score_answers,
)

DEFINITIONS = [load_definition(v) for v in SHIPPED_VERSIONS]
DEFAULT = load_definition(DEFAULT_VERSION)


def answers_for(definition: Definition) -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries({q.key: st.sampled_from([c.key for c in q.choices]) for q in definition.questions})


def extreme(definition: Definition, *, bold: bool, dimension: Dimension | None = None) -> dict[str, str]:
    pick = max if bold else min
    return {
        q.key: pick(q.choices, key=lambda c: c.points).key
        for q in definition.questions
        if dimension is None or q.dimension is dimension
    }


any_response = st.sampled_from(DEFINITIONS).flatmap(lambda d: st.tuples(st.just(d), answers_for(d)))


def test_default_questionnaire_covers_tolerance_and_capacity() -> None:
    keys = {q.key for q in DEFAULT.questions}
    assert 12 <= len(DEFAULT.questions) <= 20
    tolerance = {"fall_10", "fall_20", "fall_35", "sure_gain", "trade_off", "knowledge", "experience", "past_downturn"}
    capacity = {"age", "horizon", "income", "income_stability", "emergency_savings", "invested_share", "dependents",
                "liquidity_3y"}  # fmt: skip
    assert tolerance | capacity <= keys
    assert {q.key for q in DEFAULT.questions if q.dimension is Dimension.TOLERANCE} >= tolerance
    assert {q.key for q in DEFAULT.questions if q.dimension is Dimension.CAPACITY} >= capacity


@pytest.mark.parametrize("definition", DEFINITIONS, ids=lambda d: d.version)
def test_most_cautious_and_most_aggressive_answers_reach_the_ends(definition: Definition) -> None:
    assert score_answers(definition, extreme(definition, bold=False)).risk_level == 1
    bold = score_answers(definition, extreme(definition, bold=True))
    assert bold.risk_level == 10 and bold.tolerance_score == 100.0 and bold.capacity_score == 100.0


def test_worked_example_from_the_docs() -> None:
    # docs/scoring.md walks through this response to the default questionnaire.
    answers = extreme(DEFAULT, bold=True) | {"emergency_savings": "lt3", "dependents": "two", "horizon": "10to20"}
    result = score_answers(DEFAULT, answers)
    # capacity: 4 points everywhere except emergency_savings 1 (w2), dependents 2 (w1), horizon 3 (w3):
    # (56 - 2*3 - 1*2 - 3*1) / 56 = 45/56 = 80.36 -> level 9; tolerance 100 -> level 10; capacity caps it at 9
    assert (result.capacity_score, result.tolerance_score) == (80.36, 100.0)
    assert (result.tolerance_level, result.capacity_level, result.risk_level) == (10, 9, 9)
    assert result.limited_by is Dimension.CAPACITY
    capped = score_answers(DEFAULT, answers, capacity_cap=3)
    assert (capped.capacity_level, capped.risk_level, capped.capacity_cap) == (3, 3, 3)


@given(any_response)
def test_level_is_min_of_tolerance_and_capacity_levels(response: tuple[Definition, dict[str, str]]) -> None:
    definition, answers = response
    result = score_answers(definition, answers)
    assert 1 <= result.risk_level <= 10
    assert result.risk_level == min(result.tolerance_level, result.capacity_level)
    assert 0 <= result.tolerance_score <= 100 and 0 <= result.capacity_score <= 100


@given(any_response, st.data())
def test_a_more_risk_bearing_answer_never_lowers_a_score_or_the_level(
    response: tuple[Definition, dict[str, str]], data: st.DataObject
) -> None:
    definition, answers = response
    q = data.draw(st.sampled_from(definition.questions))
    current = q.choice(answers[q.key]).points
    changed = {**answers, q.key: data.draw(st.sampled_from([c.key for c in q.choices if c.points >= current]))}
    before, after = score_answers(definition, answers), score_answers(definition, changed)
    assert after.tolerance_score >= before.tolerance_score  # more tolerant answers never lower tolerance
    assert after.capacity_score >= before.capacity_score  # higher capacity never lowers capacity
    assert after.risk_level >= before.risk_level


@given(any_response, st.integers(min_value=1, max_value=10))
def test_the_level_never_exceeds_what_capacity_allows(response: tuple[Definition, dict[str, str]], cap: int) -> None:
    definition, answers = response
    bold = answers | extreme(definition, bold=True, dimension=Dimension.TOLERANCE)
    result = score_answers(definition, bold)
    assert result.risk_level == result.capacity_level
    capped = score_answers(definition, bold, capacity_cap=cap)
    assert capped.risk_level <= min(cap, level_from_score(capped.capacity_score))


def test_level_from_score_boundaries() -> None:
    assert [level_from_score(s) for s in (0, 9.99, 10.0, 49.99, 50, 89.99, 90, 100)] == [1, 1, 2, 5, 6, 9, 10, 10]


def test_missing_unknown_and_invalid_answers_are_named() -> None:
    answers = extreme(DEFAULT, bold=False)
    del answers["age"]
    answers["horizon"] = "tomorrow"
    answers["favourite_colour"] = "blue"
    with pytest.raises(InvalidAnswersError) as info:
        score_answers(DEFAULT, answers)
    assert set(info.value.errors) == {"age", "horizon", "favourite_colour"}
    assert "must be answered" in info.value.errors["age"]
    assert "'tomorrow' is not a valid choice" in info.value.errors["horizon"]


def test_answers_to_an_old_version_are_scored_by_that_version() -> None:
    old = load_definition("2026.1")
    answers = extreme(old, bold=False)
    assert score_answers(old, answers).version == "2026.1"
    with pytest.raises(InvalidAnswersError):
        score_answers(DEFAULT, answers)  # the new version asks other questions


def test_drivers_explain_the_score() -> None:
    result = score_answers(DEFAULT, extreme(DEFAULT, bold=False))
    assert all(d.direction == "lowered" for d in result.drivers)
    assert result.drivers[0].question in ("horizon", "fall_20")  # weight 3: the largest effects


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["sections"][0]["questions"].append(d["sections"][0]["questions"][0]), "unique"),
        (lambda d: d["sections"][0]["questions"][0]["choices"][0].update(points=7), "points within 0-4"),
        (lambda d: d["sections"][0]["questions"][0].update(weight=0), "weight must be positive"),
        (lambda d: d.pop("sections"), "malformed"),
    ],
)
def test_malformed_definitions_are_refused(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    data = json.loads((DEFINITIONS_DIR / f"{DEFAULT_VERSION}.json").read_text())
    mutate(data)
    with pytest.raises(DefinitionError, match=message):
        definition_from_json(data)
