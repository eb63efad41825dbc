"""Risk questionnaires and their scoring, as pure functions (no Django).

A questionnaire is a versioned definition (``profiling/questionnaires/<version>.json``,
loaded into the database by a migration and never changed afterwards): sections of
questions, each question in one dimension with a weight, each choice with points
from 0 (most cautious) to 4 (most risk-bearing). Scoring, documented in ``docs/scoring.md``:

* **tolerance** (willingness) and **capacity** (ability) scores are each
  ``100 * sum(weight * points) / sum(weight * 4)`` over that dimension's questions: 0 to 100;
* a score maps to a level with ``level(score) = min(10, 1 + floor(score / 10))``;
* an optional cap on capacity (near goals, see ``profiling/horizon.py``) lowers the capacity level;
* **capacity caps tolerance**: ``risk_level = min(tolerance_level, capacity_level)``.

Every piece is non-decreasing in each answer's points, so a more risk-bearing
answer never lowers either score or the level.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

DEFINITIONS_DIR = Path(__file__).resolve().parent / "questionnaires"
DEFAULT_VERSION = "2026.2"
SHIPPED_VERSIONS = ("2026.1", "2026.2")
MAX_POINTS = 4
NEUTRAL_POINTS = 2


class Dimension(StrEnum):
    TOLERANCE = "tolerance"
    CAPACITY = "capacity"


@dataclass(frozen=True)
class Choice:
    key: str
    label: str
    points: int


@dataclass(frozen=True)
class Question:
    key: str
    text: str
    dimension: Dimension
    weight: int
    choices: tuple[Choice, ...]

    def choice(self, key: str) -> Choice:
        for choice in self.choices:
            if choice.key == key:
                return choice
        raise KeyError(key)


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    questions: tuple[Question, ...]


@dataclass(frozen=True)
class Definition:
    version: str
    title: str
    sections: tuple[Section, ...]

    @property
    def questions(self) -> tuple[Question, ...]:
        return tuple(q for s in self.sections for q in s.questions)

    def question(self, key: str) -> Question:
        for q in self.questions:
            if q.key == key:
                return q
        raise KeyError(key)


class DefinitionError(ValueError):
    pass


def definition_from_json(data: Mapping[str, Any]) -> Definition:
    """Build and check a definition: unique keys, points 0-4, both dimensions present."""
    try:
        sections = tuple(
            Section(
                key=s["key"],
                title=s["title"],
                questions=tuple(
                    Question(
                        key=q["key"],
                        text=q["text"],
                        dimension=Dimension(q["dimension"]),
                        weight=int(q["weight"]),
                        choices=tuple(Choice(c["key"], c["label"], int(c["points"])) for c in q["choices"]),
                    )
                    for q in s["questions"]
                ),
            )
            for s in data["sections"]
        )
        definition = Definition(version=str(data["version"]), title=str(data["title"]), sections=sections)
    except (KeyError, TypeError, ValueError) as exc:
        raise DefinitionError(f"malformed questionnaire definition: {exc!r}") from exc
    keys = [q.key for q in definition.questions]
    if len(keys) != len(set(keys)):
        raise DefinitionError("question keys must be unique")
    for q in definition.questions:
        if q.weight <= 0 or not q.choices or any(not 0 <= c.points <= MAX_POINTS for c in q.choices):
            raise DefinitionError(f"question {q.key}: weight must be positive and points within 0-{MAX_POINTS}")
    if {q.dimension for q in definition.questions} != set(Dimension):
        raise DefinitionError("a questionnaire needs both tolerance and capacity questions")
    return definition


@cache
def load_definition(version: str = DEFAULT_VERSION) -> Definition:
    """A shipped definition, read from its JSON file."""
    if version not in SHIPPED_VERSIONS:
        raise DefinitionError(f"unknown questionnaire version {version!r}")
    return definition_from_json(json.loads((DEFINITIONS_DIR / f"{version}.json").read_text()))


class InvalidAnswersError(ValueError):
    """Raised with a message per question key."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)


@dataclass(frozen=True)
class Driver:
    """How one answer moved its dimension's score, relative to a middle (2-point) answer."""

    question: str
    dimension: Dimension
    answer: str
    effect: float  # score points added (+) or removed (-) relative to neutral

    @property
    def direction(self) -> str:
        return "raised" if self.effect > 0 else "lowered" if self.effect < 0 else "neutral"


@dataclass(frozen=True)
class ScoreResult:
    version: str
    tolerance_score: float
    capacity_score: float
    tolerance_level: int
    capacity_level: int  # after any cap
    risk_level: int
    limited_by: Dimension
    drivers: tuple[Driver, ...]
    capacity_cap: int | None = None


def validate_answers(definition: Definition, answers: Mapping[str, str]) -> None:
    errors: dict[str, str] = {}
    for question in definition.questions:
        value = answers.get(question.key)
        if value in (None, ""):
            errors[question.key] = "This question must be answered."
            continue
        try:
            question.choice(str(value))
        except KeyError:
            allowed = ", ".join(c.key for c in question.choices)
            errors[question.key] = f"'{value}' is not a valid choice (one of: {allowed})."
    known = {q.key for q in definition.questions}
    for key in answers:
        if key not in known:
            errors[key] = "Unknown question."
    if errors:
        raise InvalidAnswersError(errors)


def level_from_score(score: float) -> int:
    """0..100 -> 1..10, each level ten points wide (100 belongs to level 10)."""
    bounded = min(max(score, 0.0), 100.0)
    return min(10, 1 + math.floor(bounded / 10))


def _dimension_score(definition: Definition, answers: Mapping[str, str], dimension: Dimension) -> float:
    questions = [q for q in definition.questions if q.dimension is dimension]
    total_weight = sum(q.weight for q in questions)
    points = sum(q.weight * q.choice(answers[q.key]).points for q in questions)
    return round(100.0 * points / (total_weight * MAX_POINTS), 2)


def score_answers(
    definition: Definition, answers: Mapping[str, str], *, capacity_cap: int | None = None
) -> ScoreResult:
    """Score a complete, valid response; ``capacity_cap`` (1-10) lowers the capacity level when set."""
    validate_answers(definition, answers)
    tolerance = _dimension_score(definition, answers, Dimension.TOLERANCE)
    capacity = _dimension_score(definition, answers, Dimension.CAPACITY)
    tolerance_level = level_from_score(tolerance)
    capacity_level = level_from_score(capacity)
    if capacity_cap is not None:
        capacity_level = min(capacity_level, capacity_cap)
    limited_by = Dimension.CAPACITY if capacity_level < tolerance_level else Dimension.TOLERANCE
    drivers = []
    for dimension in Dimension:
        questions = [q for q in definition.questions if q.dimension is dimension]
        scale = 100.0 / (sum(q.weight for q in questions) * MAX_POINTS)
        for q in questions:
            choice = q.choice(answers[q.key])
            effect = round(q.weight * (choice.points - NEUTRAL_POINTS) * scale, 2)
            drivers.append(Driver(q.key, dimension, choice.key, effect))
    drivers.sort(key=lambda d: -abs(d.effect))
    return ScoreResult(
        version=definition.version,
        tolerance_score=tolerance,
        capacity_score=capacity,
        tolerance_level=tolerance_level,
        capacity_level=capacity_level,
        risk_level=min(tolerance_level, capacity_level),
        limited_by=limited_by,
        drivers=tuple(drivers),
        capacity_cap=capacity_cap,
    )
