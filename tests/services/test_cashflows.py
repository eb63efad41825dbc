"""Recurring deposits and withdrawals (portfolios/services/cashflows.py) on the database."""

from __future__ import annotations

import calendar
import contextlib
import threading
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor.errors import InvalidInputError, InvalidStateError, NotAllowedError
from compliance.audit import audit_verify
from compliance.models import AuditEvent
from portfolios.models import (
    AccountType,
    CashMovement,
    CashMovementKind,
    DepositFrequency,
    Recommendation,
    RecurringDeposit,
    WithdrawalRequest,
    WithdrawalStatus,
)
from portfolios.schedules import due_dates_through
from portfolios.selectors import cash_balances, market_date_latest
from portfolios.services.accounts import account_deposit, account_open
from portfolios.services.cashflows import (
    account_worth,
    recurring_deposit_cancel,
    recurring_deposit_create,
    recurring_deposits_run,
    withdrawal_cancel,
    withdrawal_request,
    withdrawals_settle,
    withdrawals_settle_all,
)
from tests.conftest import on_postgres

pytestmark = pytest.mark.django_db


def audit_rows(since: int) -> list[tuple[object, ...]]:
    return list(
        AuditEvent.objects.filter(pk__gt=since)
        .order_by("pk")
        .values_list("action", "actor_id", "object_type", "object_id", "subject_id", "payload")
    )


def last_event_id() -> int:
    return AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def cash(account_id: int) -> Decimal:
    return cash_balances([account_id]).get(account_id, Decimal("0.00"))


def written() -> tuple[int, int, int, int]:
    return (
        CashMovement.objects.count(),
        RecurringDeposit.objects.count(),
        WithdrawalRequest.objects.count(),
        AuditEvent.objects.count(),
    )


@pytest.fixture
def today(market_data) -> date:  # type: ignore[no-untyped-def]
    market_date = market_date_latest()
    assert market_date is not None
    return market_date


@pytest.fixture
def account(alice, today):  # type: ignore[no-untyped-def]
    """Alice's Roth IRA with $1,000 of cash."""
    account = account_open(owner=alice, name="Roth", account_type=AccountType.ROTH_IRA)
    account_deposit(account=account, amount="1000", actor=alice)
    return account


@pytest.fixture
def invested(funded_alice, carol):  # type: ignore[no-untyped-def]
    """Alice's $100,000 invested by the pipeline and the broker: little cash, most of the value in funds."""
    from portfolios.services.pipeline import pipeline_run
    from portfolios.services.recommendations import recommendation_approve, recommendation_execute

    pipeline_run()
    recommendation = Recommendation.objects.get(account__owner=funded_alice)
    recommendation_approve(recommendation_id=recommendation.pk, advisor=carol, comment="Invest the deposit")
    recommendation_execute(recommendation_id=recommendation.pk)
    account = recommendation.account
    assert Decimal(0) <= cash(account.pk) < Decimal("1000")
    return account


def first_31st_on_or_after(day: date) -> date:
    while day.day != 31:
        day += timedelta(days=1)
    return day


# Recurring deposits: creating and cancelling ---------------------------------------------------------------------


def test_an_owner_schedules_a_deposit_and_it_is_audited(alice, account, today) -> None:  # type: ignore[no-untyped-def]
    since = last_event_id()

    schedule = recurring_deposit_create(
        account=account, amount="250.50", frequency="monthly", start_date=today.isoformat(), actor=alice
    )

    assert (schedule.amount, schedule.frequency, schedule.start_date, schedule.next_date, schedule.active) == (
        Decimal("250.50"),
        DepositFrequency.MONTHLY,
        today,
        today,
        True,
    )
    assert schedule.created_by == alice
    assert audit_rows(since) == [
        (
            "account.recurring_deposit_scheduled",
            alice.pk,
            "portfolios.account",
            str(account.pk),
            alice.pk,
            {"recurring_deposit_id": schedule.pk, "amount": "250.50", "frequency": "monthly",
             "start_date": today.isoformat()},
        )
    ]  # fmt: skip


def test_only_the_owner_schedules_deposits(account, bob, carol, erin, today) -> None:  # type: ignore[no-untyped-def]
    before = written()
    for actor in (bob, carol, erin):
        with pytest.raises(NotAllowedError, match="Only the account's owner can schedule deposits"):
            recurring_deposit_create(account=account, amount="10", frequency="weekly", start_date=today, actor=actor)
    assert written() == before


