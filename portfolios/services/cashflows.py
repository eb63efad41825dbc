"""Cash flows an investor asks for: recurring deposits into an account and withdrawals out of it.

Every service that moves cash locks the account row first (``accounts.account_lock``, the lock the broker's
``order_fill`` takes), so a balance read under the lock holds until commit and the cash never goes negative.
Lock order, to stay free of deadlocks: account rows (ascending ids), then schedule or withdrawal rows, then the
audit chain's lock (taken by ``audit_record``).

Who calls what:
- the investor (pages, API): ``recurring_deposit_create`` / ``_cancel``, ``withdrawal_request`` / ``_cancel``;
- the nightly pipeline: ``recurring_deposits_run(market_date=..., book=...)`` before it looks at accounts, and
  ``withdrawals_settle(account_id=...)`` for accounts with pending withdrawals;
- the broker: ``withdrawals_settle(account_id=...)`` at the end of ``recommendation_execute``, once the sales
  that raise a withdrawal's cash have filled.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_FLOOR, Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from advisor.errors import InvalidInputError, InvalidStateError, NotAllowedError
from advisor.models import User
from compliance.audit import PendingEvent, audit_record, audit_record_many

from ..models import (
    LIVE_BOOK,
    Account,
    CashMovement,
    CashMovementKind,
    DepositFrequency,
    Lot,
    Recommendation,
    RecurringDeposit,
    WithdrawalRequest,
    WithdrawalStatus,
)
from ..rebalance import selling_cost
from ..schedules import due_dates_through
from ..selectors import cash_balances, holdings, market_date_latest, prices_as_of
from .accounts import MAX_DEPOSIT, account_lock, parse_amount

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
MAX_WITHDRAWAL = MAX_DEPOSIT
# A first deposit further out than this is more likely a typo than a plan.
START_DATE_HORIZON = timedelta(days=366)
# Schedules handled per transaction by the pipeline: big enough to amortize the round trips, small enough that
# the account locks it holds are released quickly.
RECURRING_DEPOSIT_BATCH = 500


def _market_today() -> date:
    """The market clock's date; the calendar date only before any price was imported."""
    return market_date_latest() or timezone.localdate()


def _require_owner(account: Account, actor: User, doing: str) -> None:
    if actor.pk != account.owner_id or not actor.is_investor:
        raise NotAllowedError(f"Only the account's owner can {doing}.")


# Recurring deposits ---------------------------------------------------------------------------------------------


def _parse_start_date(value: object) -> date:
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InvalidInputError("Invalid start date.", fields={"start_date": f"'{value}' is not a date (YYYY-MM-DD)."})


def recurring_deposit_create(
    *, account: Account, amount: object, frequency: str, start_date: date | str, actor: User
) -> RecurringDeposit:
    """A standing instruction to deposit ``amount`` every week or month, the first time on ``start_date``.

    ``start_date`` may not be before the current market date: a schedule never reaches back into the past.
    """
    _require_owner(account, actor, "schedule deposits into it")
    value = parse_amount(amount).quantize(CENT)  # "400" and "400.00" alike in the audit payload
    if frequency not in DepositFrequency.values:
        choices = ", ".join(DepositFrequency.values)
        raise InvalidInputError("Invalid frequency.", fields={"frequency": f"Choose one of: {choices}."})
    first = _parse_start_date(start_date)
    today = _market_today()
    if first < today:
        raise InvalidInputError(
            "Invalid start date.", fields={"start_date": f"On or after {today.isoformat()} (the current market date)."}
        )
    if first > today + START_DATE_HORIZON:
        latest = (today + START_DATE_HORIZON).isoformat()
        raise InvalidInputError("Invalid start date.", fields={"start_date": f"At most a year ahead (by {latest})."})
    with transaction.atomic():
        schedule = RecurringDeposit.objects.create(
            account=account, amount=value, frequency=frequency, start_date=first, next_date=first, created_by=actor
        )
        audit_record(
            actor=actor,
            action="account.recurring_deposit_scheduled",
            obj=account,
            subject_id=account.owner_id,
            payload={"recurring_deposit_id": schedule.pk, "amount": value, "frequency": frequency, "start_date": first},
        )
    return schedule


