"""The optimization runs and parameter-governance API, and the admin page /staff/optimization/."""

from __future__ import annotations

import json
from typing import Any

import pytest

from compliance.models import AuditEvent, ChangeStatus, ParameterChange, ParameterVersion
from compliance.parameters import parameter_change_propose, parameter_set_current
from portfolios.selectors import market_date_latest
from portfolios.services.optimization import model_portfolios_build
from tests.factories import AdminFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def frank(db: None) -> Any:
    return AdminFactory(email="frank@example.com", full_name="Frank Admin")


@pytest.fixture
def run(market_data: None) -> Any:
    return model_portfolios_build(as_of=market_date_latest())


def state() -> tuple[object, ...]:
    return (
        list(ParameterChange.objects.order_by("id").values_list("id", "status")),
        ParameterVersion.objects.count(),
        AuditEvent.objects.count(),
    )


def propose(actor: Any, **changes: Any) -> ParameterChange:
    values = parameter_set_current("rebalancing").values | changes
    return parameter_change_propose(actor=actor, name="rebalancing", values=values, reason="Fewer small trades")


# Optimization runs ------------------------------------------------------------------------------------------


def test_advisors_list_the_runs_with_what_reproduces_them(client, carol, run) -> None:  # type: ignore[no-untyped-def]
    client.force_login(carol)
    body = client.get("/api/optimization-runs/").json()
    assert body["count"] == 1
    [row] = body["results"]
    assert row == {
        "id": run.pk,
        "created_at": row["created_at"],
        "as_of": run.as_of.isoformat(),
        "status": "succeeded",
        "data_hash": run.data_hash,
        "fingerprint": run.fingerprint,
        "policy_version": 0,
        "solver": "CLARABEL (cvxpy, DPP)",
        "timings": run.timings,
        "flags": run.estimates["flags"],
        "error": "",
    }


def test_a_run_in_detail_has_its_parameters_estimates_and_model_portfolios(client, erin, run) -> None:  # type: ignore[no-untyped-def]
    client.force_login(erin)
    body = client.get(f"/api/optimization-runs/{run.pk}/").json()
    assert body["parameters"] == run.parameters and body["estimates"] == run.estimates
    levels = body["model_portfolios"]
    assert [p["risk_level"] for p in levels] == list(range(1, 11))
    first = run.model_portfolios.get(risk_level=1)
    assert levels[0]["objective"] == first.objective
    assert (levels[0]["expected_return"], levels[0]["volatility"]) == (
        str(first.expected_return),
        str(first.volatility),
    )
    assert levels[0]["binding"] == run.estimates["binding"]["1"]
    assert sum(float(w["weight"]) for w in levels[0]["weights"]) == pytest.approx(1, abs=1e-9)
    assert {"ticker", "asset_class", "weight"} == set(levels[0]["weights"][0])
    assert client.get("/api/optimization-runs/999999/").status_code == 404


def test_investors_see_no_runs(client, alice, run) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    assert client.get("/api/optimization-runs/").status_code == 403
    assert client.get(f"/api/optimization-runs/{run.pk}/").status_code == 403


def test_model_portfolios_carry_their_objective(client, alice, run) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    [level_1, *_] = client.get("/api/model-portfolios/").json()
    assert level_1["objective"] == run.model_portfolios.get(risk_level=1).objective


def test_an_admin_queues_a_reoptimization_and_an_advisor_cannot(  # type: ignore[no-untyped-def]
    client, carol, erin, run, django_capture_on_commit_callbacks
) -> None:
    client.force_login(carol)
    with django_capture_on_commit_callbacks() as queued:
        assert client.post("/api/optimization-runs/").status_code == 403
    assert queued == []
    client.force_login(erin)
    with django_capture_on_commit_callbacks() as queued:
        response = client.post("/api/optimization-runs/")
    assert response.status_code == 202 and len(queued) == 1
    assert response.json() == {
        "detail": f"Re-optimization queued: prices up to {run.as_of.isoformat()}, optimization parameters version 0.",
        "market_date": run.as_of.isoformat(),
        "policy_version": 0,
    }