@pytest.mark.parametrize(
    ("amount", "frequency", "start_in_days", "fields"),
    [
        ("0", "weekly", 0, {"amount": "Must be greater than zero."}),
        ("-5", "weekly", 0, {"amount": "Must be greater than zero."}),
        ("ten", "weekly", 0, {"amount": "'ten' is not a number."}),
        ("1.234", "weekly", 0, {"amount": "At most two decimal places (cents)."}),
        ("20000000", "weekly", 0, {"amount": "At most 10,000,000.00 per deposit."}),
        ("10", "daily", 0, {"frequency": "Choose one of: weekly, monthly."}),
        ("10", "", 0, {"frequency": "Choose one of: weekly, monthly."}),
        ("10", "monthly", 367, {"start_date": "At most a year ahead (by {horizon})."}),
    ],
)
def test_bad_schedules_are_refused_and_nothing_is_written(  # type: ignore[no-untyped-def]
    alice, account, today, amount, frequency, start_in_days, fields
) -> None:
    before = written()
    with pytest.raises(InvalidInputError) as refused:
        recurring_deposit_create(
            account=account,
            amount=amount,
            frequency=frequency,
            start_date=today + timedelta(days=start_in_days),
            actor=alice,
        )
    horizon = (today + timedelta(days=366)).isoformat()
    assert refused.value.fields == {k: v.format(horizon=horizon) for k, v in fields.items()}
    assert written() == before


def test_a_schedule_cannot_start_before_the_market_date_or_on_no_date(alice, account, today) -> None:  # type: ignore[no-untyped-def]
    before = written()
    with pytest.raises(InvalidInputError) as past:
        recurring_deposit_create(
            account=account, amount="10", frequency="weekly", start_date=today - timedelta(days=1), actor=alice
        )
    with pytest.raises(InvalidInputError) as garbage:
        recurring_deposit_create(account=account, amount="10", frequency="weekly", start_date="31/12/2026", actor=alice)

    assert past.value.fields == {"start_date": f"On or after {today.isoformat()} (the current market date)."}
    assert garbage.value.fields == {"start_date": "'31/12/2026' is not a date (YYYY-MM-DD)."}
    assert written() == before


def test_the_owner_cancels_once_and_a_second_cancel_is_refused(alice, bob, carol, account, today) -> None:  # type: ignore[no-untyped-def]
    schedule = recurring_deposit_create(account=account, amount="10", frequency="weekly", start_date=today, actor=alice)
    for actor in (bob, carol):
        with pytest.raises(NotAllowedError):
            recurring_deposit_cancel(schedule_id=schedule.pk, actor=actor)
    since = last_event_id()

    cancelled = recurring_deposit_cancel(schedule_id=schedule.pk, actor=alice)
    before = written()
    with pytest.raises(InvalidStateError, match="already cancelled"):
        recurring_deposit_cancel(schedule_id=schedule.pk, actor=alice)

    assert (cancelled.active, cancelled.cancelled_at is not None) == (False, True)
    assert written() == before
    assert audit_rows(since) == [
        (
            "account.recurring_deposit_cancelled",
            alice.pk,
            "portfolios.account",
            str(account.pk),
            alice.pk,
            {"recurring_deposit_id": schedule.pk, "amount": "10.00", "frequency": "weekly"},
        )
    ]
    assert recurring_deposits_run(market_date=today + timedelta(days=30)) == 0


def test_cancelling_a_schedule_that_does_not_exist_is_a_field_error(alice) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError) as refused:
        recurring_deposit_cancel(schedule_id=999_999, actor=alice)
    assert refused.value.fields == {"schedule_id": "No recurring deposit 999999."}


# Recurring deposits: the pipeline's run --------------------------------------------------------------------------


