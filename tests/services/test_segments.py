"""Segments on the database: a fit stores a versioned model with its metrics, one segment per investor and one
audit event; too few investors write nothing; advisors see their own clients' segments and nobody else's;
segments never change a risk level."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from advisor.services import investor_assign_advisor
from compliance.audit import audit_verify
from compliance.models import AuditEvent
from profiling.models import BehaviorScore, InvestorSegment, RiskProfile, SegmentationModel
from profiling.segmentation import FEATURES, MAX_SEGMENTS, MIN_INVESTORS
from profiling.services import profile_submit
from profiling.services.segments import _current_profiles, segment_assign, segments_fit
from tests.factories import BALANCED_ANSWERS, InvestorFactory

pytestmark = pytest.mark.django_db

CAUTIOUS_ANSWERS = {
    **BALANCED_ANSWERS,
    "age": "gt70",
    "dependents": "none",
    "income": "30to60k",
    "income_stability": "unstable",
    "emergency_savings": "lt3",
    "invested_share": "gt75",
    "liquidity_3y": "half",
    "horizon": "lt3",
    "knowledge": "basic",
    "experience": "little",
    "past_downturn": "sold_some",
    "objective": "preserve",
    "fall_10": "sell_some",
    "fall_20": "sell_some",
    "fall_35": "sell_some",
    "sure_gain": "sure",
    "trade_off": "sure",
}
BOLD_ANSWERS = {
    **BALANCED_ANSWERS,
    "age": "lt30",
    "dependents": "none",
    "income": "120to250k",
    "income_stability": "very_stable",
    "emergency_savings": "6to12",
    "invested_share": "10to25",
    "liquidity_3y": "none",
    "horizon": "gt20",
    "knowledge": "good",
    "experience": "good",
    "past_downturn": "bought",
    "objective": "max_growth",
    "fall_10": "buy_more",
    "fall_20": "buy_more",
    "fall_35": "buy_more",
    "sure_gain": "long_shot",
    "trade_off": "widest_range",
}
# Within a group investors differ a little (a capacity and a tolerance answer), as real people do.
VARIANTS = [
    {},
    {"income": "60to120k"},
    {"knowledge": "moderate"},
    {"dependents": "two"},
    {"experience": "some"},
]


def investors_with_profiles(per_group: int) -> dict[str, list]:  # type: ignore[type-arg]
    groups: dict[str, list] = {}  # type: ignore[type-arg]
    for name, answers in (("cautious", CAUTIOUS_ANSWERS), ("balanced", BALANCED_ANSWERS), ("bold", BOLD_ANSWERS)):
        groups[name] = []
        for i in range(per_group):
            investor = InvestorFactory(email=f"{name}{i}@example.com", password=None)
            profile_submit(investor=investor, answers={**answers, **VARIANTS[i % len(VARIANTS)]})
            groups[name].append(investor)
    return groups


@pytest.fixture
def groups(db: None) -> dict[str, list]:  # type: ignore[type-arg]
    """Three groups of 14: cautious and older, balanced, bold and young."""
    return investors_with_profiles(per_group=14)


def written() -> tuple[int, int, int]:
    return SegmentationModel.objects.count(), InvestorSegment.objects.count(), AuditEvent.objects.count()


def test_a_fit_stores_a_versioned_model_with_its_metrics_and_one_segment_per_investor(groups) -> None:  # type: ignore[no-untyped-def]
    events_before = AuditEvent.objects.count()
    levels_before = list(RiskProfile.objects.order_by("id").values_list("id", "effective_risk_level"))

    result = segments_fit()

    model = SegmentationModel.objects.get()
    assert model.version == 1 and result["version"] == 1
    assert model.n_investors == 42 and model.features == list(FEATURES)
    assert model.algorithm.startswith("StandardScaler+KMeans")
    assert model.n_segments == 3 == result["k"]
    assert list(model.silhouette_scores) == [str(k) for k in range(2, MAX_SEGMENTS + 1)]
    assert model.silhouette_scores["3"] == max(model.silhouette_scores.values())
    assert set(model.parameters) >= {"impute", "scaler_mean", "scaler_scale", "centres", "smallest_segment"}
    assert len(model.parameters["centres"]) == 3
    # one segment per investor, and each group is one segment
    assert InvestorSegment.objects.filter(model=model).count() == 42
    segment_of = dict(InvestorSegment.objects.values_list("investor_id", "segment"))
    for members in groups.values():
        assert len({segment_of[i.pk] for i in members}) == 1
    assert {segment_of[groups[name][0].pk] for name in groups} == {1, 2, 3}
    # segments are numbered by typical tolerance: the cautious group is segment 1
    assert segment_of[groups["cautious"][0].pk] == 1 and segment_of[groups["bold"][0].pk] == 3
    assert {s: p["size"] for s, p in model.profiles.items()} == {"1": 14, "2": 14, "3": 14}
    assert result["sizes"] == {"1": 14, "2": 14, "3": 14}
    assert model.profiles["1"]["label"] == "cautious, low capacity, short horizon, 60 or older"
    assert set(model.profiles["1"]) == {"size", "share", "label", "medians", "behaviour_score", "fearful", "flagged"}
    assert model.profiles["1"]["fearful"] == 0 and model.profiles["1"]["behaviour_score"] == 0.0
    assert model.profiles["1"]["medians"]["horizon_points"] == 0.0
    assert model.profiles["3"]["medians"]["age_points"] == 4.0
    # one audit event with the metrics, in the chain
    event = AuditEvent.objects.get(action="segments.fitted")
    assert AuditEvent.objects.count() == events_before + 1
    assert event.actor is None and event.object_id == str(model.pk)
    assert event.payload["version"] == 1 and event.payload["k"] == 3 and event.payload["n_investors"] == 42
    assert event.payload["silhouette_scores"] == model.silhouette_scores
    assert audit_verify()[1] is None
    # segments never set a risk level
    assert list(RiskProfile.objects.order_by("id").values_list("id", "effective_risk_level")) == levels_before


def test_fitting_again_stores_version_2_and_keeps_version_1(groups) -> None:  # type: ignore[no-untyped-def]
    segments_fit()

    result = segments_fit()

    assert result["version"] == 2
    assert list(SegmentationModel.objects.order_by("version").values_list("version", flat=True)) == [1, 2]
    assert InvestorSegment.objects.filter(model__version=1).count() == 42
    assert InvestorSegment.objects.filter(model__version=2).count() == 42
    assert AuditEvent.objects.filter(action="segments.fitted").count() == 2
    # the same profiles give the same segmentation
    first, second = SegmentationModel.objects.order_by("version")
    assert first.parameters == second.parameters and first.profiles == second.profiles


def test_too_few_investors_write_nothing(db: None) -> None:
    investors_with_profiles(per_group=(MIN_INVESTORS - 1) // 3)  # 18 investors
    before = written()

    result = segments_fit()

    assert result == {
        "skipped": f"Segmentation needs at least {MIN_INVESTORS} investors with a profile; there are 18.",
        "n_investors": 18,
        "minimum": MIN_INVESTORS,
    }
    assert written() == before == (0, 0, before[2])


def test_only_the_newest_profile_of_active_investors_counts_with_the_latest_behaviour_score(  # type: ignore[no-untyped-def]
    groups, django_assert_num_queries
) -> None:
    changed = groups["bold"][0]
    profile_submit(investor=changed, answers=CAUTIOUS_ANSWERS)  # version 2 replaces version 1
    BehaviorScore.objects.create(investor=changed, as_of=date(2026, 1, 5), score=Decimal("-0.5"))
    BehaviorScore.objects.create(investor=changed, as_of=date(2026, 2, 5), score=Decimal("-2.25"))
    # No row on the latest scoring date: no events left in the window, so the score is 0 now.
    calmed = groups["cautious"][1]
    BehaviorScore.objects.create(investor=calmed, as_of=date(2026, 1, 5), score=Decimal("-3"))
    flagged = profile_submit(investor=groups["cautious"][2], answers={**CAUTIOUS_ANSWERS, "fall_35": "rebalance"})
    assert [f["code"] for f in flagged.flags] == ["calmer_in_bigger_falls"]
    gone = groups["balanced"][0]
    gone.is_active = False
    gone.save(update_fields=["is_active"])

    with django_assert_num_queries(1):
        rows = _current_profiles()

    assert len(rows) == 41
    by_investor = {r["investor_id"]: r for r in rows}
    assert by_investor[changed.pk]["answers"]["horizon"] == "lt3"
    assert by_investor[changed.pk]["latest_behaviour_score"] == Decimal("-2.2500")
    assert by_investor[calmed.pk]["latest_behaviour_score"] is None
    result = segments_fit()
    assert result["n_investors"] == 41
    assert InvestorSegment.objects.get(investor=changed).segment == 1  # now with the cautious group
    assert not InvestorSegment.objects.filter(investor=gone).exists()
    cautious = SegmentationModel.objects.get().profiles["1"]
    assert cautious["size"] == 15 and cautious["fearful"] == 1 and cautious["behaviour_score"] == 0.0
    assert cautious["flagged"] == 1


def test_a_new_investor_is_placed_with_the_stored_parameters(groups) -> None:  # type: ignore[no-untyped-def]
    segments_fit()
    newcomer = InvestorFactory(email="newcomer@example.com", password=None)
    assert segment_assign(investor=newcomer) is None  # no profile yet
    profile_submit(investor=newcomer, answers=BOLD_ANSWERS)

    assignment = segment_assign(investor=newcomer)

    assert assignment is not None and assignment.segment == 3 and assignment.model.version == 1
    event = AuditEvent.objects.get(action="segment.assigned")
    assert event.subject_id == newcomer.pk and event.payload == {"model_version": 1, "segment": 3}
    assert segment_assign(investor=newcomer) == assignment  # already placed: nothing new
    assert AuditEvent.objects.filter(action="segment.assigned").count() == 1


def test_no_stored_model_places_nobody(alice) -> None:  # type: ignore[no-untyped-def]
    profile_submit(investor=alice, answers=BALANCED_ANSWERS)

    assert segment_assign(investor=alice) is None
    assert InvestorSegment.objects.count() == 0


def test_the_command_prints_k_the_scores_and_the_sizes(groups) -> None:  # type: ignore[no-untyped-def]
    out = StringIO()

    call_command("segment_investors", stdout=out)

    text = out.getvalue()
    assert "Segmentation v1: k=3 over 42 investors." in text
    assert "  <- chosen" in text and all(f"k={k}:" in text for k in range(2, MAX_SEGMENTS + 1))
    assert "segment 1: 14" in text and "segment 3: 14" in text


def test_the_command_says_why_nothing_was_stored(db: None) -> None:
    out = StringIO()

    call_command("segment_investors", stdout=out)

    assert "Nothing stored: Segmentation needs at least 20 investors with a profile; there are 0." in out.getvalue()
    assert SegmentationModel.objects.count() == 0


@pytest.fixture
def carols_client(groups, carol, erin):  # type: ignore[no-untyped-def]
    client = groups["cautious"][0]
    investor_assign_advisor(investor=client, advisor=carol, actor=erin)
    segments_fit()
    return client


def test_the_assigned_advisor_sees_the_segment_on_the_client_page(client, carols_client, carol) -> None:  # type: ignore[no-untyped-def]
    client.force_login(carol)

    response = client.get(f"/advisor/clients/{carols_client.pk}/")

    assert response.status_code == 200
    page = response.content.decode()
    profile = SegmentationModel.objects.get().profiles["1"]
    assert '<div class="value" id="segment">1</div>' in page
    assert f'<div id="segment-label">{profile["label"]}</div>' in page
    medians = profile["medians"]
    assert (
        f'<div class="muted" id="segment-typical">14 clients; typical tolerance {medians["tolerance_score"]}, '
        f"capacity {medians['capacity_score']}, risk level {medians['effective_risk_level']}, "
        f"horizon points {medians['horizon_points']}, age points {medians['age_points']}</div>"
    ) in page
    assert "Segments help you triage and compare peers; they never set a risk level." in page


def test_the_assigned_advisor_gets_the_segment_and_its_typical_profile_from_the_api(  # type: ignore[no-untyped-def]
    client, carols_client, carol
) -> None:
    client.force_login(carol)

    response = client.get(f"/api/clients/{carols_client.pk}/profile/")

    assert response.status_code == 200
    segment = response.json()["segment"]
    assert segment["model_version"] == 1 and segment["segment"] == 1
    assert segment["typical_profile"] == SegmentationModel.objects.get().profiles["1"]
    assert segment["typical_profile"]["size"] == 14


def test_another_advisor_gets_404(client, carols_client, dave) -> None:  # type: ignore[no-untyped-def]
    client.force_login(dave)

    assert client.get(f"/advisor/clients/{carols_client.pk}/").status_code == 404
    assert client.get(f"/api/clients/{carols_client.pk}/profile/").status_code == 404
