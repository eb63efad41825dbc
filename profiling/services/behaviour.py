"""Behavioural events, recorded by the product's own actions (investors never write them directly), the nightly
behavioural scores with the profile versions they adjust, and the investor's "sell everything" request.

The score and its bound are documented in ``docs/behaviour.md``; the computation is ``profiling/behaviour.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from advisor.errors import InvalidInputError, InvalidStateError, NotAllowedError
from advisor.models import User
from compliance.audit import audit_record

from .. import behaviour
from ..models import BehaviorEvent, BehaviorEventType, BehaviorScore, ProfileSource, RiskProfile
from .profile import _clamp, _copy_for_new_version, _next_version, profile_current

MAX_REQUEST_REASON = 2000
SCORE_PLACES = Decimal("0.0001")
DRAWDOWN_THRESHOLD = Decimal("0.10")  # the market proxy this far below its one-year high is "a drawdown"
# Any fixed 64-bit key: two nightly runs queue instead of both writing the same date.
BEHAVIOUR_LOCK_KEY = 0x4245484156494F55  # "BEHAVIOU"


def behavior_event_record(
    *,
    investor: User,
    event_type: BehaviorEventType,
    details: Mapping[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> BehaviorEvent:
    with transaction.atomic():
        event = BehaviorEvent.objects.create(
            investor=investor,
            event_type=event_type,
            occurred_at=occurred_at or timezone.now(),
            details=dict(details or {}),
        )
        audit_record(
            actor=None,
            action="behavior.event_recorded",
            obj=event,
            subject_id=investor.pk,
            payload={"event_type": event_type.value, "details": event.details},
        )
    return event


def market_in_drawdown() -> Decimal | None:
    """The market proxy's drawdown when it is at least ``DRAWDOWN_THRESHOLD``, else ``None``."""
    from portfolios.selectors import market_drawdown

    drawdown = market_drawdown()
    return drawdown if drawdown >= DRAWDOWN_THRESHOLD else None


# --- The nightly scores --------------------------------------------------------------------------------------


def _current_profiles() -> QuerySet[RiskProfile]:
    """Each investor's newest profile version (one query whatever the number of investors)."""
    newest = RiskProfile.objects.filter(investor=OuterRef("investor")).order_by("-version").values("version")[:1]
    return RiskProfile.objects.filter(version=Subquery(newest))


def _new_version(current: RiskProfile, **changes: Any) -> RiskProfile:
    """An unsaved copy of ``current`` for ``bulk_create`` (foreign keys copied by id: no query per profile)."""
    skip = ("id", "created_at", "version", "source", "reason", "created_by")
    fields = {f.attname: getattr(current, f.attname) for f in RiskProfile._meta.concrete_fields if f.name not in skip}
    return RiskProfile(**(fields | changes))


def _score_text(score: float) -> str:
    return f"{score:.2f}".replace("-", "\u2212")


def _reason(*, as_of: date, score: float, old: RiskProfile, adjustment: int, events: list[str]) -> str:
    """The new version's reason, in plain words for the investor and the advisor."""
    threshold = _score_text(behaviour.ADJUST_THRESHOLD)
    counted = "; ".join(events) if events else "no recent events"
    new_level = _clamp(old.risk_level + adjustment)
    if adjustment < 0:
        text = (
            f"Behavioural score {_score_text(score)} on {as_of:%Y-%m-%d} is at or below {threshold}, so the "
            f"effective risk level is lowered one step, from {old.effective_risk_level} to {new_level}. "
            f"Counted: {counted}. Each event counts less as it ages; once the score is back above {threshold} "
            "you can restore your level (it is never raised without your confirmation). Behaviour never raises "
            "the level above what the questionnaire gives."
        )
        if behaviour.needs_advisor(score):
            text += (
                f" The score is at or below {_score_text(behaviour.ADVISOR_THRESHOLD)}: the advisor should review "
                "whether a larger change is right; behaviour alone never lowers the level by more than one step."
            )
        return text
    return (
        f"Behavioural score {_score_text(score)} on {as_of:%Y-%m-%d} is back above {threshold}, so the behavioural "
        f"step down is removed: the effective risk level returns from {old.effective_risk_level} to {new_level}, "
        f"the level the questionnaire gives. Counted: {counted}."
    )


