"""The risk questionnaire and its scoring, as pure functions (no Django).

Scoring, documented in ``docs/scoring.md``:

* Every question belongs to one dimension: **tolerance** (willingness to take
  risk) or **capacity** (ability to bear losses). Each choice carries points
  from 0 (most cautious) to 4 (most risk-bearing), and a question weight.
* A dimension's score is ``100 * sum(weight * points) / sum(weight * 4)``,
  so both scores run from 0 to 100.
* A score maps to a level with ``level(score) = min(10, 1 + floor(score / 10))``
  (0-9.99 -> 1, 10-19.99 -> 2, ..., 90-100 -> 10).
* **Capacity caps tolerance**: the risk level is ``min(level(tolerance),
  level(capacity))``. Someone eager for risk who cannot afford a loss is
  placed at the level their capacity allows, and vice versa.

Because every piece is non-decreasing in each answer's points, a more
risk-bearing answer never lowers the risk level.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

QUESTIONNAIRE_VERSION = "2026.1"
MAX_POINTS = 4


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


def _choices(*items: tuple[str, str, int]) -> tuple[Choice, ...]:
    return tuple(Choice(key, label, points) for key, label, points in items)


QUESTIONS: tuple[Question, ...] = (
    Question(
        "horizon",
        "When will you need to start drawing on most of this money?",
        Dimension.CAPACITY,
        3,
        _choices(
            ("lt3", "Within 3 years", 0),
            ("3to5", "In 3 to 5 years", 1),
            ("5to10", "In 5 to 10 years", 2),
            ("10to20", "In 10 to 20 years", 3),
            ("gt20", "In more than 20 years", 4),
        ),
    ),
    Question(
        "age",
        "How old are you?",
        Dimension.CAPACITY,
        2,
        _choices(
            ("gt70", "70 or older", 0),
            ("60to69", "60 to 69", 1),
            ("45to59", "45 to 59", 2),
            ("30to44", "30 to 44", 3),
            ("lt30", "Under 30", 4),
        ),
    ),
    Question(
        "income_stability",
        "How stable is your income over the next few years?",
        Dimension.CAPACITY,
        2,
        _choices(
            ("none", "I have no regular income", 0),
            ("unstable", "Uncertain: it could stop or fall sharply", 1),
            ("variable", "Variable, such as commissions or freelance work", 2),
            ("stable", "Stable salary or pension", 3),
            ("very_stable", "Very secure, with more than one source", 4),
        ),
    ),
    Question(
        "emergency_savings",
        "Apart from this investment, how many months of expenses do you hold in cash?",
        Dimension.CAPACITY,
        2,
        _choices(
            ("none", "None", 0),
            ("lt3", "Less than 3 months", 1),
            ("3to6", "3 to 6 months", 2),
            ("6to12", "6 to 12 months", 3),
            ("gt12", "More than 12 months", 4),
        ),
    ),
    Question(
        "fall_reaction",
        "Your portfolio falls 20% in a few months. What do you do?",
        Dimension.TOLERANCE,
        3,
        _choices(
            ("sell_all", "Sell everything to stop further losses", 0),
            ("sell_some", "Sell part of it", 1),
            ("hold", "Do nothing and wait", 2),
            ("rebalance", "Rebalance back to my target", 3),
            ("buy_more", "Invest more while prices are low", 4),
        ),
    ),
    Question(
        "experience",
        "How much experience do you have with investing in stocks or funds?",
        Dimension.TOLERANCE,
        1,
        _choices(
            ("none", "None", 0),
            ("little", "A little: savings accounts or a pension I do not manage", 1),
            ("some", "Some: I have held funds for a few years", 2),
            ("good", "Good: I have invested through at least one market crash", 3),
            ("extensive", "Extensive: I manage a diversified portfolio myself", 4),
        ),
    ),
    Question(
        "objective",
        "Which best describes your goal for this money?",
        Dimension.TOLERANCE,
        2,
        _choices(
            ("preserve", "Keep its value; avoid any loss", 0),
            ("income", "Steady income with little fluctuation", 1),
            ("balanced", "A balance of growth and stability", 2),
            ("growth", "Growth, accepting ups and downs", 3),
            ("max_growth", "Maximum growth, accepting large swings", 4),
        ),
    ),
    Question(
        "trade_off",
        "Which would you choose for a $10,000 investment over one year?",
        Dimension.TOLERANCE,
        2,
        _choices(
            ("sure", "A sure gain of $300", 0),
            ("small_range", "Between -$500 and +$1,000", 1),
            ("medium_range", "Between -$1,500 and +$2,500", 2),
            ("wide_range", "Between -$3,000 and +$4,500", 3),
            ("widest_range", "Between -$4,500 and +$7,000", 4),
        ),
    ),
)

QUESTIONS_BY_KEY: dict[str, Question] = {q.key: q for q in QUESTIONS}


class InvalidAnswersError(ValueError):
    """Raised with a message per question key."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)


@dataclass(frozen=True)
class Driver:
    """How one answer moved its dimension's score, relative to a neutral (2-point) answer."""

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
    capacity_level: int
    risk_level: int
    limited_by: Dimension
    drivers: tuple[Driver, ...]


def validate_answers(answers: Mapping[str, str]) -> None:
    errors: dict[str, str] = {}
    for question in QUESTIONS:
        value = answers.get(question.key)
        if value in (None, ""):
            errors[question.key] = "This question must be answered."
            continue
        try:
            question.choice(str(value))
        except KeyError:
            allowed = ", ".join(c.key for c in question.choices)
            errors[question.key] = f"'{value}' is not a valid choice (one of: {allowed})."
    for key in answers:
        if key not in QUESTIONS_BY_KEY:
            errors[key] = "Unknown question."
    if errors:
        raise InvalidAnswersError(errors)


def level_from_score(score: float) -> int:
    """0..100 -> 1..10, each level ten points wide (100 belongs to level 10)."""
    bounded = min(max(score, 0.0), 100.0)
    return min(10, 1 + math.floor(bounded / 10))


def _dimension_score(answers: Mapping[str, str], dimension: Dimension) -> float:
    questions = [q for q in QUESTIONS if q.dimension is dimension]
    total_weight = sum(q.weight for q in questions)
    points = sum(q.weight * q.choice(answers[q.key]).points for q in questions)
    return round(100.0 * points / (total_weight * MAX_POINTS), 2)


def score_answers(answers: Mapping[str, str]) -> ScoreResult:
    validate_answers(answers)
    tolerance = _dimension_score(answers, Dimension.TOLERANCE)
    capacity = _dimension_score(answers, Dimension.CAPACITY)
    tolerance_level = level_from_score(tolerance)
    capacity_level = level_from_score(capacity)
    limited_by = Dimension.CAPACITY if capacity_level < tolerance_level else Dimension.TOLERANCE
    drivers = []
    for dimension in Dimension:
        questions = [q for q in QUESTIONS if q.dimension is dimension]
        scale = 100.0 / (sum(q.weight for q in questions) * MAX_POINTS)
        for q in questions:
            choice = q.choice(answers[q.key])
            effect = round(q.weight * (choice.points - MAX_POINTS / 2) * scale, 2)
            drivers.append(Driver(q.key, dimension, choice.key, effect))
    drivers.sort(key=lambda d: -abs(d.effect))
    return ScoreResult(
        version=QUESTIONNAIRE_VERSION,
        tolerance_score=tolerance,
        capacity_score=capacity,
        tolerance_level=tolerance_level,
        capacity_level=capacity_level,
        risk_level=min(tolerance_level, capacity_level),
        limited_by=limited_by,
        drivers=tuple(drivers),
    )
