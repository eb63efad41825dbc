"""Reads for the accounts pages and API: the account list, the cash ledger, schedules and withdrawals."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_FLOOR, Decimal

from django.conf import settings
from django.db.models import Count, F, QuerySet, Sum, Window

from .models import Account, CashMovement, RecurringDeposit, WithdrawalRequest, WithdrawalStatus
from .rebalance import selling_cost
from .selectors import cash_balances, holdings, market_date_latest, prices_as_of

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


@dataclass
class AccountSummary:
    """One line of the investor's account list."""

    account: Account
    market_date: date | None
    cash: Decimal
    invested: Decimal
    pending_withdrawal: Decimal
    selling_costs: Decimal = ZERO  # what selling every position would cost at the latest closes
    pending_withdrawals: list[WithdrawalRequest] = field(default_factory=list)
    schedules: list[RecurringDeposit] = field(default_factory=list)

    @property
    def value(self) -> Decimal:
        return self.cash + self.invested

    @property
    def withdrawable(self) -> Decimal:
        """What a new withdrawal may ask for (``withdrawal_request``'s limit): the value less what selling would
        cost and less pending requests."""
        return max(self.value - self.selling_costs - self.pending_withdrawal, ZERO)

    @property
    def next_deposit(self) -> RecurringDeposit | None:
        """The active schedule that deposits next (schedules are ordered by their next date)."""
        return self.schedules[0] if self.schedules else None


def account_summaries(accounts: Sequence[Account]) -> list[AccountSummary]:
    """Value, cash, pending withdrawals and active schedules of each account: a fixed number of queries."""
    ids = [a.pk for a in accounts]
    market_date = market_date_latest()
    cash = cash_balances(ids)
    held = holdings(ids)
    prices = prices_as_of(market_date) if market_date is not None and held else {}
    pending: dict[int, list[WithdrawalRequest]] = defaultdict(list)
    for withdrawal in WithdrawalRequest.objects.filter(account_id__in=ids, status=WithdrawalStatus.PENDING).order_by(
        "requested_at", "pk"
    ):
        pending[withdrawal.account_id].append(withdrawal)
    schedules: dict[int, list[RecurringDeposit]] = defaultdict(list)
    for schedule in RecurringDeposit.objects.filter(account_id__in=ids, active=True).order_by("next_date", "pk"):
        schedules[schedule.account_id].append(schedule)
    rows = []
    cost_rate: Decimal = settings.ADVISOR["TRADING_COST_RATE"]
    for account in accounts:
        positions = [(q, prices[a][0]) for a, q in held.get(account.pk, {}).items() if a in prices]
        invested = sum(((q * p).quantize(CENT, rounding=ROUND_FLOOR) for q, p in positions), ZERO)
        costs = sum((selling_cost(q, p, cost_rate) for q, p in positions), ZERO)
        rows.append(
            AccountSummary(
                account=account,
                market_date=market_date,
                cash=cash.get(account.pk, ZERO),
                invested=invested,
                selling_costs=costs,
                pending_withdrawal=sum((w.amount for w in pending[account.pk]), ZERO),
                pending_withdrawals=pending[account.pk],
                schedules=schedules[account.pk],
            )
        )
    return rows


def cash_ledger(account: Account) -> QuerySet[CashMovement]:
    """Every movement of the account, newest first, each with the balance just after it (``running_balance``).

    The window runs over the whole ledger in id order (the order the movements were written) before any
    slicing, so a page of the ledger still carries the true running balance.
    """
    return (
        CashMovement.objects.filter(account=account)
        .annotate(running_balance=Window(Sum("amount"), order_by=F("id").asc()))
        .order_by("-id")
    )


def recurring_deposits_of(account: Account) -> QuerySet[RecurringDeposit]:
    """All schedules of the account, active first, each with the number of deposits it made."""
    return (
        RecurringDeposit.objects.filter(account=account)
        .annotate(deposits_made=Count("deposits"))
        .order_by("-active", "next_date", "-pk")
    )


def withdrawals_of(account: Account) -> QuerySet[WithdrawalRequest]:
    return (
        WithdrawalRequest.objects.filter(account=account)
        .select_related("cash_movement")
        .order_by("-requested_at", "-pk")
    )