def behaviour_scores_update(*, as_of: date | None = None) -> dict[str, int]:
    """Score every investor in bulk and move current profiles within the bound; safe to run twice a day.

    Reads every event of the look-back window in one query and scores them with ``profiling.behaviour``. A score
    row is written for each investor with events in the window or a behavioural step in their current profile
    (everyone else's score is 0 by definition). Investors already scored for ``as_of`` are left as they are, so a
    re-run on the same date writes nothing: no score, no profile version, no audit event. Where the adjustment
    differs from the current profile's, a new profile version (source ``behaviour``) and a
    ``profile.behaviour_adjusted`` audit event are written; an advisor override is never changed.
    """
    from portfolios.selectors import market_date_latest

    as_of = as_of or market_date_latest() or timezone.localdate()
    window_end = datetime.combine(as_of + timedelta(days=1), time.min, tzinfo=UTC)
    in_window = Q(occurred_at__lt=window_end, occurred_at__gte=window_end - timedelta(days=behaviour.LOOKBACK_DAYS))

    # The one query for all events of the window.
    events = list(
        BehaviorEvent.objects.filter(in_window)
        .annotate(day=TruncDate("occurred_at"))
        .values_list("investor_id", "event_type", "day")
    )
    if events:
        ids, types, days = zip(*events, strict=True)
        ages = (np.datetime64(as_of, "D") - np.array(days, dtype="datetime64[D]")).astype(np.int64)
        scores = behaviour.score_events(np.array(ids, dtype=np.int64), types, ages)
    else:
        scores = behaviour.score_events([], [], [])
    row_of = {int(investor_id): row for row, investor_id in enumerate(scores.investor_ids)}

    def score_of(investor_id: int) -> float:
        row = row_of.get(investor_id)
        return float(scores.scores[row]) if row is not None else 0.0

    def events_of(investor_id: int) -> int:
        row = row_of.get(investor_id)
        return int(scores.events_counted[row]) if row is not None else 0

    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Two runs for one date (a task delivered twice) queue here; the second then finds the date scored.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [BEHAVIOUR_LOCK_KEY])
        # SQLite runs IMMEDIATE transactions (settings), which already serialize writers.
        already = set(BehaviorScore.objects.filter(as_of=as_of).values_list("investor_id", flat=True))
        # Current profiles of everyone with events or a behavioural step (a step with no events left must go).
        current = {
            p[0]: p
            for p in _current_profiles()
            .filter(Q(investor_id__in=BehaviorEvent.objects.filter(in_window).values("investor_id"))
                    | (~Q(behavioural_adjustment=0) & ~Q(source=ProfileSource.ADVISOR_OVERRIDE)))
            .values_list("investor_id", "source", "behavioural_adjustment")
        }  # fmt: skip
        to_score = sorted((set(row_of) | set(current)) - already)
        counts = {
            "investors_scored": len(to_score),
            "already_scored": len(already),
            "events_counted": sum(events_of(i) for i in to_score),
            "profiles_adjusted": 0,
            "overrides_unchanged": sum(
                1 for i in to_score if i in current and current[i][1] == ProfileSource.ADVISOR_OVERRIDE
            ),
            "without_profile": sum(1 for i in to_score if i not in current),
            "needs_advisor": sum(1 for i in to_score if behaviour.needs_advisor(score_of(i))),
            # A recovered score never raises the level by itself: the investor confirms (behaviour_step_restore).
            "awaiting_investor_confirmation": sum(
                1
                for i in to_score
                if i in current
                and current[i][1] != ProfileSource.ADVISOR_OVERRIDE
                and behaviour.adjustment_for(score_of(i)) > current[i][2]
            ),
        }
        if not to_score:
            return counts
        BehaviorScore.objects.bulk_create(
            [
                BehaviorScore(
                    investor_id=investor_id,
                    as_of=as_of,
                    score=Decimal(repr(score_of(investor_id))).quantize(SCORE_PLACES),
                    adjustment=behaviour.adjustment_for(score_of(investor_id)),
                    events_counted=events_of(investor_id),
                )
                for investor_id in to_score
            ],
            batch_size=5000,
            ignore_conflicts=True,
        )
        wanted = {
            investor_id: behaviour.adjustment_for(score_of(investor_id))
            for investor_id in to_score
            if investor_id in current
            and current[investor_id][1] != ProfileSource.ADVISOR_OVERRIDE
            and behaviour.adjustment_for(score_of(investor_id)) < current[investor_id][2]
        }
        if wanted:
            # Lock the investors (as every profile write does), then re-read their current versions: a
            # questionnaire submitted meanwhile is the version we build on.
            list(User.objects.select_for_update().filter(pk__in=list(wanted)).order_by("pk").values_list("pk"))
            latest = list(_current_profiles().filter(investor_id__in=list(wanted)))
            changes = [
                (old, wanted[old.investor_id])
                for old in latest
                if old.source != ProfileSource.ADVISOR_OVERRIDE and wanted[old.investor_id] < old.behavioural_adjustment
            ]
            created = RiskProfile.objects.bulk_create(
                [
                    _new_version(
                        old,
                        version=old.version + 1,
                        source=ProfileSource.BEHAVIOUR,
                        reason=_reason(
                            as_of=as_of,
                            score=score_of(old.investor_id),
                            old=old,
                            adjustment=adjustment,
                            events=_events_text(scores, row_of.get(old.investor_id)),
                        ),
                        behavioural_adjustment=adjustment,
                        effective_risk_level=_clamp(old.risk_level + adjustment),
                        created_by=None,
                    )
                    for old, adjustment in changes
                ],
                batch_size=1000,
            )
            # One audit event per changed investor (the audit chain is written one event at a time).
            for (old, adjustment), profile in zip(changes, created, strict=True):
                score = score_of(old.investor_id)
                audit_record(
                    actor=None,
                    action="profile.behaviour_adjusted",
                    obj=profile,
                    subject_id=old.investor_id,
                    payload={
                        "as_of": as_of,
                        "version": profile.version,
                        "score": Decimal(repr(score)).quantize(SCORE_PLACES),
                        "old_behavioural_adjustment": old.behavioural_adjustment,
                        "new_behavioural_adjustment": adjustment,
                        "old_effective_risk_level": old.effective_risk_level,
                        "new_effective_risk_level": profile.effective_risk_level,
                        "needs_advisor": behaviour.needs_advisor(score),
                        "events": _events_by_type(scores, row_of.get(old.investor_id)),
                    },
                )
            counts["profiles_adjusted"] = len(created)
        audit_record(actor=None, action="behaviour.scores_updated", object_type="profiling.behaviorscore",
                     object_id=as_of.isoformat(), payload={"as_of": as_of, **counts})  # fmt: skip
    return counts