def test_a_due_deposit_is_made_once_and_audited_even_when_run_twice(alice, account, today) -> None:  # type: ignore[no-untyped-def]
    schedule = recurring_deposit_create(
        account=account, amount="100", frequency="monthly", start_date=today, actor=alice
    )
    since = last_event_id()

    first = recurring_deposits_run(market_date=today)
    second = recurring_deposits_run(market_date=today)

    assert (first, second) == (1, 0)
    movement = CashMovement.objects.get(recurring_deposit=schedule)
    assert (movement.kind, movement.amount, movement.due_on, movement.account_id) == (
        CashMovementKind.DEPOSIT,
        Decimal("100.00"),
        today,
        account.pk,
    )
    assert movement.description == f"Recurring deposit (monthly) due {today.isoformat()}"
    schedule.refresh_from_db()
    assert schedule.next_date == due_dates_through(start=today, frequency="monthly", first=today, through=today)[1]
    assert audit_rows(since) == [
        (
            "account.recurring_deposit",
            None,
            "portfolios.account",
            str(account.pk),
            alice.pk,
            {"amount": "100.00", "cash_movement_id": movement.pk, "recurring_deposit_id": schedule.pk,
             "due_on": today.isoformat()},
        )
    ]  # fmt: skip
    assert cash(account.pk) == Decimal("1100.00")
    assert audit_verify()[1] is None


def test_monthly_on_the_31st_catches_up_a_skipped_month_and_clamps(alice, account, today) -> None:  # type: ignore[no-untyped-def]
    start = first_31st_on_or_after(today)
    schedule = recurring_deposit_create(
        account=account, amount="50", frequency="monthly", start_date=start, actor=alice
    )

    made = [
        recurring_deposits_run(market_date=start),
        # The next month's run never happens: the one after catches up.
        recurring_deposits_run(market_date=start + timedelta(days=65)),
        recurring_deposits_run(market_date=start + timedelta(days=65)),
        recurring_deposits_run(market_date=start + timedelta(days=400)),
    ]

    due_on = list(schedule.deposits.order_by("due_on").values_list("due_on", flat=True))
    # One deposit a month, on the 31st or the month's last day when it is shorter.
    assert [d.day for d in due_on] == [calendar.monthrange(d.year, d.month)[1] for d in due_on]
    months = [(d.year, d.month) for d in due_on]
    assert months == sorted(set(months)) and len(due_on) == 14
    assert due_on[0] == start
    assert made == [1, 2, 0, 11]  # the skipped month is caught up with the next one


def test_a_weekly_schedule_deposits_each_week_and_the_run_respects_the_book(alice, account, bob, today) -> None:  # type: ignore[no-untyped-def]
    weekly = recurring_deposit_create(account=account, amount="20", frequency="weekly", start_date=today, actor=alice)
    simulated = account_open(owner=bob)
    simulated.book = "sim-test"
    simulated.save(update_fields=["book"])
    other_book = recurring_deposit_create(
        account=simulated, amount="5", frequency="weekly", start_date=today, actor=bob
    )

    live = recurring_deposits_run(market_date=today + timedelta(days=20))
    sim = recurring_deposits_run(market_date=today + timedelta(days=20), book="sim-test")

    assert (live, sim) == (3, 3)
    assert list(weekly.deposits.order_by("due_on").values_list("due_on", flat=True)) == [
        today, today + timedelta(days=7), today + timedelta(days=14)
    ]  # fmt: skip
    assert other_book.deposits.count() == 3
    weekly.refresh_from_db()
    assert weekly.next_date == today + timedelta(days=21)


def test_the_ledger_refuses_a_second_deposit_for_the_same_due_date(alice, account, today) -> None:  # type: ignore[no-untyped-def]
    schedule = recurring_deposit_create(account=account, amount="10", frequency="weekly", start_date=today, actor=alice)
    recurring_deposits_run(market_date=today)
    with pytest.raises(IntegrityError), transaction.atomic():
        CashMovement.objects.create(
            account=account, kind="deposit", amount=Decimal("10"), recurring_deposit=schedule, due_on=today
        )


def test_a_schedule_rewound_by_hand_deposits_no_date_twice(alice, account, today) -> None:  # type: ignore[no-untyped-def]
    """Even if next_date is moved back (by an operator), the dates already in the ledger are not paid again."""
    schedule = recurring_deposit_create(account=account, amount="10", frequency="weekly", start_date=today, actor=alice)
    recurring_deposits_run(market_date=today + timedelta(days=7))
    RecurringDeposit.objects.filter(pk=schedule.pk).update(next_date=today)
    events = AuditEvent.objects.count()

    made = recurring_deposits_run(market_date=today + timedelta(days=14))

    assert made == 1
    assert schedule.deposits.count() == 3
    assert AuditEvent.objects.count() == events + 1