# Parameters and changes -------------------------------------------------------------------------------------


def test_admins_read_the_parameters_in_force(client, erin, carol) -> None:  # type: ignore[no-untyped-def]
    client.force_login(carol)
    assert client.get("/api/parameters/").status_code == 403
    client.force_login(erin)
    body = client.get("/api/parameters/").json()
    assert body["optimization"] == {
        "version": 0,
        "values": parameter_set_current("optimization").values,
        "in_force_since": None,
        "change": None,
    }
    assert body["rebalancing"]["values"]["min_trade"] == "50"


def test_bad_values_are_400_with_field_messages_and_nothing_written(client, erin) -> None:  # type: ignore[no-untyped-def]
    client.force_login(erin)
    values = parameter_set_current("optimization").values | {"max_asset_weight": 2, "tau": "x"}
    before = state()
    response = client.post(
        "/api/parameter-changes/",
        {"name": "optimization", "values": values, "reason": ""},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "detail": "The parameter change is not valid.",
        "values.max_asset_weight": ["Must be between 0.01 and 1."],
        "values.tau": ["Enter a number."],
        "reason": ["Give the reason for the change."],
    }
    missing = client.post("/api/parameter-changes/", {"name": "optimization"}, content_type="application/json")
    assert missing.status_code == 400 and set(missing.json()) == {"values", "reason"}
    assert state() == before


def test_propose_then_another_admin_approves_over_the_api(client, erin, frank) -> None:  # type: ignore[no-untyped-def]
    # Erin proposes
    client.force_login(erin)
    values = parameter_set_current("rebalancing").values | {"min_trade": "75"}
    response = client.post(
        "/api/parameter-changes/",
        {"name": "rebalancing", "values": values, "reason": "Fewer small trades"},
        content_type="application/json",
    )
    assert response.status_code == 201
    proposed = response.json()
    change_id = proposed["id"]
    assert (proposed["status"], proposed["base_version"], proposed["proposed_by"], proposed["version"]) == (
        "pending",
        0,
        "erin@example.com",
        None,
    )
    assert proposed["changes"] == {"min_trade": {"old": "50", "new": "75"}}
    # and cannot approve her own change
    before = state()
    refused = client.post(f"/api/parameter-changes/{change_id}/approve/", {}, content_type="application/json")
    assert refused.status_code == 403
    assert refused.json() == {
        "detail": "You proposed this change: another admin must approve or reject it (four eyes)."
    }
    assert state() == before
    # Frank approves
    client.force_login(frank)
    approved = client.post(
        f"/api/parameter-changes/{change_id}/approve/", {"comment": "Agreed"}, content_type="application/json"
    )
    assert approved.status_code == 200
    assert (approved.json()["status"], approved.json()["version"], approved.json()["decided_by"]) == (
        "approved",
        1,
        "frank@example.com",
    )
    assert client.get("/api/parameters/").json()["rebalancing"]["version"] == 1
    listed = client.get("/api/parameter-changes/").json()
    assert [(c["id"], c["status"], c["changes"]) for c in listed] == [
        (change_id, "approved", {"min_trade": {"old": "50", "new": "75"}})
    ]
    # a second decision is a conflict
    again = client.post(
        f"/api/parameter-changes/{change_id}/reject/", {"comment": "No"}, content_type="application/json"
    )
    assert again.status_code == 409


