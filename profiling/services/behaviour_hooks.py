"""Where product actions record behavioural events. Each hook decides whether the action is an event.

Every hook records only while the market is in a drawdown (``market_in_drawdown``: the market proxy at least
10% below its one-year high): the same action in a calm market says little about how the investor bears losses.
Hooks run inside the caller's transaction, so the event and its audit row commit or roll back with the action.
See docs/behaviour.md for the events, their weights and half-lives.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from advisor.models import User

from ..models import BehaviorEvent, BehaviorEventType, LoginRecord, RiskProfile
from .behaviour import behavior_event_record, market_in_drawdown

LOGIN_SPIKE_LOGINS = 5  # more logins than this within LOGIN_SPIKE_WINDOW is a spike
LOGIN_SPIKE_WINDOW = timedelta(hours=24)
LOGIN_RECORDS_KEPT = timedelta(days=2)
ZERO = Decimal(0)


def _details(drawdown: Decimal, **more: Any) -> dict[str, Any]:
    return {"market_drawdown": str(drawdown), **more}


def contributions_changed(*, investor: User, old: Decimal, new: Decimal) -> None:
    """Pausing contributions after losses: a goal's monthly contribution from above zero to zero in a drawdown."""
    if not (old > ZERO and new == ZERO):
        return
    drawdown = market_in_drawdown()
    if drawdown is not None:
        behavior_event_record(
            investor=investor,
            event_type=BehaviorEventType.CONTRIBUTIONS_PAUSED,
            details=_details(drawdown, old_monthly_contribution=str(old)),
        )


def deposit_made(*, investor: User, account_id: int, amount: Decimal) -> None:
    """Adding money during a fall; at most one event per investor and day, so small repeated deposits do not stack."""
    drawdown = market_in_drawdown()
    if drawdown is None:
        return
    now = timezone.now()
    start_of_day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if BehaviorEvent.objects.filter(
        investor=investor, event_type=BehaviorEventType.ADDED_MONEY_IN_FALL, occurred_at__gte=start_of_day
    ).exists():
        return
    behavior_event_record(
        investor=investor,
        event_type=BehaviorEventType.ADDED_MONEY_IN_FALL,
        details=_details(drawdown, account_id=account_id, amount=str(amount)),
        occurred_at=now,
    )


def recommendation_rejected(*, investor: User, recommendation_id: int) -> None:
    """A rejected recommendation for the investor's account during a drawdown (usually a rebalance into what fell)."""
    drawdown = market_in_drawdown()
    if drawdown is not None:
        behavior_event_record(
            investor=investor,
            event_type=BehaviorEventType.RECOMMENDATION_REJECTED,
            details=_details(drawdown, recommendation_id=recommendation_id),
        )


def answers_submitted(*, investor: User, previous: RiskProfile | None, profile: RiskProfile) -> None:
    """Answers changed after a loss: a lower tolerance score than the previous version's, in a drawdown."""
    if previous is None or profile.tolerance_score >= previous.tolerance_score:
        return
    drawdown = market_in_drawdown()
    if drawdown is not None:
        behavior_event_record(
            investor=investor,
            event_type=BehaviorEventType.ANSWERS_CHANGED_AFTER_LOSS,
            details=_details(
                drawdown,
                profile_id=profile.pk,
                old_tolerance_score=str(previous.tolerance_score),
                new_tolerance_score=str(profile.tolerance_score),
            ),
        )


def investor_logged_in(*, user: Any, at: datetime | None = None) -> None:
    """Record an investor's login; more than ``LOGIN_SPIKE_LOGINS`` in 24 hours during a drawdown is an event
    (at most one per 24 hours). Login records are kept two days, then pruned here."""
    if not isinstance(user, User) or not user.is_investor:
        return
    now = at or timezone.now()
    with transaction.atomic():
        LoginRecord.objects.filter(investor=user, logged_in_at__lt=now - LOGIN_RECORDS_KEPT).delete()
        LoginRecord.objects.create(investor=user, logged_in_at=now)
        since = now - LOGIN_SPIKE_WINDOW
        logins = LoginRecord.objects.filter(investor=user, logged_in_at__gt=since, logged_in_at__lte=now).count()
        if logins <= LOGIN_SPIKE_LOGINS:
            return
        if BehaviorEvent.objects.filter(
            investor=user, event_type=BehaviorEventType.LOGIN_SPIKE_IN_DRAWDOWN, occurred_at__gt=since
        ).exists():
            return
        drawdown = market_in_drawdown()
        if drawdown is not None:
            behavior_event_record(
                investor=user,
                event_type=BehaviorEventType.LOGIN_SPIKE_IN_DRAWDOWN,
                details=_details(drawdown, logins_24h=logins),
                occurred_at=now,
            )


def on_user_logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Receiver of ``django.contrib.auth.signals.user_logged_in`` (connected in ``ProfilingConfig.ready``)."""
    investor_logged_in(user=user)