@given(
    frequency=st.sampled_from(["weekly", "monthly"]),
    start_in=st.integers(0, 60),
    run_offsets=st.lists(st.integers(0, 500), min_size=1, max_size=6),
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_run_dates_deposit_each_due_date_exactly_once(  # type: ignore[no-untyped-def]
    alice, account, today, frequency, start_in, run_offsets
) -> None:
    with transaction.atomic():
        start = today + timedelta(days=start_in)
        schedule = recurring_deposit_create(
            account=account, amount="10", frequency=frequency, start_date=start, actor=alice
        )
        events = AuditEvent.objects.count()
        runs = sorted(today + timedelta(days=o) for o in run_offsets)
        made = sum(recurring_deposits_run(market_date=day) for day in [*runs, runs[-1]])

        due_on = list(schedule.deposits.order_by("due_on").values_list("due_on", flat=True))
        expected, following = due_dates_through(start=start, frequency=frequency, first=start, through=runs[-1])
        assert due_on == expected and len(set(due_on)) == len(due_on) == made
        assert AuditEvent.objects.count() == events + made
        schedule.refresh_from_db()
        assert schedule.next_date == following
        transaction.set_rollback(True)


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_deposit_each_due_date_once(market_data, alice) -> None:  # type: ignore[no-untyped-def]
    if not on_postgres():
        pytest.skip("SQLite serializes writers by itself; this checks the row locks on Postgres")
    today = market_date_latest()
    accounts = [account_open(owner=alice) for _ in range(3)]
    for account in accounts:
        recurring_deposit_create(account=account, amount="10", frequency="weekly", start_date=today, actor=alice)
    errors: list[BaseException] = []
    made: list[int] = []
    barrier = threading.Barrier(3)

    def run() -> None:
        try:
            barrier.wait()
            made.append(recurring_deposits_run(market_date=today + timedelta(days=28)))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sum(made) == 15  # 3 schedules x 5 weekly dates, whichever run made them
    assert CashMovement.objects.filter(recurring_deposit__isnull=False).count() == 15
    assert AuditEvent.objects.filter(action="account.recurring_deposit").count() == 15
    assert audit_verify()[1] is None


# Withdrawals -----------------------------------------------------------------------------------------------------


def test_a_withdrawal_the_cash_covers_is_paid_at_once(alice, account) -> None:  # type: ignore[no-untyped-def]
    since = last_event_id()

    withdrawal = withdrawal_request(account=account, amount="400", actor=alice)

    assert (withdrawal.status, withdrawal.completed_at is not None) == (WithdrawalStatus.COMPLETED, True)
    movement = CashMovement.objects.get(withdrawal=withdrawal)
    assert (movement.kind, movement.amount, movement.account_id) == ("withdrawal", Decimal("-400.00"), account.pk)
    assert cash(account.pk) == Decimal("600.00")
    assert audit_rows(since) == [
        (
            "account.withdrawal",
            alice.pk,
            "portfolios.account",
            str(account.pk),
            alice.pk,
            {"amount": "400.00", "withdrawal_id": withdrawal.pk, "cash_movement_id": movement.pk},
        )
    ]


def test_the_whole_cash_can_be_withdrawn_but_not_a_cent_more(alice, account) -> None:  # type: ignore[no-untyped-def]
    before = written()
    with pytest.raises(InvalidInputError) as refused:
        withdrawal_request(account=account, amount="1000.01", actor=alice)
    assert refused.value.fields == {"amount": "At most $1,000.00: the account is worth $1,000.00."}
    assert written() == before

    withdrawal_request(account=account, amount="1000", actor=alice)

    assert cash(account.pk) == Decimal("0.00")
    with pytest.raises(InvalidInputError) as empty:
        withdrawal_request(account=account, amount="0.01", actor=alice)
    assert empty.value.fields == {"amount": "At most $0.00: the account is worth $0.00."}


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("0", "Must be greater than zero."),
        ("-1", "Must be greater than zero."),
        ("1e400", "At most 10,000,000.00 per withdrawal."),
        ("NaN", "Must be a finite number."),
        ("12.345", "At most two decimal places (cents)."),
    ],
)
def test_bad_withdrawal_amounts_are_refused_and_nothing_is_written(alice, account, amount, message) -> None:  # type: ignore[no-untyped-def]
    before = written()
    with pytest.raises(InvalidInputError) as refused:
        withdrawal_request(account=account, amount=amount, actor=alice)
    assert refused.value.fields == {"amount": message}
    assert written() == before


