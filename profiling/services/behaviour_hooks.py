"""Where product actions record behavioural events. Each hook decides whether the action is an event."""

from __future__ import annotations

from decimal import Decimal

from advisor.models import User


def contributions_changed(*, investor: User, old: Decimal, new: Decimal) -> None:
    """Pausing contributions after losses is an event (see docs/behaviour.md)."""
    return None
