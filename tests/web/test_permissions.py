"""Who may see what: every URL in the URL conf is classified, and each refusal is tested.

A new URL fails ``test_every_url_is_classified`` until it is added to ACCESS, so new
endpoints cannot ship without their permission tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from compliance.models import AuditEvent, ParameterChange, ParameterVersion
from portfolios.models import Account, CashMovement, OptimizationRun, Order, Recommendation
from portfolios.services.pipeline import pipeline_run

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Rule:
    method: str  # "get" or "post"
    allowed: tuple[str, ...]  # roles that may use it: "anon", "investor", "advisor", "admin"
    # "account", "recommendation", "profile", "goal", "client", "schedule" (a recurring deposit) or "withdrawal"
    # when the URL names Alice's
    owned: str = ""


PUBLIC = ("anon", "investor", "advisor", "admin")
ANYONE = ("investor", "advisor", "admin")
ACCESS: dict[str, Rule] = {
    "home": Rule("get", PUBLIC),
    "healthz": Rule("get", PUBLIC),
    "signup": Rule("get", ("anon",)),  # logged-in users are sent home
    "login": Rule("get", ("anon",)),
    "logout": Rule("post", PUBLIC),
    "password_reset": Rule("get", PUBLIC),
    "password_reset_done": Rule("get", PUBLIC),
    "password_reset_confirm": Rule("get", PUBLIC),
    "password_reset_complete": Rule("get", PUBLIC),
    "api-token": Rule("post", PUBLIC),
    "questionnaire": Rule("get", ("investor",)),
    "profile-confirm": Rule("post", ("investor",), owned="profile"),
    "profile-history": Rule("get", ("investor",)),
    "profile-restore": Rule("post", ("investor",)),
    "goals": Rule("get", ("investor",)),
    "goal-remove": Rule("post", ("investor",), owned="goal"),
    "preferences": Rule("get", ("investor",)),
    "advisor-client": Rule("get", ("advisor", "admin"), owned="client"),
    "advisor-client-override": Rule("post", ("advisor",), owned="client"),
    "advisor-client-review": Rule("post", ("advisor",), owned="client"),
    "advisor-client-tax": Rule("get", ("advisor", "admin"), owned="client"),
    "tax-summary": Rule("get", ("investor",)),
    "api-tax-summary": Rule("get", ("investor",)),
    "api-client-tax-summary": Rule("get", ("advisor", "admin"), owned="client"),
    "api-account-lots": Rule("get", ("investor", "advisor", "admin"), owned="account"),
    "api-account-realized-gains": Rule("get", ("investor", "advisor", "admin"), owned="account"),
    "api-questionnaires": Rule("get", ANYONE),
    "api-profile-confirm": Rule("post", ("investor",), owned="profile"),
    "api-goals": Rule("get", ("investor",)),
    "api-goal": Rule("get", ("investor",), owned="goal"),
    "api-preferences": Rule("get", ("investor",)),
    "api-behavior-events": Rule("get", ANYONE),
    "api-client-profile": Rule("get", ("advisor", "admin"), owned="client"),
    "api-client-override": Rule("post", ("advisor",), owned="client"),
    "api-client-review": Rule("post", ("advisor",), owned="client"),
    "profile-result": Rule("get", ("investor",)),
    "dashboard": Rule("get", ("investor",)),
    "deposit": Rule("post", ("investor",), owned="account"),
    "account-open": Rule("get", ("investor",)),
    "account-detail": Rule("get", ("investor", "advisor", "admin"), owned="account"),
    "recurring-deposit-create": Rule("post", ("investor",), owned="account"),
    "recurring-deposit-cancel": Rule("post", ("investor",), owned="schedule"),
    "withdrawal-request": Rule("post", ("investor",), owned="account"),
    "withdrawal-cancel": Rule("post", ("investor",), owned="withdrawal"),
    "recommendation": Rule("get", ("investor", "advisor", "admin"), owned="recommendation"),
    "recommendation-approve": Rule("post", ("advisor",), owned="recommendation"),
    "recommendation-reject": Rule("post", ("advisor",), owned="recommendation"),
    "model-portfolios": Rule("get", ANYONE),
    "model-whatif": Rule("get", ("advisor", "admin")),
    "advisor-queue": Rule("get", ("advisor",)),
    "staff-investors": Rule("get", ("admin",)),
    "staff-assign-advisor": Rule("post", ("admin",)),
    "staff-pipeline": Rule("get", ("admin",)),
    "staff-audit": Rule("get", ("admin",)),
    "staff-restricted": Rule("get", ("admin",)),
    "staff-restricted-remove": Rule("post", ("admin",)),
    "staff-optimization": Rule("get", ("admin",)),
    "staff-optimization-rerun": Rule("post", ("admin",)),
    "staff-parameter-approve": Rule("post", ("admin",)),
    "staff-parameter-reject": Rule("post", ("admin",)),
    "api-me": Rule("get", ANYONE),
    "api-questionnaire": Rule("get", ANYONE),
    "api-profile": Rule("get", ("investor",)),
    "api-profile-history": Rule("get", ("investor",)),
    "api-model-portfolios": Rule("get", ANYONE),
    "api-model-portfolios-whatif": Rule("get", ("advisor", "admin")),
    "api-assets": Rule("get", ANYONE),
    "api-account-target": Rule("get", ("investor", "advisor", "admin"), owned="account"),
    "api-accounts": Rule("get", ANYONE),
    "api-account": Rule("get", ("investor", "advisor", "admin"), owned="account"),
    "api-account-deposit": Rule("post", ("investor",), owned="account"),
    "api-account-ledger": Rule("get", ("investor", "advisor", "admin"), owned="account"),
    # GET here; the POST of the same URL (investors, own accounts) is tested in test_cash_flow_writes_*.
    "api-account-recurring-deposits": Rule("get", ("investor", "advisor", "admin"), owned="account"),
    "api-recurring-deposit-cancel": Rule("post", ("investor",), owned="schedule"),
    "api-account-withdrawals": Rule("get", ("investor", "advisor", "admin"), owned="account"),
    "api-withdrawal-cancel": Rule("post", ("investor",), owned="withdrawal"),
    "api-sell-everything-request": Rule("post", ("investor",), owned="account"),
    "api-recommendations": Rule("get", ANYONE),
    "api-recommendation": Rule("get", ("investor", "advisor", "admin"), owned="recommendation"),
    "api-recommendation-approve": Rule("post", ("advisor",), owned="recommendation"),
    "api-recommendation-reject": Rule("post", ("advisor",), owned="recommendation"),
    "api-pipeline-runs": Rule("get", ("admin",)),
    "api-audit-events": Rule("get", ("admin",)),
    "api-audit-verify": Rule("get", ("admin",)),
    "api-restricted-assets": Rule("get", ("admin",)),
    "api-optimization-runs": Rule("get", ("advisor", "admin")),
    "api-optimization-run": Rule("get", ("advisor", "admin")),
    "api-parameters": Rule("get", ("admin",)),
    "api-parameter-changes": Rule("get", ("admin",)),
    "api-parameter-change-approve": Rule("post", ("admin",)),
    "api-parameter-change-reject": Rule("post", ("admin",)),
    "api-schema": Rule("get", ANYONE),
    "api-docs": Rule("get", ANYONE),
}

# URLs that also take a write, for fewer roles than may read them: tested on their own below.
WRITES_ON_READ_URLS: dict[str, Rule] = {
    "staff-optimization": Rule("post", ("admin",)),  # propose a parameter change
    "api-optimization-runs": Rule("post", ("admin",)),  # queue a re-optimization
    "api-parameter-changes": Rule("post", ("admin",)),  # propose a parameter change
}
# URLs naming an object that is nobody's own (no investor's): which object of the world they name.
STAFF_OBJECTS = {
    "api-optimization-run": "optimization_run",
    "api-parameter-change-approve": "parameter_change",
    "api-parameter-change-reject": "parameter_change",
    "staff-parameter-approve": "parameter_change",
    "staff-parameter-reject": "parameter_change",
}


def url_names() -> dict[str, URLPattern]:
    found: dict[str, URLPattern] = {}

    def walk(patterns: list[object], namespace: str = "") -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace == "admin":
                    continue  # Django's admin checks is_staff itself (tested below)
                walk(pattern.url_patterns, namespace)
            elif isinstance(pattern, URLPattern) and pattern.name:
                found[pattern.name] = pattern

    walk(get_resolver().url_patterns)
    return found


def test_every_url_is_classified() -> None:
    assert set(url_names()) == set(ACCESS), "classify new URLs in ACCESS (and test who may use them)"


@pytest.fixture
def world(funded_alice, bob, carol, dave, erin):  # type: ignore[no-untyped-def]
    """Alice (Carol's client) has an account, a pending recommendation, a recurring deposit and a pending
    withdrawal; Bob, Dave and Erin are outsiders."""
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from compliance.parameters import parameter_change_propose, parameter_set_current
    from portfolios.models import WithdrawalRequest
    from portfolios.selectors import market_date_latest
    from portfolios.services.accounts import account_open
    from portfolios.services.cashflows import recurring_deposit_create
    from profiling.services import goal_create, preferences_update
    from tests.factories import AdminFactory

    account_open(owner=bob)
    preferences_update(
        investor=funded_alice,
        data={"esg_exclusions": [], "account_types": ["taxable"], "marginal_tax_rate": "0.24", "liquidity_need": "low"},
    )
    pipeline_run()
    recommendation = Recommendation.objects.get(account__owner=funded_alice)
    goal = goal_create(
        investor=funded_alice,
        data={"goal_type": "retirement", "name": "Retire", "target_amount": "500000",
              "target_date": (timezone.localdate() + timedelta(days=9000)).isoformat()},
    )  # fmt: skip
    # A second admin's pending change, so that Erin could decide it (four eyes).
    values = parameter_set_current("rebalancing").values | {"min_trade": "75"}
    change = parameter_change_propose(
        actor=AdminFactory(email="frank@example.com"), name="rebalancing", values=values, reason="Fewer small trades"
    )
    account = recommendation.account
    schedule = recurring_deposit_create(
        account=account, amount="250", frequency="monthly", start_date=market_date_latest(), actor=funded_alice
    )
    # Pending as if the cash did not cover it (Alice's $100,000 would pay any withdrawal at once).
    withdrawal = WithdrawalRequest.objects.create(account=account, amount=Decimal("10"), requested_by=funded_alice)
    return {
        "alice": funded_alice,
        "bob": bob,
        "carol": carol,
        "dave": dave,
        "erin": erin,
        "account": account,
        "recommendation": recommendation,
        "profile": funded_alice.risk_profiles.order_by("-version").first(),
        "goal": goal,
        "client": funded_alice,
        "optimization_run": recommendation.pipeline_run.optimization_run,
        "parameter_change": change,
        "schedule": schedule,
        "withdrawal": withdrawal,
    }


def url_for(name: str, world: dict[str, object]) -> str:
    rule = ACCESS[name]
    if name == "api-questionnaire":
        return reverse(name, kwargs={"version": "2026.2"})
    if name == "password_reset_confirm":
        return reverse(name, kwargs={"uidb64": "MQ", "token": "set-password"})
    if name == "staff-restricted-remove":
        return reverse(name, kwargs={"ticker": "VTI"})
    if name == "api-model-portfolios-whatif":
        return reverse(name) + "?risk_level=5"
    if name == "staff-assign-advisor":
        return reverse(name, kwargs={"pk": world["alice"].pk})  # type: ignore[attr-defined]
    if name in STAFF_OBJECTS:
        return reverse(name, kwargs={"pk": world[STAFF_OBJECTS[name]].pk})  # type: ignore[attr-defined]
    if rule.owned:
        return reverse(name, kwargs={"pk": world[rule.owned].pk})  # type: ignore[attr-defined]
    return reverse(name)


def call(client: Client, name: str, url: str) -> int:
    method = ACCESS[name].method
    data = {"comment": "permission test", "amount": "10"}
    return (client.post(url, data) if method == "post" else client.get(url)).status_code


def snapshot() -> tuple[object, ...]:
    return (
        CashMovement.objects.count(),
        Order.objects.count(),
        AuditEvent.objects.count(),
        list(Recommendation.objects.order_by("id").values_list("status", flat=True)),
        list(ParameterChange.objects.order_by("id").values_list("status", flat=True)),
        ParameterVersion.objects.count(),
        OptimizationRun.objects.count(),
    )


def test_anonymous_is_sent_to_login_or_refused(world, client) -> None:  # type: ignore[no-untyped-def]
    before, wrong = snapshot(), []
    for name, rule in sorted(ACCESS.items()):
        if "anon" in rule.allowed:
            continue
        url = url_for(name, world)
        response = client.post(url, {}) if rule.method == "post" else client.get(url)
        if name.startswith("api-"):
            refused = response.status_code in (401, 403)
        else:
            refused = response.status_code == 302 and response["Location"].startswith(reverse("login"))
        if not refused:
            wrong.append((name, response.status_code))
    assert wrong == []
    assert snapshot() == before


def test_wrong_role_is_refused_and_nothing_changes(world, client) -> None:  # type: ignore[no-untyped-def]
    before, wrong = snapshot(), []
    for role, user in (("investor", "bob"), ("advisor", "dave"), ("admin", "erin")):
        client.force_login(world[user])
        for name, rule in sorted(ACCESS.items()):
            if role in rule.allowed or "anon" in rule.allowed:
                continue
            status = call(client, name, url_for(name, world))
            if status not in (403, 404):
                wrong.append((role, name, status))
    assert wrong == []
    assert snapshot() == before


def test_writes_on_read_urls_are_refused_to_other_roles(world, client, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    """Advisors may list optimization runs but not queue one; nobody but an admin proposes a change."""
    before, wrong = snapshot(), []
    data = {"name": "rebalancing", "values": "{}", "reason": "permission test"}
    with django_capture_on_commit_callbacks() as queued:
        for name, rule in sorted(WRITES_ON_READ_URLS.items()):
            url = url_for(name, world)
            client.logout()
            response = client.post(url, data)
            refused = response.status_code in (401, 403) if name.startswith("api-") else response.status_code == 302
            if not refused:
                wrong.append(("anon", name, response.status_code))
            for role, user in (("investor", "alice"), ("advisor", "carol"), ("admin", "erin")):
                if role in rule.allowed:
                    continue
                client.force_login(world[user])
                status = client.post(url, data).status_code
                if status not in (403, 404):
                    wrong.append((role, name, status))
    assert wrong == [] and queued == []
    assert snapshot() == before


def test_other_investors_and_unassigned_advisors_cannot_touch_alices_objects(world, client) -> None:  # type: ignore[no-untyped-def]
    before, wrong, tried = snapshot(), [], 0
    for outsider, role in (("bob", "investor"), ("dave", "advisor")):
        client.force_login(world[outsider])
        for name, rule in sorted(ACCESS.items()):
            if not rule.owned or role not in rule.allowed:
                continue  # refused by role already (tested above)
            tried += 1
            status = call(client, name, url_for(name, world))
            if status not in (403, 404):
                wrong.append((outsider, name, status))
    assert tried >= 10 and wrong == []
    assert snapshot() == before


def test_owner_assigned_advisor_and_admin_can_read(world, client) -> None:  # type: ignore[no-untyped-def]
    for user in ("alice", "carol", "erin"):
        client.force_login(world[user])
        for name in ("recommendation", "api-recommendation", "api-account"):
            assert call(client, name, url_for(name, world)) == 200, (user, name)


def test_every_allowed_role_gets_through(world, client) -> None:  # type: ignore[no-untyped-def]
    """The other side of the table: the roles it allows get through (GET pages; writes are tested elsewhere)."""
    users = {"investor": "alice", "advisor": "carol", "admin": "erin"}
    for name, rule in sorted(ACCESS.items()):
        if rule.method != "get" or name == "password_reset_confirm":
            continue
        for role in rule.allowed:
            if role == "anon":
                client.logout()
            else:
                client.force_login(world[users[role]])
            status = call(client, name, url_for(name, world))
            assert status in (200, 302), (name, role, status)


def test_lists_contain_only_what_the_user_may_see(world, client) -> None:  # type: ignore[no-untyped-def]
    alice_account, rec = world["account"].pk, world["recommendation"].pk
    expectations = {"alice": True, "bob": False, "carol": True, "dave": False, "erin": True}
    for user, sees in expectations.items():
        client.force_login(world[user])
        accounts = [a["id"] for a in client.get("/api/accounts/").json()["results"]]
        recs = [r["id"] for r in client.get("/api/recommendations/").json()["results"]]
        assert (alice_account in accounts) is sees, user
        assert (rec in recs) is sees, user
    client.force_login(world["bob"])
    assert [a["id"] for a in client.get("/api/accounts/").json()["results"]] == [world["bob"].accounts.get().pk]


def test_django_admin_is_for_staff_only(world, client) -> None:  # type: ignore[no-untyped-def]
    for user in ("alice", "carol"):
        client.force_login(world[user])
        response = client.get("/django-admin/")
        assert response.status_code == 302 and "/django-admin/login/" in response["Location"]
    client.force_login(world["erin"])
    assert client.get("/django-admin/").status_code == 200


def test_audit_log_is_read_only_even_for_admins_in_django_admin(world, client) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world["erin"])
    event = AuditEvent.objects.first()
    assert client.get(f"/django-admin/compliance/auditevent/{event.pk}/delete/").status_code == 403
    assert client.get("/django-admin/compliance/auditevent/add/").status_code == 403


def test_audit_page_verifies_only_when_asked(world, client) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world["erin"])
    assert "Chain intact" not in client.get("/staff/audit/").content.decode()
    page = client.get("/staff/audit/?verify=").content.decode()
    assert f"Chain intact:</strong> {AuditEvent.objects.count()} events verified." in page


def test_recommendations_cannot_be_deleted_in_django_admin(world, client) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world["erin"])
    rec = world["recommendation"]
    assert client.get(f"/django-admin/portfolios/recommendation/{rec.pk}/delete/").status_code == 403
    assert client.post(f"/django-admin/portfolios/recommendation/{rec.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Recommendation.objects.filter(pk=rec.pk).exists()


def test_cash_flow_writes_are_the_owners_only(world, client) -> None:  # type: ignore[no-untyped-def]
    """The URLs that read for everyone in scope but write for the owner: POST by anyone else changes nothing."""
    account = world["account"].pk
    writes = [
        ("/api/accounts/", {"account_type": "roth_ira", "name": "Roth"}),
        (f"/api/accounts/{account}/recurring-deposits/", {"amount": "10", "frequency": "weekly",
                                                          "start_date": "2026-07-31"}),
        (f"/api/accounts/{account}/withdrawals/", {"amount": "10"}),
    ]  # fmt: skip
    before, wrong = (snapshot(), Account.objects.count()), []
    for user, allowed in (("carol", (403,)), ("erin", (403,)), ("dave", (403,)), ("bob", (404,)), (None, (401, 403))):
        client.logout()
        if user:
            client.force_login(world[user])
        for url, data in writes:
            if user == "bob" and url == "/api/accounts/":
                continue  # Bob opening his own account is allowed (it opens Bob's, not Alice's)
            status = client.post(url, data, content_type="application/json").status_code
            if status not in allowed:
                wrong.append((user, url, status))
    assert wrong == []
    assert (snapshot(), Account.objects.count()) == before


def test_advisor_and_admin_read_the_ledger_but_see_no_actions(world, client) -> None:  # type: ignore[no-untyped-def]
    for user in ("carol", "erin"):
        client.force_login(world[user])
        page = client.get(reverse("account-detail", kwargs={"pk": world["account"].pk})).content.decode()
        assert 'id="read-only"' in page and 'id="account-actions"' not in page and "Stop schedule" not in page