def test_only_the_owner_withdraws(account, bob, carol, erin) -> None:  # type: ignore[no-untyped-def]
    before = written()
    for actor in (bob, carol, erin):
        with pytest.raises(NotAllowedError, match="Only the account's owner can withdraw"):
            withdrawal_request(account=account, amount="1", actor=actor)
    assert written() == before


def test_more_than_the_cash_waits_for_sales_then_is_paid_oldest_first_and_once(funded_alice, invested) -> None:  # type: ignore[no-untyped-def]
    alice, account = funded_alice, invested
    residual = cash(account.pk)
    worth = account_worth(account.pk)
    assert worth.invested > Decimal("90000")
    since = last_event_id()

    first = withdrawal_request(account=account, amount="5000", actor=alice)
    second = withdrawal_request(account=account, amount="100", actor=alice)

    assert (first.status, second.status) == (WithdrawalStatus.PENDING, WithdrawalStatus.PENDING)
    assert audit_rows(since) == [
        ("account.withdrawal_requested", alice.pk, "portfolios.account", str(account.pk), alice.pk,
         {"amount": "5000.00", "withdrawal_id": first.pk, "cash": str(residual), "pending_before": "0.00"}),
        ("account.withdrawal_requested", alice.pk, "portfolios.account", str(account.pk), alice.pk,
         {"amount": "100.00", "withdrawal_id": second.pk, "cash": str(residual), "pending_before": "5000.00"}),
    ]  # fmt: skip
    # The cash covers the second but not the first: the second does not jump the queue.
    assert withdrawals_settle(account_id=account.pk) == []

    account_deposit(account=account, amount=str(Decimal("5050.00") - residual), actor=alice)  # cash: 5,050
    since = last_event_id()
    paid = withdrawals_settle(account_id=account.pk)

    assert [w.pk for w in paid] == [first.pk]
    movement = CashMovement.objects.get(withdrawal=first)
    assert audit_rows(since) == [
        ("account.withdrawal", None, "portfolios.account", str(account.pk), alice.pk,
         {"amount": "5000.00", "withdrawal_id": first.pk, "cash_movement_id": movement.pk}),
    ]  # fmt: skip
    assert cash(account.pk) == Decimal("50.00")
    assert withdrawals_settle(account_id=account.pk) == []

    account_deposit(account=account, amount="50", actor=alice)
    assert [w.pk for w in withdrawals_settle(account_id=account.pk)] == [second.pk]
    assert withdrawals_settle_all() == 0
    assert withdrawals_settle(account_id=account.pk) == []
    assert CashMovement.objects.filter(withdrawal__isnull=False).count() == 2
    assert cash(account.pk) == Decimal("0.00")
    assert WithdrawalRequest.objects.filter(status=WithdrawalStatus.COMPLETED).count() == 2


def test_a_pending_withdrawal_makes_later_ones_wait_and_counts_against_the_value(funded_alice, invested) -> None:  # type: ignore[no-untyped-def]
    alice, account = funded_alice, invested
    worth = account_worth(account.pk)
    # the most one may ask: the value less what selling it would cost
    assert worth.withdrawable == worth.value - worth.selling_costs and worth.selling_costs > 0
    pending = withdrawal_request(account=account, amount=str(worth.withdrawable - Decimal("10")), actor=alice)
    account_deposit(account=account, amount="500", actor=alice)
    before = written()

    with pytest.raises(InvalidInputError) as refused:
        withdrawal_request(account=account, amount="510.01", actor=alice)
    later = withdrawal_request(account=account, amount="1", actor=alice)  # the cash covers it, but it queues

    assert refused.value.fields["amount"].startswith("At most $510.00: the account is worth $")
    assert "that selling it would cost" in refused.value.fields["amount"]
    assert refused.value.fields["amount"].endswith(f"less ${pending.amount:,} already requested.")
    assert later.status == WithdrawalStatus.PENDING and pending.status == WithdrawalStatus.PENDING
    assert written()[2] == before[2] + 1


