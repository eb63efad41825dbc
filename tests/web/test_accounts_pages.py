"""Account pages: the dashboard's account list, opening an account, the account page with its ledger, and the
cash-flow forms (the owner's), read-only for the advisor."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from compliance.models import AuditEvent
from portfolios.models import Account, AccountType, CashMovement, RecurringDeposit, WithdrawalRequest
from portfolios.selectors import market_date_latest
from portfolios.services.accounts import account_deposit, account_open
from portfolios.services.cashflows import recurring_deposit_create, recurring_deposits_run

pytestmark = pytest.mark.django_db


def written() -> tuple[int, int, int, int, int]:
    return (
        Account.objects.count(),
        CashMovement.objects.count(),
        RecurringDeposit.objects.count(),
        WithdrawalRequest.objects.count(),
        AuditEvent.objects.count(),
    )


def messages_of(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def accounts(alice, market_data):  # type: ignore[no-untyped-def]
    """Alice: a taxable account with $1,000 and a Roth IRA with $200, a monthly deposit and a pending withdrawal."""
    taxable = account_open(owner=alice)
    account_deposit(account=taxable, amount="1000", actor=alice)
    roth = account_open(owner=alice, account_type=AccountType.ROTH_IRA)
    account_deposit(account=roth, amount="200", actor=alice)
    recurring_deposit_create(
        account=roth, amount="75", frequency="monthly", start_date=market_date_latest(), actor=alice
    )
    WithdrawalRequest.objects.create(account=roth, amount=Decimal("150"), requested_by=alice)  # as if waiting
    return taxable, roth


def test_the_dashboard_lists_every_account_with_its_cash_flows(client, alice, accounts) -> None:  # type: ignore[no-untyped-def]
    taxable, roth = accounts
    client.force_login(alice)

    response = client.get(reverse("dashboard"))

    rows = {row.account.pk: row for row in response.context["account_rows"]}
    assert [(r.account.name, r.value, r.cash, r.pending_withdrawal) for r in rows.values()] == [
        ("Taxable account", Decimal("1000.00"), Decimal("1000.00"), Decimal("0.00")),
        ("Roth IRA", Decimal("200.00"), Decimal("200.00"), Decimal("150.00")),
    ]
    assert rows[roth.pk].next_deposit.amount == Decimal("75.00") and rows[taxable.pk].next_deposit is None
    page = response.content.decode()
    assert 'id="account-list"' in page and "Roth IRA</td>" in page and "Taxable brokerage" in page
    assert f'id="account-row-{roth.pk}"' in page and "$150.00" in page and "$75.00 on" in page
    assert reverse("account-open") in page and reverse("account-detail", kwargs={"pk": roth.pk}) in page
    assert reverse("withdrawal-request", kwargs={"pk": taxable.pk}) in page


def test_an_investor_opens_another_account_from_the_page(client, alice, accounts) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    assert client.get(reverse("account-open")).status_code == 200

    response = client.post(reverse("account-open"), {"account_type": "traditional_ira", "name": "Old 401k"})

    opened = Account.objects.get(name="Old 401k")
    assert (opened.owner, opened.account_type, opened.lot_method) == (alice, "traditional_ira", "fifo")
    assert response.status_code == 302 and response["Location"] == reverse("account-detail", kwargs={"pk": opened.pk})


def test_a_taken_name_is_shown_on_the_form_and_nothing_is_written(client, alice, accounts) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    before = written()

    response = client.post(reverse("account-open"), {"account_type": "roth_ira", "name": "roth ira"})

    assert response.status_code == 400
    assert response.context["form"].errors == {"name": ["You already have an account named 'roth ira'."]}
    assert written() == before


def test_the_account_page_shows_the_ledger_with_running_balances(client, alice, accounts) -> None:  # type: ignore[no-untyped-def]
    _, roth = accounts
    recurring_deposits_run(market_date=market_date_latest())
    client.force_login(alice)

    response = client.get(reverse("account-detail", kwargs={"pk": roth.pk}))

    ledger = [(m.kind, m.amount, Decimal(m.running_balance)) for m in response.context["ledger"]]
    assert ledger == [("deposit", Decimal("75.00"), Decimal("275.00")), ("deposit", Decimal("200.00"), Decimal("200"))]
    page = response.content.decode()
    assert "+$75.00" in page and "$275.00" in page and "Stop schedule" in page and "Cancel withdrawal" in page
    assert 'id="account-actions"' in page and "no dividend is paid out as cash" in page


def test_the_forms_schedule_withdraw_and_cancel(client, alice, accounts) -> None:  # type: ignore[no-untyped-def]
    taxable, roth = accounts
    client.force_login(alice)
    today = market_date_latest().isoformat()

    scheduled = client.post(
        reverse("recurring-deposit-create", kwargs={"pk": taxable.pk}),
        {"amount": "40", "frequency": "weekly", "start_date": today, "return_to": "dashboard"},
        follow=True,
    )
    paid = client.post(reverse("withdrawal-request", kwargs={"pk": taxable.pk}), {"amount": "100"}, follow=True)
    schedule = RecurringDeposit.objects.get(account=taxable)
    stopped = client.post(reverse("recurring-deposit-cancel", kwargs={"pk": schedule.pk}), follow=True)
    pending = WithdrawalRequest.objects.get(account=roth)
    cancelled = client.post(reverse("withdrawal-cancel", kwargs={"pk": pending.pk}), follow=True)

    assert scheduled.redirect_chain == [(reverse("dashboard") + f"#account-row-{taxable.pk}", 302)]
    assert messages_of(scheduled) == [f"Scheduled $40.00 every week, the first on {today}."]
    assert messages_of(paid) == ["Withdrew $100.00."]
    assert paid.redirect_chain == [(reverse("account-detail", kwargs={"pk": taxable.pk}), 302)]
    assert messages_of(stopped) == ["Recurring deposit cancelled; the deposits it made stay in your account."]
    assert messages_of(cancelled) == ["Withdrawal cancelled."]
    schedule.refresh_from_db()
    pending.refresh_from_db()
    assert (schedule.active, pending.status) == (False, "cancelled")
    assert CashMovement.objects.filter(account=taxable, kind="withdrawal").get().amount == Decimal("-100.00")


def test_refused_forms_say_why_and_write_nothing(client, alice, accounts) -> None:  # type: ignore[no-untyped-def]
    taxable, roth = accounts
    client.force_login(alice)
    before = written()

    too_much = client.post(reverse("withdrawal-request", kwargs={"pk": taxable.pk}), {"amount": "1000.01"}, follow=True)
    bad_schedule = client.post(
        reverse("recurring-deposit-create", kwargs={"pk": taxable.pk}),
        {"amount": "40", "frequency": "yearly", "start_date": market_date_latest().isoformat()},
        follow=True,
    )
    schedule = RecurringDeposit.objects.get(account=roth)
    client.post(reverse("recurring-deposit-cancel", kwargs={"pk": schedule.pk}), follow=True)
    middle = written()
    twice = client.post(reverse("recurring-deposit-cancel", kwargs={"pk": schedule.pk}), follow=True)

    assert messages_of(too_much) == ["At most $1,000.00: the account is worth $1,000.00."]
    assert messages_of(bad_schedule) == ["Choose one of: weekly, monthly."]
    assert messages_of(twice) == ["This recurring deposit is already cancelled."]
    assert middle[:4] == before[:4] and middle[4] == before[4] + 1  # only the first cancellation's audit row
    assert written() == middle


def test_the_advisor_reads_a_clients_account_from_the_client_page(client, alice, carol, accounts) -> None:  # type: ignore[no-untyped-def]
    from advisor.services import investor_assign_advisor
    from tests.factories import AdminFactory

    _, roth = accounts
    investor_assign_advisor(investor=alice, advisor=carol, actor=AdminFactory())
    client.force_login(carol)

    client_page = client.get(reverse("advisor-client", kwargs={"pk": alice.pk})).content.decode()
    account_page = client.get(reverse("account-detail", kwargs={"pk": roth.pk}))

    assert reverse("account-detail", kwargs={"pk": roth.pk}) in client_page
    assert account_page.status_code == 200 and account_page.context["can_act"] is False
    page = account_page.content.decode()
    assert 'id="read-only"' in page and "Cancel withdrawal" not in page and "Stop schedule" not in page
    assert client.post(reverse("withdrawal-request", kwargs={"pk": roth.pk}), {"amount": "1"}).status_code == 403
