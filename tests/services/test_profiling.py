"""Profile versions, confirmation and advisor review, overrides, goals and preferences through services."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from advisor.errors import InvalidInputError, InvalidStateError, NotAllowedError
from compliance.models import AuditEvent
from portfolios.models import Order, Recommendation
from portfolios.services.pipeline import pipeline_run
from portfolios.services.recommendations import recommendation_approve
from profiling.models import Goal, Preferences, ProfileSource, RiskProfile
from profiling.scoring import load_definition, score_answers
from profiling.services import (
    goal_create,
    goal_deactivate,
    goal_update,
    preferences_update,
    profile_confirm,
    profile_override,
    profile_review,
    profile_submit,
)
from tests.factories import BALANCED_ANSWERS

pytestmark = pytest.mark.django_db
INCONSISTENT = BALANCED_ANSWERS | {"fall_10": "sell_all", "fall_20": "sell_all", "fall_35": "sell_all",
                                   "objective": "max_growth"}  # fmt: skip


def in_years(years: float) -> str:
    return (timezone.localdate() + timedelta(days=round(years * 365.25))).isoformat()


def goal_data(**overrides: object) -> dict[str, object]:
    return {"goal_type": "retirement", "name": "Retire", "target_amount": "400000.00", "target_date": in_years(25),
            "initial_amount": "20000", "monthly_contribution": "800", "priority": 1} | overrides  # fmt: skip


def counts() -> tuple[int, int, int, int]:
    return RiskProfile.objects.count(), Goal.objects.count(), Preferences.objects.count(), AuditEvent.objects.count()


def test_each_response_is_a_new_version_and_old_versions_keep_their_scores(alice, market_data) -> None:  # type: ignore[no-untyped-def]
    first = profile_submit(investor=alice, answers=BALANCED_ANSWERS)
    old_definition = load_definition("2026.1")
    old_answers = {q.key: q.choices[-1].key for q in old_definition.questions}
    second = profile_submit(investor=alice, answers=old_answers, version="2026.1")
    assert (first.version, second.version) == (1, 2)
    assert (first.questionnaire_version, second.questionnaire_version) == ("2026.2", "2026.1")
    first.refresh_from_db()
    expected = score_answers(load_definition("2026.2"), BALANCED_ANSWERS)
    assert first.tolerance_score == Decimal(str(expected.tolerance_score)) and first.risk_level == expected.risk_level
    assert second.risk_level == 10 and second.effective_risk_level == 10
    assert [p.version for p in alice.risk_profiles.order_by("-version")] == [2, 1]


def test_unknown_version_and_bad_answers_write_nothing(alice, market_data) -> None:  # type: ignore[no-untyped-def]
    before = counts()
    with pytest.raises(InvalidInputError) as info:
        profile_submit(investor=alice, answers=BALANCED_ANSWERS, version="1999.9")
    assert "'1999.9' is not a version" in info.value.fields["version"]
    from profiling.scoring import InvalidAnswersError

    with pytest.raises(InvalidAnswersError):
        profile_submit(investor=alice, answers=BALANCED_ANSWERS | {"age": "200"})
    assert counts() == before


def test_inconsistent_answers_need_confirmation_and_advisor_review_before_approval(  # type: ignore[no-untyped-def]
    funded_alice, carol, dave
) -> None:
    profile = profile_submit(investor=funded_alice, answers=INCONSISTENT)
    assert [f["code"] for f in profile.flags] == ["panic_seller_seeks_max_growth"]
    assert profile.needs_confirmation and profile.needs_advisor_review
    pipeline_run()
    rec = Recommendation.objects.get()
    with pytest.raises(InvalidStateError, match="review the profile"):
        recommendation_approve(recommendation_id=rec.pk, advisor=carol)
    assert not Order.objects.exists()
    profile_confirm(investor=funded_alice, profile_id=profile.pk)
    with pytest.raises(NotAllowedError):
        profile_review(advisor=dave, profile_id=profile.pk, comment="not my client")
    with pytest.raises(InvalidInputError):
        profile_review(advisor=carol, profile_id=profile.pk, comment=" ")
    profile_review(advisor=carol, profile_id=profile.pk, comment="Called: she accepts large swings.")
    profile.refresh_from_db()
    assert profile.confirmed_at and profile.reviewed_by == carol and not profile.needs_advisor_review
    recommendation_approve(recommendation_id=rec.pk, advisor=carol)
    actions = list(AuditEvent.objects.filter(object_id=str(profile.pk)).values_list("action", flat=True))
    assert actions == ["profile.scored", "profile.confirmed", "profile.reviewed"]


def test_consistent_answers_need_no_review(funded_alice) -> None:  # type: ignore[no-untyped-def]
    profile = funded_alice.risk_profiles.get()
    assert profile.flags == [] and not profile.needs_advisor_review
    with pytest.raises(InvalidStateError):
        profile_confirm(investor=funded_alice, profile_id=profile.pk)


def test_advisor_override_needs_a_reason_and_is_a_new_version(funded_alice, carol, dave, erin) -> None:  # type: ignore[no-untyped-def]
    before = counts()
    with pytest.raises(InvalidInputError) as info:
        profile_override(advisor=carol, investor=funded_alice, risk_level=11, reason="")
    assert set(info.value.fields) == {"risk_level", "reason"}
    for outsider in (dave, erin):
        with pytest.raises(NotAllowedError):
            profile_override(advisor=outsider, investor=funded_alice, risk_level=3, reason="x")
    assert counts() == before
    profile = profile_override(advisor=carol, investor=funded_alice, risk_level=3, reason="Buying a house next year")
    assert profile.version == 2 and profile.source == ProfileSource.ADVISOR_OVERRIDE
    assert profile.effective_risk_level == 3 and profile.created_by == carol
    event = AuditEvent.objects.last()
    assert event.action == "profile.overridden" and event.payload["new_effective_risk_level"] == 3
    # The pipeline now targets the overridden level.
    pipeline_run()
    assert Recommendation.objects.get().risk_level == 3


def test_a_near_goal_caps_capacity_and_is_explained(funded_alice) -> None:  # type: ignore[no-untyped-def]
    start = funded_alice.risk_profiles.get()
    assert start.risk_level > 3
    goal_create(investor=funded_alice, data=goal_data(target_amount="100000", target_date=in_years(30)))
    assert funded_alice.risk_profiles.count() == 1  # a far goal changes nothing
    house = goal_create(investor=funded_alice, data=goal_data(goal_type="home", name="House", target_date=in_years(2)))
    capped = funded_alice.risk_profiles.order_by("-version").first()
    assert capped.source == ProfileSource.GOALS and capped.capacity_cap == 3 and capped.risk_level == 3
    assert capped.effective_risk_level == 3 and "within 3 years" in capped.reason
    # Answering again keeps the cap while the goal stands.
    assert profile_submit(investor=funded_alice, answers=BALANCED_ANSWERS).risk_level == 3
    goal_deactivate(investor=funded_alice, goal_id=house.pk)
    lifted = funded_alice.risk_profiles.order_by("-version").first()
    assert lifted.capacity_cap is None and lifted.risk_level == start.risk_level


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"target_date": "2001-01-01"}, "target_date", "must be in the future"),
        ({"target_date": "soon"}, "target_date", "is not a date"),
        ({"target_amount": "-5"}, "target_amount", "greater than zero"),
        ({"initial_amount": "-1"}, "initial_amount", "Must not be negative"),
        ({"monthly_contribution": "12.345"}, "monthly_contribution", "two decimal places"),
        ({"goal_type": "yacht"}, "goal_type", "One of"),
        ({"name": ""}, "name", "Give the goal a name"),
        ({"priority": 9}, "priority", "from 1"),
        ({"account": "999999"}, "account", "one of your accounts"),
    ],
)
def test_bad_goals_are_refused_with_field_messages(alice, changes, field, message) -> None:  # type: ignore[no-untyped-def]
    before = counts()
    with pytest.raises(InvalidInputError) as info:
        goal_create(investor=alice, data=goal_data(**changes))
    assert message in info.value.fields[field]
    assert counts() == before


def test_goal_changes_are_audited_with_old_and_new_values(alice, bob, market_data) -> None:  # type: ignore[no-untyped-def]
    goal = goal_create(investor=alice, data=goal_data())
    goal_update(investor=alice, goal_id=goal.pk, data=goal_data(monthly_contribution="1000"))
    event = AuditEvent.objects.filter(action="goal.updated").get()
    assert event.payload["old"]["monthly_contribution"] == "800.00"
    assert event.payload["new"]["monthly_contribution"] == "1000.00"
    with pytest.raises(NotAllowedError):
        goal_update(investor=bob, goal_id=goal.pk, data=goal_data())
    with pytest.raises(NotAllowedError):
        goal_deactivate(investor=bob, goal_id=goal.pk)


def test_preferences_are_validated_and_versioned(alice) -> None:  # type: ignore[no-untyped-def]
    before = counts()
    with pytest.raises(InvalidInputError) as info:
        preferences_update(
            investor=alice,
            data={"esg_exclusions": ["casinos"], "account_types": ["offshore"], "marginal_tax_rate": "0.9",
                  "liquidity_need": "urgent"},
        )  # fmt: skip
    assert set(info.value.fields) == {"esg_exclusions", "account_types", "marginal_tax_rate", "liquidity_need"}
    assert counts() == before
    first = preferences_update(
        investor=alice,
        data={"esg_exclusions": ["tobacco"], "account_types": ["taxable"], "marginal_tax_rate": "0.24"},
    )
    second = preferences_update(
        investor=alice,
        data={"esg_exclusions": ["fossil_fuels", "tobacco"], "account_types": ["taxable", "roth_ira"],
              "marginal_tax_rate": "0.32", "liquidity_need": "low"},
    )  # fmt: skip
    assert (first.version, second.version) == (1, 2)
    assert second.marginal_tax_rate == Decimal("0.3200") and second.esg_exclusions == ["fossil_fuels", "tobacco"]
    event = AuditEvent.objects.filter(action="preferences.updated").last()
    assert event.payload["old"]["esg_exclusions"] == ["tobacco"] and event.payload["new"]["liquidity_need"] == "low"