def recurring_deposit_cancel(*, schedule_id: int, actor: User) -> RecurringDeposit:
    """Stop a schedule; the deposits it already made stay in the ledger."""
    schedule = RecurringDeposit.objects.select_related("account").filter(pk=schedule_id).first()
    if schedule is None:
        raise InvalidInputError("No such schedule.", fields={"schedule_id": f"No recurring deposit {schedule_id}."})
    _require_owner(schedule.account, actor, "cancel its recurring deposits")
    with transaction.atomic():
        now = timezone.now()
        # Compare-and-set: of two cancellations at once, one changes the row and the other is told it is done.
        stopped = RecurringDeposit.objects.filter(pk=schedule.pk, active=True).update(active=False, cancelled_at=now)
        if stopped != 1:
            raise InvalidStateError("This recurring deposit is already cancelled.")
        audit_record(
            actor=actor,
            action="account.recurring_deposit_cancelled",
            obj=schedule.account,
            subject_id=schedule.account.owner_id,
            payload={"recurring_deposit_id": schedule.pk, "amount": schedule.amount, "frequency": schedule.frequency},
        )
    schedule.refresh_from_db()
    return schedule


@dataclass(frozen=True)
class _Due:
    schedule_id: int
    account_id: int
    owner_id: int
    amount: Decimal
    due_on: date
    frequency: str


def _recurring_deposits_batch(*, market_date: date, book: str, after_id: int) -> tuple[int, int | None]:
    """One transaction: the next batch of due schedules (ids above ``after_id``) deposited and advanced.

    Returns the deposits made and the last schedule id looked at (``None`` when none is left).
    """
    with transaction.atomic():
        candidates = list(
            RecurringDeposit.objects.filter(
                active=True, next_date__lte=market_date, account__book=book, pk__gt=after_id
            )
            .order_by("pk")
            .values_list("pk", "account_id")[:RECURRING_DEPOSIT_BATCH]
        )
        if not candidates:
            return 0, None
        account_ids = sorted({account_id for _, account_id in candidates})
        list(Account.objects.select_for_update().filter(pk__in=account_ids).order_by("pk").values_list("pk"))
        # Read again under the locks: a run that finished meanwhile has moved next_date past the market date,
        # and a schedule cancelled meanwhile is inactive; neither is deposited again.
        schedules = list(
            RecurringDeposit.objects.select_for_update(of=("self",))
            .filter(pk__in=[pk for pk, _ in candidates], active=True, next_date__lte=market_date)
            .select_related("account")
            .order_by("pk")
        )
        due: list[_Due] = []
        for schedule in schedules:
            dates, following = due_dates_through(
                start=schedule.start_date, frequency=schedule.frequency, first=schedule.next_date, through=market_date
            )
            due += [
                _Due(
                    schedule.pk, schedule.account_id, schedule.account.owner_id, schedule.amount, d, schedule.frequency
                )
                for d in dates
            ]
            schedule.next_date = following
        # The unique (schedule, due date) constraint is the last word; reading what exists first tells which
        # rows this transaction adds, so only those are audited.
        existing = set(
            CashMovement.objects.filter(
                recurring_deposit_id__in=[s.pk for s in schedules],
                due_on__gte=min((d.due_on for d in due), default=market_date),
            ).values_list("recurring_deposit_id", "due_on")
        )
        new = [d for d in due if (d.schedule_id, d.due_on) not in existing]
        CashMovement.objects.bulk_create(
            [
                CashMovement(
                    account_id=d.account_id,
                    kind=CashMovementKind.DEPOSIT,
                    amount=d.amount,
                    recurring_deposit_id=d.schedule_id,
                    due_on=d.due_on,
                    description=f"Recurring deposit ({d.frequency}) due {d.due_on.isoformat()}",
                )
                for d in new
            ],
            ignore_conflicts=True,
        )
        # One UPDATE per distinct next date (schedules started together move together): much cheaper than
        # bulk_update's CASE over every row.
        by_next_date: dict[date, list[int]] = defaultdict(list)
        for schedule in schedules:
            by_next_date[schedule.next_date].append(schedule.pk)
        for next_date, schedule_ids in by_next_date.items():
            RecurringDeposit.objects.filter(pk__in=schedule_ids).update(next_date=next_date)
        # ignore_conflicts leaves the primary keys unset: read them back for the audit rows, in one query.
        rows = CashMovement.objects.filter(
            recurring_deposit_id__in={d.schedule_id for d in new}, due_on__in={d.due_on for d in new}
        ).values_list("recurring_deposit_id", "due_on", "pk")
        created = {(schedule_id, due_on): pk for schedule_id, due_on, pk in rows}
        # One chain append for the batch (a million accounts can have a deposit due on the 1st).
        audit_record_many(
            [
                PendingEvent(
                    action="account.recurring_deposit",
                    object_type="portfolios.account",
                    object_id=d.account_id,
                    subject_id=d.owner_id,
                    payload={
                        "amount": d.amount,
                        "cash_movement_id": created[(d.schedule_id, d.due_on)],
                        "recurring_deposit_id": d.schedule_id,
                        "due_on": d.due_on,
                    },
                )
                for d in new
            ]
        )
        return len(new), candidates[-1][0]


