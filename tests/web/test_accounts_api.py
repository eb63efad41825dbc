"""The accounts API: open, the cash ledger, recurring deposits, withdrawals; payloads, 400s that write nothing,
other people's accounts 404."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from compliance.models import AuditEvent
from portfolios.models import Account, CashMovement, RecurringDeposit, WithdrawalRequest
from portfolios.selectors import market_date_latest
from portfolios.services.accounts import account_deposit, account_open
from portfolios.services.cashflows import recurring_deposits_run

pytestmark = pytest.mark.django_db


def written() -> tuple[int, int, int, int, int]:
    return (
        Account.objects.count(),
        CashMovement.objects.count(),
        RecurringDeposit.objects.count(),
        WithdrawalRequest.objects.count(),
        AuditEvent.objects.count(),
    )


def post(client, url: str, data: dict[str, object]):  # type: ignore[no-untyped-def]
    return client.post(url, data, content_type="application/json")


@pytest.fixture
def account(alice, market_data):  # type: ignore[no-untyped-def]
    account = account_open(owner=alice)
    account_deposit(account=account, amount="1000", actor=alice)
    return account


def test_an_investor_opens_an_ira_and_sees_it_listed(client, alice, account) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)

    response = post(client, "/api/accounts/", {"account_type": "traditional_ira", "name": "Rollover"})

    assert response.status_code == 201
    body = response.json()
    opened = Account.objects.get(pk=body["id"])
    assert {k: v for k, v in body.items() if k != "created_at"} == {
        "id": opened.pk,
        "name": "Rollover",
        "account_type": "traditional_ira",
        "lot_method": "fifo",
        "owner": "alice@example.com",
    }
    listed = client.get("/api/accounts/").json()["results"]
    assert [(a["name"], a["account_type"], a["lot_method"]) for a in listed] == [
        ("Taxable account", "taxable", "tax_min"),
        ("Rollover", "traditional_ira", "fifo"),
    ]


def test_without_a_name_the_type_names_the_account(client, alice, account) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)

    response = post(client, "/api/accounts/", {"account_type": "roth_ira"})

    assert response.status_code == 201 and response.json()["name"] == "Roth IRA"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"account_type": "taxable", "name": "TAXABLE ACCOUNT"}, "name",
         "You already have an account named 'TAXABLE ACCOUNT'."),
        ({"account_type": "401k"}, "account_type", '"401k" is not a valid choice.'),
        ({"account_type": "roth_ira", "name": "x" * 81}, "name", "Ensure this field has no more than 80 characters."),
    ],
)  # fmt: skip
def test_opening_with_bad_input_is_400_and_writes_nothing(client, alice, account, data, field, message) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    before = written()

    response = post(client, "/api/accounts/", data)

    assert response.status_code == 400 and response.json()[field] == [message]
    assert written() == before


def test_the_ledger_lists_every_movement_signed_with_its_running_balance(client, alice, carol, account) -> None:  # type: ignore[no-untyped-def]
    from advisor.services import investor_assign_advisor
    from tests.factories import AdminFactory

    today = market_date_latest()
    client.force_login(alice)
    post(client, f"/api/accounts/{account.pk}/withdrawals/", {"amount": "250.25"})
    post(client, f"/api/accounts/{account.pk}/recurring-deposits/",
         {"amount": "100", "frequency": "weekly", "start_date": today.isoformat()})  # fmt: skip
    recurring_deposits_run(market_date=today)

    response = client.get(f"/api/accounts/{account.pk}/ledger/")

    assert response.status_code == 200
    rows = [(r["kind"], r["amount"], r["running_balance"], r["due_on"]) for r in response.json()["results"]]
    assert rows == [
        ("deposit", "100.00", "849.75", today.isoformat()),
        ("withdrawal", "-250.25", "749.75", None),
        ("deposit", "1000.00", "1000.00", None),
    ]
    assert response.json()["results"][1]["withdrawal"] == WithdrawalRequest.objects.get().pk
    # A page of the ledger keeps the balance of the whole ledger.
    second_page = client.get(f"/api/accounts/{account.pk}/ledger/?limit=1&offset=1").json()["results"]
    assert [r["running_balance"] for r in second_page] == ["749.75"]
    # The advisor reads it too.
    investor_assign_advisor(investor=alice, advisor=carol, actor=AdminFactory())
    client.force_login(carol)
    assert client.get(f"/api/accounts/{account.pk}/ledger/").json()["count"] == 3


def test_other_peoples_accounts_are_404_everywhere(client, bob, dave, account) -> None:  # type: ignore[no-untyped-def]
    schedule = RecurringDeposit.objects.create(
        account=account, amount=Decimal("5"), frequency="weekly", start_date=market_date_latest(),
        next_date=market_date_latest(), created_by=account.owner,
    )  # fmt: skip
    withdrawal = WithdrawalRequest.objects.create(account=account, amount=Decimal("5"), requested_by=account.owner)
    before = written()
    client.force_login(bob)
    for url in ("ledger", "recurring-deposits", "withdrawals"):
        assert client.get(f"/api/accounts/{account.pk}/{url}/").status_code == 404, url
    assert post(client, f"/api/accounts/{account.pk}/withdrawals/", {"amount": "1"}).status_code == 404
    assert post(client, f"/api/recurring-deposits/{schedule.pk}/cancel/", {}).status_code == 404
    assert post(client, f"/api/withdrawals/{withdrawal.pk}/cancel/", {}).status_code == 404
    client.force_login(dave)  # an advisor, but not Alice's
    assert client.get(f"/api/accounts/{account.pk}/ledger/").status_code == 404
    assert written() == before


def test_a_recurring_deposit_is_scheduled_listed_and_cancelled_once(client, alice, account) -> None:  # type: ignore[no-untyped-def]
    today = market_date_latest()
    client.force_login(alice)

    created = post(client, f"/api/accounts/{account.pk}/recurring-deposits/",
                   {"amount": "500.00", "frequency": "monthly", "start_date": today.isoformat()})  # fmt: skip

    assert created.status_code == 201
    body = created.json()
    schedule = RecurringDeposit.objects.get()
    assert {k: v for k, v in body.items() if k != "created_at"} == {
        "id": schedule.pk, "account": account.pk, "amount": "500.00", "frequency": "monthly",
        "start_date": today.isoformat(), "next_date": today.isoformat(), "active": True, "cancelled_at": None,
    }  # fmt: skip
    assert [s["id"] for s in client.get(f"/api/accounts/{account.pk}/recurring-deposits/").json()["results"]] == [
        schedule.pk
    ]
    cancelled = post(client, f"/api/recurring-deposits/{schedule.pk}/cancel/", {})
    assert cancelled.status_code == 200 and cancelled.json()["active"] is False
    before = written()
    again = post(client, f"/api/recurring-deposits/{schedule.pk}/cancel/", {})
    assert again.status_code == 409 and again.json() == {"detail": "This recurring deposit is already cancelled."}
    assert written() == before


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"amount": "0", "frequency": "weekly"}, "amount", "Ensure this value is greater than or equal to 0.01."),
        ({"amount": "10", "frequency": "daily"}, "frequency", '"daily" is not a valid choice.'),
        ({"amount": "10", "frequency": "weekly", "start_date": "tomorrow"}, "start_date",
         "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."),
        ({"amount": "10", "frequency": "weekly", "start_date": "PAST"}, "start_date",
         "On or after {today} (the current market date)."),
    ],
)  # fmt: skip
def test_bad_schedules_are_400_and_write_nothing(client, alice, account, data, field, message) -> None:  # type: ignore[no-untyped-def]
    today = market_date_latest()
    data = {"start_date": today.isoformat(), **data}
    if data["start_date"] == "PAST":
        data["start_date"] = (today - timedelta(days=1)).isoformat()
    client.force_login(alice)
    before = written()

    response = post(client, f"/api/accounts/{account.pk}/recurring-deposits/", data)

    assert response.status_code == 400
    assert response.json()[field] == [message.format(today=today.isoformat())]
    assert written() == before


def test_a_withdrawal_is_paid_at_once_and_listed(client, alice, account) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)

    response = post(client, f"/api/accounts/{account.pk}/withdrawals/", {"amount": "300"})

    assert response.status_code == 201
    withdrawal = WithdrawalRequest.objects.get()
    body = response.json()
    assert (body["id"], body["amount"], body["status"], body["cash_movement"]) == (
        withdrawal.pk,
        "300.00",
        "completed",
        CashMovement.objects.get(withdrawal=withdrawal).pk,
    )
    listed = client.get(f"/api/accounts/{account.pk}/withdrawals/").json()["results"]
    assert [(w["id"], w["status"]) for w in listed] == [(withdrawal.pk, "completed")]
    before = written()
    refused = post(client, f"/api/withdrawals/{withdrawal.pk}/cancel/", {})
    assert refused.status_code == 409
    assert refused.json() == {"detail": "Only a pending withdrawal can be cancelled; this one is paid out."}
    assert written() == before


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("700.01", "At most $700.00: the account is worth $700.00."),
        ("-1", "Ensure this value is greater than or equal to 0.01."),
        ("1.001", "Ensure that there are no more than 2 decimal places."),
    ],
)
def test_withdrawing_more_than_the_value_or_bad_amounts_is_400(client, alice, account, amount, message) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    post(client, f"/api/accounts/{account.pk}/withdrawals/", {"amount": "300"})
    before = written()

    response = post(client, f"/api/accounts/{account.pk}/withdrawals/", {"amount": amount})

    assert response.status_code == 400 and response.json()["amount"] == [message]
    assert written() == before


def test_a_pending_withdrawal_is_cancelled_by_its_owner(client, alice, account) -> None:  # type: ignore[no-untyped-def]
    # Pending as if waiting for sales (an account of cash only pays every withdrawal at once).
    withdrawal = WithdrawalRequest.objects.create(account=account, amount=Decimal("5000"), requested_by=alice)
    client.force_login(alice)

    response = post(client, f"/api/withdrawals/{withdrawal.pk}/cancel/", {})

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["cash_movement"]) == ("cancelled", None)
    assert AuditEvent.objects.filter(action="account.withdrawal_cancelled").count() == 1


def test_the_schema_documents_the_account_endpoints(client, alice) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    assert set(paths["/api/accounts/"]) >= {"get", "post"}
    assert set(paths["/api/accounts/{id}/recurring-deposits/"]) >= {"get", "post"}
    assert set(paths["/api/accounts/{id}/withdrawals/"]) >= {"get", "post"}
    assert "get" in paths["/api/accounts/{id}/ledger/"]
    assert "post" in paths["/api/recurring-deposits/{id}/cancel/"] and "post" in paths["/api/withdrawals/{id}/cancel/"]
    examples = paths["/api/accounts/{id}/withdrawals/"]["post"]["requestBody"]["content"]["application/json"]
    assert examples["examples"]["TwoThousandDollars"]["value"] == {"amount": "2000.00"}
