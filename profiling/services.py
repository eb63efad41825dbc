from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from django.db import transaction

from advisor.errors import NotAllowedError
from advisor.models import User
from compliance.audit import audit_record

from .models import RiskProfile
from .scoring import score_answers


class ProfilingError(NotAllowedError):
    pass


def profile_submit(*, investor: User, answers: Mapping[str, str]) -> RiskProfile:
    """Score a questionnaire response and make it the investor's current profile.

    Raises ``scoring.InvalidAnswersError`` (with a message per question) before writing anything.
    """
    if not investor.is_investor:
        raise ProfilingError("Only investors answer the risk questionnaire.")
    result = score_answers(answers)
    with transaction.atomic():
        profile = RiskProfile.objects.create(
            investor=investor,
            questionnaire_version=result.version,
            answers=dict(answers),
            tolerance_score=Decimal(str(result.tolerance_score)),
            capacity_score=Decimal(str(result.capacity_score)),
            tolerance_level=result.tolerance_level,
            capacity_level=result.capacity_level,
            risk_level=result.risk_level,
            limited_by=result.limited_by.value,
            drivers=[
                {"question": d.question, "dimension": d.dimension.value, "answer": d.answer, "effect": str(d.effect)}
                for d in result.drivers
            ],
        )
        audit_record(
            actor=investor,
            action="profile.scored",
            obj=profile,
            subject_id=investor.pk,
            payload={
                "questionnaire_version": result.version,
                "answers": dict(answers),
                "tolerance_score": profile.tolerance_score,
                "capacity_score": profile.capacity_score,
                "risk_level": result.risk_level,
                "limited_by": result.limited_by.value,
            },
        )
    return profile
