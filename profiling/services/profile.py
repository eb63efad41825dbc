"""Scoring a questionnaire into a new profile version, confirmation, advisor review and override."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from typing import Any

from django.db import transaction
from django.utils import timezone

from advisor.errors import InvalidInputError, InvalidStateError, NotAllowedError
from advisor.models import Role, User
from compliance.audit import audit_record

from ..consistency import detect_inconsistencies
from ..horizon import CapacityCap, GoalHorizon, goal_capacity_cap
from ..models import Goal, ProfileSource, Questionnaire, RiskProfile
from ..scoring import Definition, ScoreResult, definition_from_json, score_answers

MAX_REASON = 2000


class ProfilingError(NotAllowedError):
    pass


@cache
def _definition(version: str, definition_json: str) -> Definition:
    import json

    return definition_from_json(json.loads(definition_json))


def questionnaire_definition(questionnaire: Questionnaire) -> Definition:
    import json

    return _definition(questionnaire.version, json.dumps(questionnaire.definition, sort_keys=True))


def questionnaire_get(version: str | None = None) -> Questionnaire:
    """The requested version, or the default one; an unknown version is a 400 naming it."""
    if version is None:
        questionnaire = Questionnaire.objects.filter(is_default=True).first()
        if questionnaire is None:
            raise InvalidStateError("No default questionnaire is installed; run the migrations.")
        return questionnaire
    questionnaire = Questionnaire.objects.filter(version=version).first()
    if questionnaire is None:
        known = ", ".join(Questionnaire.objects.values_list("version", flat=True))
        raise InvalidInputError(
            "Unknown questionnaire version.", fields={"version": f"'{version}' is not a version (known: {known})."}
        )
    return questionnaire


def _clamp(level: int) -> int:
    return max(1, min(10, level))


def goal_cap_for(investor: User) -> CapacityCap | None:
    goals = Goal.objects.filter(investor=investor, is_active=True)
    return goal_capacity_cap([GoalHorizon(g.name, g.target_amount, g.target_date) for g in goals], timezone.localdate())


def _next_version(investor: User) -> int:
    # Lock the investor row: two profile writes for one investor queue instead of colliding on the version.
    User.objects.select_for_update().get(pk=investor.pk)
    last = RiskProfile.objects.filter(investor=investor).order_by("-version").values_list("version", flat=True).first()
    return (last or 0) + 1


def _score_fields(result: ScoreResult) -> dict[str, Any]:
    return {
        "tolerance_score": Decimal(str(result.tolerance_score)),
        "capacity_score": Decimal(str(result.capacity_score)),
        "tolerance_level": result.tolerance_level,
        "capacity_level": result.capacity_level,
        "capacity_cap": result.capacity_cap,
        "risk_level": result.risk_level,
        "limited_by": result.limited_by.value,
        "drivers": [
            {"question": d.question, "dimension": d.dimension.value, "answer": d.answer, "effect": str(d.effect)}
            for d in result.drivers
        ],
    }


def profile_current(investor: User) -> RiskProfile | None:
    return RiskProfile.objects.filter(investor=investor).order_by("-version").first()


def profile_submit(*, investor: User, answers: Mapping[str, str], version: str | None = None) -> RiskProfile:
    """Score a questionnaire response into a new profile version.

    Raises ``InvalidAnswersError`` (a message per question) or ``InvalidInputError`` (unknown version)
    before writing anything. Inconsistent answers are flagged: the investor confirms them and an advisor
    reviews the profile before any recommendation is approved.
    """
    from .behaviour_hooks import answers_submitted

    if not investor.is_investor:
        raise ProfilingError("Only investors answer the risk questionnaire.")
    questionnaire = questionnaire_get(version)
    definition = questionnaire_definition(questionnaire)
    cap = goal_cap_for(investor)
    result = score_answers(definition, answers, capacity_cap=cap.level if cap else None)
    flags = [{"code": f.code, "message": f.message} for f in detect_inconsistencies(definition, answers, result)]
    with transaction.atomic():
        number = _next_version(investor)
        previous = profile_current(investor)
        adjustment = previous.behavioural_adjustment if previous else 0
        profile = RiskProfile.objects.create(
            investor=investor,
            version=number,
            source=ProfileSource.QUESTIONNAIRE,
            reason=cap.reason if cap else "",
            questionnaire=questionnaire,
            questionnaire_version=questionnaire.version,
            answers=dict(answers),
            behavioural_adjustment=adjustment,
            effective_risk_level=_clamp(result.risk_level + adjustment),
            flags=flags,
            created_by=investor,
            **_score_fields(result),
        )
        audit_record(
            actor=investor,
            action="profile.scored",
            obj=profile,
            subject_id=investor.pk,
            payload={
                "version": number,
                "questionnaire_version": questionnaire.version,
                "answers": dict(answers),
                "tolerance_score": profile.tolerance_score,
                "capacity_score": profile.capacity_score,
                "capacity_cap": profile.capacity_cap,
                "risk_level": result.risk_level,
                "effective_risk_level": profile.effective_risk_level,
                "old_effective_risk_level": previous.effective_risk_level if previous else None,
                "flags": [f["code"] for f in flags],
            },
        )
        answers_submitted(investor=investor, previous=previous, profile=profile)
    return profile


def _copy_for_new_version(profile: RiskProfile, **changes: Any) -> RiskProfile:
    fields = {
        f.name: getattr(profile, f.name)
        for f in RiskProfile._meta.concrete_fields
        if f.name not in ("id", "created_at", "version", "source", "reason", "created_by")
    }
    fields.update(changes)
    return RiskProfile.objects.create(**fields)


def profile_confirm(*, investor: User, profile_id: int) -> RiskProfile:
    """The investor confirms that their flagged answers are what they meant."""
    with transaction.atomic():
        profile = RiskProfile.objects.select_for_update().filter(pk=profile_id, investor=investor).first()
        if profile is None:
            raise NotAllowedError("No such profile.")
        if profile.pk != getattr(profile_current(investor), "pk", None):
            raise InvalidStateError("Only the current profile can be confirmed.")
        if not profile.flags:
            raise InvalidStateError("This profile has nothing to confirm.")
        if profile.confirmed_at is None:
            profile.confirmed_at = timezone.now()
            profile.save(update_fields=["confirmed_at"])
            audit_record(
                actor=investor,
                action="profile.confirmed",
                obj=profile,
                subject_id=investor.pk,
                payload={"flags": [f["code"] for f in profile.flags]},
            )
    return profile


def _assigned(advisor: User, investor: User) -> None:
    if advisor.role != Role.ADVISOR or investor.advisor_id != advisor.pk:
        raise NotAllowedError("Only the investor's assigned advisor can do this.")


def profile_review(*, advisor: User, profile_id: int, comment: str) -> RiskProfile:
    """The assigned advisor has reviewed a flagged profile: recommendations may be approved again."""
    comment = comment.strip()
    if not comment:
        raise InvalidInputError("A comment is required.", fields={"comment": "Say what you checked with the client."})
    with transaction.atomic():
        profile = RiskProfile.objects.select_for_update().select_related("investor").filter(pk=profile_id).first()
        if profile is None:
            raise NotAllowedError("No such profile.")
        _assigned(advisor, profile.investor)
        if not profile.flags:
            raise InvalidStateError("This profile has no flags to review.")
        if profile.reviewed_at is not None:
            raise InvalidStateError("This profile was already reviewed.")
        profile.reviewed_by, profile.reviewed_at, profile.review_comment = advisor, timezone.now(), comment
        profile.save(update_fields=["reviewed_by", "reviewed_at", "review_comment"])
        audit_record(
            actor=advisor,
            action="profile.reviewed",
            obj=profile,
            subject_id=profile.investor_id,
            payload={"comment": comment, "flags": [f["code"] for f in profile.flags]},
        )
    return profile


def profile_override(*, advisor: User, investor: User, risk_level: object, reason: str) -> RiskProfile:
    """The assigned advisor sets the effective risk level, with a reason; a new profile version."""
    reason = reason.strip()
    errors = {}
    try:
        level = int(str(risk_level))
    except ValueError:
        level = 0
    if not 1 <= level <= 10:
        errors["risk_level"] = "A whole number from 1 to 10."
    if not reason:
        errors["reason"] = "An override needs a reason."
    elif len(reason) > MAX_REASON:
        errors["reason"] = f"At most {MAX_REASON} characters."
    if errors:
        raise InvalidInputError("Invalid override.", fields=errors)
    _assigned(advisor, investor)
    with transaction.atomic():
        number = _next_version(investor)
        current = profile_current(investor)
        if current is None:
            raise InvalidStateError("The investor has not answered the questionnaire yet.")
        profile = _copy_for_new_version(
            current,
            version=number,
            source=ProfileSource.ADVISOR_OVERRIDE,
            reason=reason,
            effective_risk_level=level,
            created_by=advisor,
        )
        audit_record(
            actor=advisor,
            action="profile.overridden",
            obj=profile,
            subject_id=investor.pk,
            payload={"old_effective_risk_level": current.effective_risk_level, "new_effective_risk_level": level,
                     "reason": reason},
        )  # fmt: skip
    return profile


def profile_apply_goal_cap(*, investor: User, actor: User) -> RiskProfile | None:
    """Re-score the current answers under the goals' capacity cap; a new version only if the level changes."""
    current = profile_current(investor)
    if current is None or current.questionnaire is None:
        return None
    cap = goal_cap_for(investor)
    new_cap = cap.level if cap else None
    if new_cap == current.capacity_cap:
        return None
    result = score_answers(questionnaire_definition(current.questionnaire), current.answers, capacity_cap=new_cap)
    number = _next_version(investor)
    profile = _copy_for_new_version(
        current,
        version=number,
        source=ProfileSource.GOALS,
        reason=cap.reason if cap else "No goal is due soon enough to cap risk capacity.",
        effective_risk_level=_clamp(result.risk_level + current.behavioural_adjustment)
        if current.source != ProfileSource.ADVISOR_OVERRIDE
        else min(current.effective_risk_level, result.risk_level),
        created_by=actor,
        **_score_fields(result),
    )
    audit_record(
        actor=actor,
        action="profile.goal_cap_changed",
        obj=profile,
        subject_id=investor.pk,
        payload={"old_capacity_cap": current.capacity_cap, "new_capacity_cap": new_cap,
                 "old_effective_risk_level": current.effective_risk_level,
                 "new_effective_risk_level": profile.effective_risk_level},
    )  # fmt: skip
    return profile