def recurring_deposits_run(*, market_date: date, book: str = LIVE_BOOK) -> int:
    """Make every recurring deposit due on or before ``market_date`` in ``book``'s accounts; return how many.

    Each due date of each active schedule is deposited exactly once, missed dates included (a run skipped for a
    week catches up). Running it again, or twice at once, deposits nothing more: schedules are locked and
    re-read in each batch's transaction, ``next_date`` moves past ``market_date`` in the transaction that writes
    the deposits, and ``(schedule, due date)`` is unique in the ledger.
    """
    made, after_id = 0, 0
    while True:
        count, last = _recurring_deposits_batch(market_date=market_date, book=book, after_id=after_id)
        if last is None:
            return made
        made, after_id = made + count, last


# Withdrawals -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountWorth:
    cash: Decimal
    invested: Decimal
    pending_withdrawals: Decimal
    market_date: date | None
    selling_costs: Decimal = ZERO  # selling every position at the latest closes costs this

    @property
    def value(self) -> Decimal:
        return self.cash + self.invested

    @property
    def withdrawable(self) -> Decimal:
        """What a new withdrawal may ask for: the value less what selling would cost and what earlier requests
        will take. Asking for the whole value would wait forever: selling everything raises value less costs."""
        return max(self.value - self.selling_costs - self.pending_withdrawals, ZERO)


def account_worth(account_id: int, *, as_of: date | None = None) -> AccountWorth:
    """Cash, holdings at the closes of ``as_of`` (default: the latest; each position rounded down to the cent),
    what selling them all would cost, and pending withdrawals of one account."""
    market_date = as_of or market_date_latest()
    cash = cash_balances([account_id]).get(account_id, ZERO)
    held = holdings([account_id]).get(account_id, {})
    prices = prices_as_of(market_date) if market_date is not None and held else {}
    positions = [(quantity, prices[asset_id][0]) for asset_id, quantity in held.items() if asset_id in prices]
    invested = sum(((q * p).quantize(CENT, rounding=ROUND_FLOOR) for q, p in positions), ZERO)
    cost_rate: Decimal = settings.ADVISOR["TRADING_COST_RATE"]
    pending = WithdrawalRequest.objects.filter(account_id=account_id, status=WithdrawalStatus.PENDING).aggregate(
        total=Sum("amount")
    )["total"]
    return AccountWorth(
        cash=cash,
        invested=invested,
        pending_withdrawals=Decimal(pending or 0).quantize(CENT),
        market_date=market_date,
        selling_costs=sum((selling_cost(q, p, cost_rate) for q, p in positions), ZERO),
    )