def _events_text(scores: behaviour.Scores, row: int | None) -> list[str]:
    return [] if row is None else behaviour.explain(scores.contributions[row].tolist(), scores.counts[row].tolist())


def _events_by_type(scores: behaviour.Scores, row: int | None) -> dict[str, int]:
    if row is None:
        return {}
    return {code: int(n) for code, n in zip(behaviour.CODES, scores.counts[row], strict=True) if n}


# --- "Sell everything" requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SellEverythingRequest:
    account_id: int
    reason: str
    requested_at: datetime
    market_drawdown: Decimal
    behavior_event_id: int | None  # set when the request came during a drawdown

    @property
    def in_drawdown(self) -> bool:
        return self.behavior_event_id is not None


def sell_everything_request(*, investor: User, account_id: int, reason: str) -> SellEverythingRequest:
    """The investor asks to sell everything in an account: recorded for their advisor to act on.

    No order is created: the advisor talks to the investor first and, if they still want it, acts through the
    usual recommendation flow. During a drawdown the request is also the ``panic_sell_request`` behaviour event.
    """
    from portfolios.models import Account
    from portfolios.selectors import market_drawdown

    reason = (reason or "").strip()
    if not reason:
        raise InvalidInputError("A reason is required.", fields={"reason": "Say why you want to sell everything."})
    if len(reason) > MAX_REQUEST_REASON:
        raise InvalidInputError("Reason too long.", fields={"reason": f"At most {MAX_REQUEST_REASON} characters."})
    if not investor.is_investor:
        raise NotAllowedError("Only investors ask to sell their holdings.")
    account = Account.objects.filter(pk=account_id, owner=investor).first()
    if account is None:
        raise NotAllowedError("No such account.")
    drawdown = market_drawdown()
    requested_at = timezone.now()
    with transaction.atomic():
        event = None
        if drawdown >= DRAWDOWN_THRESHOLD:
            event = behavior_event_record(
                investor=investor,
                event_type=BehaviorEventType.PANIC_SELL_REQUEST,
                details={"account_id": account.pk, "market_drawdown": str(drawdown)},
                occurred_at=requested_at,
            )
        audit_record(
            actor=investor,
            action="account.sell_everything_requested",
            obj=account,
            subject_id=investor.pk,
            payload={"reason": reason, "market_drawdown": drawdown, "behavior_event_id": event.pk if event else None},
        )
    return SellEverythingRequest(account.pk, reason, requested_at, drawdown, event.pk if event else None)


def behaviour_step_restorable(*, investor: User) -> bool:
    """The current profile carries a behavioural step down, and the latest score no longer asks for it."""
    current = profile_current(investor)
    if current is None or current.behavioural_adjustment >= 0 or current.source == ProfileSource.ADVISOR_OVERRIDE:
        return False
    latest = BehaviorScore.objects.filter(investor=investor).order_by("-as_of").first()
    return latest is not None and latest.adjustment > current.behavioural_adjustment


def behaviour_step_restore(*, investor: User) -> RiskProfile:
    """The investor confirms the return to the level their answers give, after their score recovered."""
    with transaction.atomic():
        number = _next_version(investor)
        if not behaviour_step_restorable(investor=investor):
            raise InvalidStateError("There is no behavioural step to restore, or your recent behaviour still counts.")
        current = profile_current(investor)
        if current is None:
            raise InvalidStateError("No profile to restore.")
        profile = _copy_for_new_version(
            current,
            version=number,
            source=ProfileSource.BEHAVIOUR,
            reason=(
                "You confirmed the return to the level your answers give: your recent behaviour no longer "
                "suggests a lower level."
            ),
            behavioural_adjustment=0,
            effective_risk_level=_clamp(current.risk_level),
            created_by=investor,
        )
        audit_record(
            actor=investor,
            action="profile.behaviour_restored",
            obj=profile,
            subject_id=investor.pk,
            payload={"old_effective_risk_level": current.effective_risk_level,
                     "new_effective_risk_level": profile.effective_risk_level},
        )  # fmt: skip
    return profile
