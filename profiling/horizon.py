"""Goal horizons cap risk capacity (pure, no Django).

Money needed soon cannot ride out a bad year, whatever the investor's tolerance.
Rule (documented in docs/scoring.md): among the investor's active goals, if the
ones due within 1 year make up at least 25% of the total target amount, capacity
is capped at level 2; else if the ones due within 3 years make up at least 25%,
it is capped at level 3. Smaller near-term goals leave capacity alone (they are
a small slice of the money and can be funded from the safest holdings).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

SHARE_THAT_COUNTS = Decimal("0.25")
CAPS = ((1, 2), (3, 3))  # (years until due, capacity level cap), nearest first


@dataclass(frozen=True)
class GoalHorizon:
    name: str
    target_amount: Decimal
    target_date: date


@dataclass(frozen=True)
class CapacityCap:
    level: int
    years: int
    share: Decimal
    goals: tuple[str, ...]

    @property
    def reason(self) -> str:
        return (
            f"{self.share:.0%} of your goals' target amount is needed within {self.years} "
            f"year{'s' if self.years > 1 else ''} ({', '.join(self.goals)}): "
            f"risk capacity is capped at level {self.level}."
        )


def years_until(today: date, when: date) -> float:
    return (when - today).days / 365.25


def goal_capacity_cap(goals: Sequence[GoalHorizon], today: date) -> CapacityCap | None:
    total = sum((g.target_amount for g in goals), Decimal(0))
    if total <= 0:
        return None
    for years, level in CAPS:
        near = [g for g in goals if years_until(today, g.target_date) <= years]
        share = sum((g.target_amount for g in near), Decimal(0)) / total
        if near and share >= SHARE_THAT_COUNTS:
            return CapacityCap(level=level, years=years, share=share, goals=tuple(g.name for g in near))
    return None