def _pay(
    withdrawal: WithdrawalRequest,
    *,
    actor: User | None,
    amount: Decimal | None = None,
    audit_events: list[PendingEvent] | None = None,
) -> CashMovement | None:
    """Pay a pending withdrawal: the caller holds the account lock and has checked the cash covers ``amount``
    (default: the whole request; less only when nothing is left to sell, noted on the request). The audit event
    is appended to ``audit_events`` when given (the caller appends them to the chain later in its transaction)."""
    paid = withdrawal.amount if amount is None else amount
    now = timezone.now()
    note = "" if paid == withdrawal.amount else f"paid ${paid:,.2f} of ${withdrawal.amount:,.2f}: nothing left to sell"
    claimed = WithdrawalRequest.objects.filter(pk=withdrawal.pk, status=WithdrawalStatus.PENDING).update(
        status=WithdrawalStatus.COMPLETED, completed_at=now, note=note
    )
    if claimed != 1:
        return None
    withdrawal.status, withdrawal.completed_at, withdrawal.note = WithdrawalStatus.COMPLETED, now, note
    movement = CashMovement.objects.create(
        account_id=withdrawal.account_id,
        kind=CashMovementKind.WITHDRAWAL,
        amount=-paid,
        withdrawal=withdrawal,
        description="Withdrawal" + (f" ({note})" if note else ""),
    )
    event = PendingEvent(
        actor=actor,
        action="account.withdrawal",
        object_type="portfolios.account",
        object_id=withdrawal.account_id,
        subject_id=withdrawal.account.owner_id,
        payload={"amount": paid, "withdrawal_id": withdrawal.pk, "cash_movement_id": movement.pk}
        | ({"requested": withdrawal.amount, "note": note} if note else {}),
    )
    if audit_events is None:
        audit_record_many([event])
    else:
        audit_events.append(event)
    return movement


def withdrawal_request(*, account: Account, amount: object, actor: User) -> WithdrawalRequest:
    """Take ``amount`` out of the account: paid now when the cash covers it and no earlier request waits,
    otherwise pending until the pipeline's sales raise the cash (``withdrawals_settle`` then pays it).

    The amount may not exceed the account's value at the latest prices less the withdrawals already pending.
    """
    _require_owner(account, actor, "withdraw from it")
    value = parse_amount(amount, limit=MAX_WITHDRAWAL, per="withdrawal").quantize(CENT)
    with transaction.atomic():
        account_lock(account.pk)
        worth = account_worth(account.pk)
        if value > worth.withdrawable:
            reason = f"the account is worth ${worth.value:,.2f}"
            if worth.market_date is not None and worth.invested:
                reason += f" at the prices of {worth.market_date.isoformat()}"
            if worth.selling_costs:
                reason += f", less ${worth.selling_costs:,.2f} that selling it would cost"
            if worth.pending_withdrawals:
                reason += f", less ${worth.pending_withdrawals:,.2f} already requested"
            raise InvalidInputError(
                "Amount too large.", fields={"amount": f"At most ${worth.withdrawable:,.2f}: {reason}."}
            )
        withdrawal = WithdrawalRequest.objects.create(account=account, amount=value, requested_by=actor)
        if not worth.pending_withdrawals and worth.cash >= value:
            _pay(withdrawal, actor=actor)
        else:
            audit_record(
                actor=actor,
                action="account.withdrawal_requested",
                obj=account,
                subject_id=account.owner_id,
                payload={
                    "amount": value,
                    "withdrawal_id": withdrawal.pk,
                    "cash": worth.cash,
                    "pending_before": worth.pending_withdrawals,
                },
            )
    return withdrawal


