from __future__ import annotations

from advisor.models import User

from .models import RiskProfile


def profile_current(*, investor: User) -> RiskProfile | None:
    return RiskProfile.objects.filter(investor=investor).order_by("-created_at", "-id").first()


def profile_history(*, investor: User) -> list[RiskProfile]:
    return list(RiskProfile.objects.filter(investor=investor).order_by("-created_at", "-id"))