def test_a_rejection_needs_a_comment(client, erin, frank) -> None:  # type: ignore[no-untyped-def]
    change = propose(erin, min_trade="75")
    client.force_login(frank)
    before = state()
    response = client.post(
        f"/api/parameter-changes/{change.pk}/reject/", {"comment": ""}, content_type="application/json"
    )
    assert response.status_code == 400 and response.json()["comment"] == ["Give the reason."]
    assert state() == before
    response = client.post(
        f"/api/parameter-changes/{change.pk}/reject/", {"comment": "Not now"}, content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["status"] == "rejected"
    assert client.post("/api/parameter-changes/999999/approve/", {}, content_type="application/json").status_code == 404


def test_the_schema_documents_the_new_endpoints(client, erin) -> None:  # type: ignore[no-untyped-def]
    client.force_login(erin)
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    assert {
        "/api/optimization-runs/",
        "/api/optimization-runs/{id}/",
        "/api/parameters/",
        "/api/parameter-changes/",
        "/api/parameter-changes/{id}/approve/",
        "/api/parameter-changes/{id}/reject/",
    } <= set(paths)
    assert "202" in paths["/api/optimization-runs/"]["post"]["responses"]
    examples = paths["/api/parameter-changes/"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert len(examples) == 2


# The admin page ---------------------------------------------------------------------------------------------


def test_the_page_shows_the_parameters_pending_changes_and_runs(client, erin, frank, run) -> None:  # type: ignore[no-untyped-def]
    change = propose(frank, min_trade="75")
    client.force_login(erin)
    page = client.get("/staff/optimization/").content.decode()
    assert "Optimization parameters, version 0" in page and "Rebalancing parameters, version 0" in page
    assert "Largest weight of one fund" in page and "<td>us_small</td>" in page
    assert f"#{change.pk}: rebalancing parameters, against version 0" in page
    assert f'action="/staff/optimization/changes/{change.pk}/approve/"' in page
    assert run.data_hash[:12] in page
    # the proposer is told someone else decides, and gets no decision form
    client.force_login(frank)
    page = client.get("/staff/optimization/").content.decode()
    assert "You proposed this change: another admin must approve or reject it." in page
    assert f'action="/staff/optimization/changes/{change.pk}/approve/"' not in page


def test_proposing_and_approving_on_the_page(client, erin, frank, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    client.force_login(erin)
    values = parameter_set_current("optimization").values | {"max_asset_weight": 0.3}
    response = client.post(
        "/staff/optimization/", {"name": "optimization", "values": json.dumps(values), "reason": "Smaller positions"}
    )
    assert response.status_code == 302
    change = ParameterChange.objects.get()
    client.force_login(frank)
    with django_capture_on_commit_callbacks() as queued:
        response = client.post(f"/staff/optimization/changes/{change.pk}/approve/", {"comment": ""}, follow=True)
    assert "Version 1 of the optimization parameters is in force. A re-optimization is queued." in (
        response.content.decode()
    )
    assert len(queued) == 1
    change.refresh_from_db()
    assert change.status == ChangeStatus.APPROVED and change.decided_by == frank


def test_page_refusals_render_the_form_again_with_messages(client, erin, frank) -> None:  # type: ignore[no-untyped-def]
    client.force_login(erin)
    before = state()
    response = client.post("/staff/optimization/", {"name": "rebalancing", "values": "{nope", "reason": "Why"})
    assert response.status_code == 400
    assert "Not valid JSON: Expecting property name enclosed in double quotes (line 1, column 2)." in (
        response.content.decode()
    )
    values = parameter_set_current("rebalancing").values | {"switch_back_days": 5}
    response = client.post(
        "/staff/optimization/", {"name": "rebalancing", "values": json.dumps(values), "reason": "Why"}
    )
    page = response.content.decode()
    assert response.status_code == 400 and "values.switch_back_days: A whole number of days from 31 to 365." in page
    assert "&quot;switch_back_days&quot;: 5" in page  # the posted values come back for correction
    assert state() == before
    # a rejection needs a reason; the proposer may not decide
    change = propose(frank, min_trade="75")
    before = state()
    response = client.post(f"/staff/optimization/changes/{change.pk}/reject/", {"comment": ""})
    assert response.status_code == 400 and "Give the reason." in response.content.decode()
    client.force_login(frank)
    response = client.post(f"/staff/optimization/changes/{change.pk}/approve/", {"comment": ""})
    assert response.status_code == 403 and "another admin must approve or reject it" in response.content.decode()
    assert state() == before


def test_the_rerun_button_queues_the_task(client, erin, run, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    client.force_login(erin)
    with django_capture_on_commit_callbacks() as queued:
        response = client.post("/staff/optimization/rerun/", follow=True)
    assert len(queued) == 1
    assert (
        f"Re-optimization queued: prices up to {run.as_of.isoformat()}, optimization parameters version 0."
        in response.content.decode()
    )
