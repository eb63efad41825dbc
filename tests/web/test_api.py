"""API writes: bad input is a 400 with field messages and leaves nothing behind; good input is audited."""

from __future__ import annotations

from decimal import Decimal

import pytest

from compliance.models import AuditEvent
from portfolios.models import CashMovement, Order, Recommendation
from portfolios.services.accounts import account_open
from portfolios.services.pipeline import pipeline_run
from profiling.models import RiskProfile
from tests.factories import BALANCED_ANSWERS

pytestmark = pytest.mark.django_db


def counts() -> tuple[int, int, int, int]:
    return (
        CashMovement.objects.count(),
        RiskProfile.objects.count(),
        AuditEvent.objects.count(),
        Order.objects.count(),
    )


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("-5", "Ensure this value is greater than or equal to 0.01."),
        ("0", "Ensure this value is greater than or equal to 0.01."),
        ("abc", "A valid number is required."),
        ("10.001", "Ensure that there are no more than 2 decimal places."),
        ("20000000", "At most 10,000,000.00 per deposit."),
        ("", "A valid number is required."),
    ],
)
def test_bad_deposits_are_400_with_a_field_message(client, alice, amount: str, message: str) -> None:  # type: ignore[no-untyped-def]
    account = account_open(owner=alice)
    client.force_login(alice)
    before = counts()
    response = client.post(f"/api/accounts/{account.pk}/deposits/", {"amount": amount}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["amount"] == [message]
    assert counts() == before


def test_a_deposit_is_recorded_and_audited(client, alice) -> None:  # type: ignore[no-untyped-def]
    account = account_open(owner=alice)
    client.force_login(alice)
    response = client.post(
        f"/api/accounts/{account.pk}/deposits/", {"amount": "1234.50"}, content_type="application/json"
    )
    assert response.status_code == 201 and response.json()["amount"] == "1234.50"
    movement = CashMovement.objects.get(account=account)
    assert movement.amount == Decimal("1234.50") and movement.kind == "deposit"
    event = AuditEvent.objects.filter(action="account.deposit").get()
    assert event.actor == alice and event.subject == alice and event.payload["amount"] == "1234.50"


def test_questionnaire_answers_are_validated_per_question(client, alice) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    before = counts()
    answers = {**BALANCED_ANSWERS, "horizon": "forever"}
    del answers["age"]
    response = client.post("/api/profile/", {"answers": answers}, content_type="application/json")
    assert response.status_code == 400
    assert set(response.json()["answers"]) == {"age", "horizon"}
    assert counts() == before
    missing = client.post("/api/profile/", {}, content_type="application/json")
    assert missing.status_code == 400 and "answers" in missing.json()


def test_questionnaire_scores_and_history(client, alice) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    assert client.get("/api/profile/").status_code == 404
    created = client.post("/api/profile/", {"answers": BALANCED_ANSWERS}, content_type="application/json")
    assert created.status_code == 201
    body = created.json()
    assert 1 <= body["risk_level"] <= 10 and body["questionnaire_version"] == "2026.2"
    assert client.get("/api/profile/").json()["id"] == body["id"]
    assert [p["id"] for p in client.get("/api/profile/history/").json()] == [body["id"]]
    versions = client.get("/api/questionnaires/").json()
    assert [(v["version"], v["is_default"]) for v in versions] == [("2026.1", False), ("2026.2", True)]
    sections = client.get("/api/questionnaires/2026.2/").json()["definition"]["sections"]
    assert {q["key"] for s in sections for q in s["questions"]} == set(BALANCED_ANSWERS)


def test_decisions_through_the_api(client, funded_alice, carol) -> None:  # type: ignore[no-untyped-def]
    pipeline_run()
    rec = Recommendation.objects.get()
    client.force_login(carol)
    rejected = client.post(f"/api/recommendations/{rec.pk}/reject/", {"comment": ""}, content_type="application/json")
    assert rejected.status_code == 400 and rejected.json()["comment"] == ["Say why the recommendation is rejected."]
    detail = client.get(f"/api/recommendations/{rec.pk}/").json()
    assert detail["status"] == "pending" and len(detail["findings"]) == 6 and detail["trades"]
    ok = client.post(
        f"/api/recommendations/{rec.pk}/reject/", {"comment": "Wait a month"}, content_type="application/json"
    )
    assert ok.status_code == 200 and ok.json()["status"] == "rejected"
    again = client.post(f"/api/recommendations/{rec.pk}/approve/", {}, content_type="application/json")
    assert again.status_code == 409 and "rejected" in again.json()["detail"]
    assert not Order.objects.exists()
