"""Profiling API: 400s with field messages that write nothing, and who may see what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from compliance.models import AuditEvent
from profiling.models import BehaviorEvent, Goal, Preferences, RiskProfile
from tests.factories import BALANCED_ANSWERS

pytestmark = pytest.mark.django_db


def counts() -> tuple[int, int, int, int]:
    return RiskProfile.objects.count(), Goal.objects.count(), Preferences.objects.count(), AuditEvent.objects.count()


def future(days: int) -> str:
    return (timezone.localdate() + timedelta(days=days)).isoformat()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"answers": BALANCED_ANSWERS | {"age": ""}}, "answers", "This question must be answered."),
        ({"answers": BALANCED_ANSWERS | {"horizon": "9"}}, "answers", "'9' is not a valid choice"),
        ({"answers": BALANCED_ANSWERS, "version": "0.1"}, "version", "'0.1' is not a version"),
        ({"version": "2026.2"}, "answers", "This field is required."),
    ],
)
def test_bad_responses(client, alice, market_data, body, field, message) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    before = counts()
    response = client.post("/api/profile/", body, content_type="application/json")
    assert response.status_code == 400
    assert message in str(response.json()[field])
    assert counts() == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"target_date": "2020-01-01"}, "target_date"), ({"target_amount": "-100"}, "target_amount"),
     ({"monthly_contribution": "abc"}, "monthly_contribution"), ({"goal_type": "boat"}, "goal_type")],
)  # fmt: skip
def test_bad_goals(client, alice, changes, field) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    before = counts()
    body = {"goal_type": "home", "name": "Home", "target_amount": "50000", "target_date": future(2000)} | changes
    response = client.post("/api/goals/", body, content_type="application/json")
    assert response.status_code == 400 and field in response.json()
    assert counts() == before


def test_goals_crud_and_scoping(client, alice, bob, market_data) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    body = {"goal_type": "education", "name": "College", "target_amount": "80000.00", "target_date": future(5000)}
    created = client.post("/api/goals/", body, content_type="application/json")
    assert created.status_code == 201
    goal_id = created.json()["id"]
    changed = client.put(f"/api/goals/{goal_id}/", body | {"priority": 2}, content_type="application/json")
    assert changed.status_code == 200 and changed.json()["priority"] == 2
    client.force_login(bob)
    assert client.get(f"/api/goals/{goal_id}/").status_code == 404
    assert client.put(f"/api/goals/{goal_id}/", body, content_type="application/json").status_code == 404
    assert client.delete(f"/api/goals/{goal_id}/").status_code == 404
    assert client.get("/api/goals/").json() == []
    client.force_login(alice)
    assert client.delete(f"/api/goals/{goal_id}/").status_code == 204
    assert client.get("/api/goals/").json() == []
    assert Goal.objects.get(pk=goal_id).is_active is False  # kept for history


def test_preferences_round_trip(client, alice) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    assert client.get("/api/preferences/").status_code == 404
    bad = client.put("/api/preferences/", {"marginal_tax_rate": "1.5"}, content_type="application/json")
    assert bad.status_code == 400 and "marginal_tax_rate" in bad.json()
    body = {"esg_exclusions": ["weapons"], "account_types": ["taxable"], "marginal_tax_rate": "0.22"}
    assert client.put("/api/preferences/", body, content_type="application/json").status_code == 200
    assert client.get("/api/preferences/").json()["esg_exclusions"] == ["weapons"]


def test_investors_cannot_write_behaviour_events(client, alice) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    response = client.post(
        "/api/behavior-events/", {"event_type": "added_money_in_fall"}, content_type="application/json"
    )
    assert response.status_code == 405
    assert not BehaviorEvent.objects.exists()
    assert client.get("/api/behavior-events/").json()["results"] == []


def test_client_profile_override_and_review_through_the_api(client, funded_alice, carol, dave) -> None:  # type: ignore[no-untyped-def]
    client.force_login(dave)
    assert client.get(f"/api/clients/{funded_alice.pk}/profile/").status_code == 404
    client.force_login(carol)
    profile = client.get(f"/api/clients/{funded_alice.pk}/profile/").json()
    assert profile["investor"] == "alice@example.com" and len(profile["history"]) == 1
    no_reason = client.post(
        f"/api/clients/{funded_alice.pk}/override/", {"risk_level": 2, "reason": ""}, content_type="application/json"
    )
    assert no_reason.status_code == 400 and no_reason.json()["reason"] == ["An override needs a reason."]
    done = client.post(
        f"/api/clients/{funded_alice.pk}/override/",
        {"risk_level": 2, "reason": "Short of cash this year"},
        content_type="application/json",
    )
    assert done.status_code == 201 and done.json()["effective_risk_level"] == 2 and done.json()["version"] == 2
    review = client.post(f"/api/clients/{funded_alice.pk}/review/", {"comment": "ok"}, content_type="application/json")
    assert review.status_code == 409  # nothing flagged to review


def test_pages_render_for_their_roles(client, funded_alice, carol) -> None:  # type: ignore[no-untyped-def]
    from portfolios.services.pipeline import pipeline_run

    pipeline_run()  # builds the model portfolios the result page explains
    client.force_login(funded_alice)
    for url in ("/profile/result/", "/profile/history/", "/goals/", "/preferences/"):
        assert client.get(url).status_code == 200, url
    page = client.get("/profile/result/").content.decode()
    assert "What your level means" in page and 'id="bad-year"' in page
    client.force_login(carol)
    page = client.get(f"/advisor/clients/{funded_alice.pk}/").content.decode()
    assert "Override the risk level" in page and "Profile history" in page


def test_the_bad_year_is_a_loss_only_when_it_is_negative() -> None:
    from decimal import Decimal
    from types import SimpleNamespace

    from portfolios.outlook import explain_level

    risky = explain_level(SimpleNamespace(expected_return=Decimal("0.08"), volatility=Decimal("0.15")))  # type: ignore[arg-type]
    assert risky is not None
    assert risky["bad_year"] == Decimal("-0.16675") and risky["bad_year_loss"] == Decimal("0.16675")
    assert risky["bad_year_on_10k"] == Decimal("1668")
    calm = explain_level(SimpleNamespace(expected_return=Decimal("0.03"), volatility=Decimal("0.01")))  # type: ignore[arg-type]
    assert calm is not None and calm["bad_year"] > 0 and calm["bad_year_loss"] == 0


def test_restore_level_without_a_step_changes_nothing(client, funded_alice) -> None:  # type: ignore[no-untyped-def]
    client.force_login(funded_alice)
    before = counts()
    response = client.post("/profile/restore-level/", follow=True)
    assert response.status_code == 200 and "no behavioural step to restore" in response.content.decode()
    assert counts() == before
    assert 'id="restore"' not in client.get("/profile/result/").content.decode()