def test_the_owner_cancels_a_pending_withdrawal_once_and_it_is_never_paid(funded_alice, invested, bob) -> None:  # type: ignore[no-untyped-def]
    alice, account = funded_alice, invested
    withdrawal = withdrawal_request(account=account, amount="2000", actor=alice)
    with pytest.raises(NotAllowedError):
        withdrawal_cancel(withdrawal_id=withdrawal.pk, actor=bob)
    since = last_event_id()

    cancelled = withdrawal_cancel(withdrawal_id=withdrawal.pk, actor=alice)
    before = written()
    with pytest.raises(InvalidStateError, match="this one is cancelled"):
        withdrawal_cancel(withdrawal_id=withdrawal.pk, actor=alice)
    assert written() == before
    account_deposit(account=account, amount="5000", actor=alice)

    assert cancelled.status == WithdrawalStatus.CANCELLED
    assert withdrawals_settle(account_id=account.pk) == []
    assert not CashMovement.objects.filter(withdrawal=withdrawal).exists()
    assert audit_rows(since)[0] == (
        "account.withdrawal_cancelled",
        alice.pk,
        "portfolios.account",
        str(account.pk),
        alice.pk,
        {"amount": "2000.00", "withdrawal_id": withdrawal.pk},
    )


def test_a_paid_withdrawal_cannot_be_cancelled(alice, account) -> None:  # type: ignore[no-untyped-def]
    withdrawal = withdrawal_request(account=account, amount="10", actor=alice)
    before = written()
    with pytest.raises(InvalidStateError, match="this one is paid out"):
        withdrawal_cancel(withdrawal_id=withdrawal.pk, actor=alice)
    with pytest.raises(InvalidInputError) as missing:
        withdrawal_cancel(withdrawal_id=999_999, actor=alice)
    assert missing.value.fields == {"withdrawal_id": "No withdrawal 999999."}
    assert written() == before


operations = st.lists(
    st.one_of(
        st.tuples(st.just("deposit"), st.integers(1, 3000)),
        st.tuples(st.just("withdraw"), st.integers(1, 120_000)),
        st.tuples(st.just("settle"), st.just(0)),
        st.tuples(st.just("cancel"), st.integers(0, 5)),
    ),
    min_size=1,
    max_size=10,
)


@given(steps=operations)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_cash_never_goes_negative_and_withdrawals_are_paid_in_order(funded_alice, invested, steps) -> None:  # type: ignore[no-untyped-def]
    alice, account = funded_alice, invested
    with transaction.atomic():
        for kind, number in steps:
            if kind == "deposit":
                account_deposit(account=account, amount=str(number), actor=alice)
            elif kind == "withdraw":
                with contextlib.suppress(InvalidInputError):  # more than the account is worth
                    withdrawal_request(account=account, amount=str(number), actor=alice)
            elif kind == "settle":
                withdrawals_settle(account_id=account.pk)
            else:
                pending = list(account.withdrawals.filter(status="pending").order_by("requested_at", "pk"))
                if pending:
                    withdrawal_cancel(withdrawal_id=pending[number % len(pending)].pk, actor=alice)
            assert cash(account.pk) >= 0
            requests = list(account.withdrawals.exclude(status="cancelled").order_by("requested_at", "pk"))
            statuses = [w.status for w in requests]
            # Paid ones come first: no pending withdrawal is older than a paid one.
            assert statuses == sorted(statuses, key=lambda s: s != WithdrawalStatus.COMPLETED)
            for w in requests:
                paid = list(CashMovement.objects.filter(withdrawal=w).values_list("amount", flat=True))
                assert paid == ([-w.amount] if w.status == WithdrawalStatus.COMPLETED else [])
        transaction.set_rollback(True)


def test_the_operator_command_runs_due_deposits_once(alice, account, today) -> None:  # type: ignore[no-untyped-def]
    from io import StringIO

    from django.core.management import call_command

    recurring_deposit_create(account=account, amount="10", frequency="weekly", start_date=today, actor=alice)
    first, second = StringIO(), StringIO()

    call_command("run_cash_flows", "--date", (today + timedelta(days=7)).isoformat(), stdout=first)
    call_command("run_cash_flows", "--date", (today + timedelta(days=7)).isoformat(), stdout=second)

    assert "2 recurring deposits, 0 withdrawals paid" in first.getvalue()
    assert "0 recurring deposits, 0 withdrawals paid" in second.getvalue()
