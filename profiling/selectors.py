from __future__ import annotations

from advisor.models import User

from .models import BehaviorEvent, BehaviorScore, Goal, InvestorSegment, Questionnaire, RiskProfile


def profile_current(*, investor: User) -> RiskProfile | None:
    return RiskProfile.objects.filter(investor=investor).select_related("questionnaire").order_by("-version").first()


def profile_history(*, investor: User) -> list[RiskProfile]:
    return list(
        RiskProfile.objects.filter(investor=investor).select_related("created_by", "reviewed_by").order_by("-version")
    )


def questionnaire_list() -> list[Questionnaire]:
    return list(Questionnaire.objects.order_by("version"))


def goals_for(*, investor: User) -> list[Goal]:
    return list(Goal.objects.filter(investor=investor, is_active=True).select_related("account"))


def behavior_events_for(*, investor: User, limit: int = 50) -> list[BehaviorEvent]:
    return list(BehaviorEvent.objects.filter(investor=investor).order_by("-occurred_at")[:limit])


def behavior_score_latest(*, investor: User) -> BehaviorScore | None:
    return BehaviorScore.objects.filter(investor=investor).order_by("-as_of").first()


def sell_everything_requests_for(*, investor: User, limit: int = 10) -> list[dict[str, object]]:
    """The investor's requests to sell everything (kept in the audit log), newest first, for their advisor."""
    from compliance.models import AuditEvent

    rows = AuditEvent.objects.filter(subject=investor, action="account.sell_everything_requested").order_by("-id")
    return [
        {"at": e.created_at, "account_id": e.object_id, "reason": e.payload.get("reason", ""),
         "in_drawdown": e.payload.get("behavior_event_id") is not None}
        for e in rows[:limit]
    ]  # fmt: skip


def segment_current(*, investor: User) -> InvestorSegment | None:
    return InvestorSegment.objects.filter(investor=investor).select_related("model").order_by("-model__version").first()