def withdrawal_cancel(*, withdrawal_id: int, actor: User) -> WithdrawalRequest:
    """Cancel a pending withdrawal; cash already raised for it stays in the account."""
    withdrawal = WithdrawalRequest.objects.select_related("account").filter(pk=withdrawal_id).first()
    if withdrawal is None:
        raise InvalidInputError("No such withdrawal.", fields={"withdrawal_id": f"No withdrawal {withdrawal_id}."})
    _require_owner(withdrawal.account, actor, "cancel its withdrawals")
    with transaction.atomic():
        # The account lock orders this against withdrawals_settle: a withdrawal is either paid or cancelled.
        account_lock(withdrawal.account_id)
        cancelled = WithdrawalRequest.objects.filter(pk=withdrawal.pk, status=WithdrawalStatus.PENDING).update(
            status=WithdrawalStatus.CANCELLED
        )
        if cancelled != 1:
            withdrawal.refresh_from_db()
            raise InvalidStateError(
                f"Only a pending withdrawal can be cancelled; this one is {withdrawal.get_status_display().lower()}."
            )
        audit_record(
            actor=actor,
            action="account.withdrawal_cancelled",
            obj=withdrawal.account,
            subject_id=withdrawal.account.owner_id,
            payload={"amount": withdrawal.amount, "withdrawal_id": withdrawal.pk},
        )
    withdrawal.refresh_from_db()
    return withdrawal


def withdrawals_settle(*, account_id: int, audit_events: list[PendingEvent] | None = None) -> list[WithdrawalRequest]:
    """Pay the account's pending withdrawals, oldest first, while the cash covers them; return those paid.

    Stops at the first one the cash does not cover (a later, smaller one does not jump the queue). Safe to call
    any time and more than once: each withdrawal is paid at most once (account lock, compare-and-set of its
    status, one-to-one ledger entry). With ``audit_events`` the payments' events are appended there, for a
    caller (the pipeline's chunk) that appends them to the chain at the end of its own transaction.
    """
    with transaction.atomic():
        account_lock(account_id)
        pending = list(
            WithdrawalRequest.objects.filter(account_id=account_id, status=WithdrawalStatus.PENDING)
            .select_related("account")
            .order_by("requested_at", "pk")
        )
        if not pending:
            return []
        cash = cash_balances([account_id]).get(account_id, ZERO)
        paid: list[WithdrawalRequest] = []
        for withdrawal in pending:
            if withdrawal.amount > cash:
                # Prices fell between the request and the sales: once nothing is left to sell (no shares, no
                # open recommendation), what the sales raised is paid rather than waiting for ever.
                if (
                    cash > 0
                    and _nothing_left_to_sell(account_id)
                    and _pay(withdrawal, actor=None, amount=cash, audit_events=audit_events) is not None
                ):
                    paid.append(withdrawal)
                break
            if _pay(withdrawal, actor=None, audit_events=audit_events) is not None:
                cash -= withdrawal.amount
                paid.append(withdrawal)
        return paid


def _nothing_left_to_sell(account_id: int) -> bool:
    from .pipeline import OPEN_STATUSES

    return (
        not Lot.objects.filter(account_id=account_id, quantity__gt=0).exists()
        and not Recommendation.objects.filter(account_id=account_id, status__in=OPEN_STATUSES).exists()
    )


def withdrawals_settle_all(*, book: str = LIVE_BOOK) -> int:
    """``withdrawals_settle`` for every account of ``book`` with a pending withdrawal; return how many were paid."""
    account_ids = (
        WithdrawalRequest.objects.filter(status=WithdrawalStatus.PENDING, account__book=book)
        .order_by("account_id")
        .values_list("account_id", flat=True)
        .distinct()
    )
    # One transaction per account: only accounts with a pending withdrawal, a small share of the book.
    return sum(len(withdrawals_settle(account_id=account_id)) for account_id in list(account_ids))
