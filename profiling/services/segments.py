"""Fitting investor segments over every current profile, and placing one investor in the stored segments.

Segments are for advisor triage and peer comparison only: nothing here or elsewhere sets a risk level from a
segment. The computation is ``profiling/segmentation.py``; see ``docs/segments.md``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import OuterRef, Subquery

from advisor.models import Role, User
from compliance.audit import audit_record

from ..models import BehaviorScore, InvestorSegment, Questionnaire, RiskProfile, SegmentationModel
from ..scoring import Definition
from ..segmentation import (
    FEATURES,
    SegmentationError,
    TooFewInvestorsError,
    cluster_investors,
    nearest_segment,
    segment_medians,
)
from .profile import questionnaire_definition

# Any fixed 64-bit key: two fits (a task delivered twice, the command during the beat run) queue for the version.
SEGMENTS_LOCK_KEY = 0x5345474D454E5453  # "SEGMENTS"
PROFILE_FIELDS = (
    "investor_id",
    "questionnaire_version",
    "answers",
    "tolerance_score",
    "capacity_score",
    "effective_risk_level",
    "flags",
    "latest_behaviour_score",
)


def _definitions() -> dict[str, Definition]:
    return {q.version: questionnaire_definition(q) for q in Questionnaire.objects.all()}


def _points(definitions: Mapping[str, Definition], version: str, answers: Mapping[str, str], key: str) -> float:
    """The points of one answer; NaN (imputed later) when the version does not ask the question."""
    definition = definitions.get(version)
    if definition is None or key not in answers:
        return math.nan
    try:
        return float(definition.question(key).choice(answers[key]).points)
    except KeyError:
        return math.nan


def _number(value: Decimal | int | None) -> float:
    return math.nan if value is None else float(value)


def _feature_values(row: Mapping[str, Any], definitions: Mapping[str, Definition]) -> dict[str, float]:
    answers = row["answers"] or {}
    return {
        "tolerance_score": _number(row["tolerance_score"]),
        "capacity_score": _number(row["capacity_score"]),
        "effective_risk_level": _number(row["effective_risk_level"]),
        "horizon_points": _points(definitions, row["questionnaire_version"], answers, "horizon"),
        "age_points": _points(definitions, row["questionnaire_version"], answers, "age"),
    }


def _behaviour_score(row: Mapping[str, Any]) -> float:
    # No score row on the latest scoring date means no events in the window: the score is 0 by definition
    # (profiling/services/behaviour.py: behaviour_scores_update).
    return float(row["latest_behaviour_score"] or 0)


def _current_profiles(investor: User | None = None) -> list[dict[str, Any]]:
    """The newest profile version of every active investor (or one), with their behavioural score on the latest
    scoring date (``None`` when they have no row that day): one query."""
    newest_version = (
        RiskProfile.objects.filter(investor=OuterRef("investor")).order_by("-version").values("version")[:1]
    )
    latest_scoring_date = BehaviorScore.objects.order_by("-as_of").values("as_of")[:1]
    latest_score = BehaviorScore.objects.filter(
        investor=OuterRef("investor"), as_of=Subquery(latest_scoring_date)
    ).values("score")[:1]
    profiles = RiskProfile.objects.filter(
        version=Subquery(newest_version), investor__role=Role.INVESTOR, investor__is_active=True
    )
    if investor is not None:
        profiles = profiles.filter(investor=investor)
    return list(
        profiles.annotate(latest_behaviour_score=Subquery(latest_score))
        .order_by("investor_id")  # a fixed row order keeps the fit deterministic
        .values(*PROFILE_FIELDS)
    )


def segments_fit() -> dict[str, Any]:
    """Fit segments over every current profile and store them as the next model version, with one audit event.

    With too few investors (or nothing to tell apart) nothing is written and ``{"skipped": reason}`` is returned.
    """
    rows = _current_profiles()
    definitions = _definitions()
    try:
        result = cluster_investors(
            [[values[name] for name in FEATURES] for values in (_feature_values(row, definitions) for row in rows)]
        )
    except TooFewInvestorsError as exc:
        return {"skipped": str(exc), "n_investors": exc.n_investors, "minimum": exc.minimum}
    except SegmentationError as exc:
        return {"skipped": str(exc), "n_investors": len(rows)}

    # Described per segment but not clustered (see profiling/segmentation.py): the behavioural score's median, how
    # many members behaved fearfully (a negative score) and how many carry inconsistency flags.
    profiles = result.profiles_json()
    members = list(zip(rows, result.segments, strict=True))
    behaviour_medians = segment_medians([_behaviour_score(r) for r in rows], result.segments, result.n_segments)
    fearful = Counter(segment for row, segment in members if _behaviour_score(row) < 0)
    flagged = Counter(segment for row, segment in members if row["flags"])
    for segment, profile in profiles.items():
        profile["behaviour_score"] = behaviour_medians[int(segment)]
        profile["fearful"] = fearful[int(segment)]
        profile["flagged"] = flagged[int(segment)]

    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SEGMENTS_LOCK_KEY])
        # SQLite runs IMMEDIATE transactions (settings), which already serialize writers.
        last = SegmentationModel.objects.order_by("-version").values_list("version", flat=True).first()
        model = SegmentationModel.objects.create(
            version=(last or 0) + 1,
            algorithm=result.algorithm,
            features=list(result.features),
            n_segments=result.n_segments,
            silhouette_scores=result.silhouette_json(),
            parameters=result.parameters(),
            profiles=profiles,
            n_investors=len(rows),
        )
        InvestorSegment.objects.bulk_create(
            [
                InvestorSegment(model=model, investor_id=row["investor_id"], segment=segment)
                for row, segment in zip(rows, result.segments, strict=True)
            ],
            batch_size=2000,
        )
        audit_record(
            actor=None,
            action="segments.fitted",
            obj=model,
            payload={
                "version": model.version,
                "algorithm": model.algorithm,
                "features": model.features,
                "k": model.n_segments,
                "silhouette_scores": model.silhouette_scores,
                "n_investors": model.n_investors,
                "sizes": {str(s): size for s, size in result.sizes().items()},
            },
        )
    return {
        "version": model.version,
        "k": model.n_segments,
        "silhouette_scores": model.silhouette_scores,
        "n_investors": model.n_investors,
        "sizes": {str(s): size for s, size in result.sizes().items()},
    }


def segment_assign(*, investor: User) -> InvestorSegment | None:
    """Place one investor in the newest stored segments (for a sign-up between weekly fits); audited.

    Pure arithmetic on the stored parameters, no refit. ``None`` when no model is stored or the investor has no
    profile; an investor already placed by that model keeps the segment the fit gave them.
    """
    model = SegmentationModel.objects.order_by("-version").first()
    rows = _current_profiles(investor)
    if model is None or not rows:
        return None
    values = _feature_values(rows[0], _definitions())
    # The stored model's own feature list: a feature this code no longer computes is imputed like a missing value.
    segment = nearest_segment([values.get(name) for name in model.features], model.parameters)
    with transaction.atomic():
        assignment, created = InvestorSegment.objects.get_or_create(
            model=model, investor=investor, defaults={"segment": segment}
        )
        if created:
            audit_record(
                actor=None,
                action="segment.assigned",
                obj=assignment,
                subject_id=investor.pk,
                payload={"model_version": model.version, "segment": segment},
            )
    return assignment
