"""Replay the nightly pipeline over stored history with a deterministic book of synthetic investors.

``simulation_book_create`` makes the book (idempotent): ``accounts`` accounts held by seeded synthetic investors
across risk levels 1-10, each investor with a taxable account and some with a traditional IRA, an initial
deposit in each, and one synthetic advisor assigned to all of them. Every step goes through the product's
services (signup-free user rows with unusable passwords, questionnaire, advisor override of the level, account
opening, deposit), so the audit trail reads like the live one's.

``simulation_day`` replays one market date: the pipeline for the book (``pipeline_run(book=...)``, so live
accounts are never read or written), then, with ``auto_approve``, the assigned advisor approves each pending
recommendation through ``recommendation_approve`` and the paper broker fills it at that day's closes
(``recommendation_execute(market_date=...)``), in one transaction per recommendation. A recommendation that
cannot be approved (compliance blocked it, or the wash-sale check refuses it) is rejected with the reason, so
the account is proposed again the next day instead of waiting forever. The day ends with one audit event,
``simulation.day_settled``, carrying the day's measurements (book value, drift to target); that event is the
record that the date is finished, so a re-run skips it, and a crash mid-date resumes that date (the pipeline
resumes its own run, executed recommendations stay executed, pending ones are decided).

``simulation_summary`` reads everything back from the database (fills, realized gains, the day events): the
numbers of a resumed simulation are the numbers of an uninterrupted one.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from django.db import transaction
from django.db.models import Count, Max, Min, Sum

from advisor.errors import InvalidInputError, InvalidStateError
from advisor.models import Role, User
from compliance.audit import audit_record
from compliance.models import AuditEvent

from ..models import (
    LIVE_BOOK,
    Account,
    AccountType,
    Asset,
    CashMovement,
    CashMovementKind,
    Fill,
    PipelineRun,
    Price,
    RealizedGain,
    Recommendation,
    RecommendationStatus,
    RunStatus,
    TradePurpose,
)
from ..rebalance import CENT, ZERO
from ..selectors import cash_balances, current_risk_levels, holdings, prices_as_of
from .pipeline import pipeline_run
from .targets import personal_targets_build

SIMULATION_BOOK = "simulation"
DEFAULT_ACCOUNTS = 50
DEFAULT_SEED = 2020
DAY_EVENT = "simulation.day_settled"
EMAIL_DOMAIN = "sim.invalid"  # RFC 2606: can never reach anyone
# A consistent, middle-of-the-road questionnaire response (2026.2): no inconsistency flags, so no review is
# needed before approving; the advisor then sets each investor's level (an audited override with a reason).
ANSWERS = {
    "age": "30to44",
    "dependents": "one",
    "income": "60to120k",
    "income_stability": "stable",
    "emergency_savings": "3to6",
    "invested_share": "25to50",
    "liquidity_3y": "little",
    "horizon": "10to20",
    "knowledge": "moderate",
    "experience": "some",
    "past_downturn": "held",
    "objective": "balanced",
    "fall_10": "hold",
    "fall_20": "hold",
    "fall_35": "hold",
    "sure_gain": "even",
    "trade_off": "medium_range",
}
IRA_SHARE = 0.4  # about this share of investors also hold a traditional IRA
TAXABLE_DEPOSITS = (25_000, 400_000)  # dollars, drawn uniformly in steps of $1,000
IRA_DEPOSITS = (10_000, 150_000)

Progress = Callable[[str], None]


class SimulationError(InvalidInputError):
    pass


# --- the synthetic book ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticAccount:
    account_type: str
    deposit: Decimal


@dataclass(frozen=True)
class SyntheticInvestor:
    number: int
    risk_level: int
    accounts: tuple[SyntheticAccount, ...]


def synthetic_investors(*, accounts: int, seed: int = DEFAULT_SEED) -> list[SyntheticInvestor]:
    """The book's investors, a pure function of ``accounts`` and ``seed``: investor ``i`` has risk level
    ``1 + i % 10`` (every level is present from ten investors on), a taxable account, and with probability
    ``IRA_SHARE`` a traditional IRA too, until ``accounts`` accounts are given out."""
    if accounts < 1:
        raise SimulationError("Too few accounts.", fields={"accounts": "At least one account."})
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    investors: list[SyntheticInvestor] = []
    left = accounts
    number = 0
    while left > 0:
        taxable = SyntheticAccount(AccountType.TAXABLE, Decimal(rng.randrange(*TAXABLE_DEPOSITS, 1000)))
        wants_ira = rng.random() < IRA_SHARE
        ira_deposit = Decimal(rng.randrange(*IRA_DEPOSITS, 1000))
        held = [taxable]
        if wants_ira and left >= 2:
            held.append(SyntheticAccount(AccountType.TRADITIONAL_IRA, ira_deposit))
        investors.append(SyntheticInvestor(number=number, risk_level=1 + number % 10, accounts=tuple(held)))
        left -= len(held)
        number += 1
    return investors


def _email(book: str, who: str) -> str:
    return f"{who}@{book}.{EMAIL_DOMAIN}"


def _user(email: str, full_name: str, role: str) -> User:
    user = User.objects.filter(email=email).first()
    if user is None:
        # No password: synthetic people cannot log in.
        user = User.objects.create_user(email, None, full_name=full_name, role=role)
    return user


def book_advisor(book: str) -> User | None:
    return User.objects.filter(email=_email(book, "advisor"), role=Role.ADVISOR).first()


def simulation_book_create(*, book: str = SIMULATION_BOOK, accounts: int = DEFAULT_ACCOUNTS,
                           seed: int = DEFAULT_SEED) -> User:  # fmt: skip
    """Create the synthetic book if it is not there yet (investor by investor, each in one transaction, so an
    interrupted creation completes on the next call); return its advisor. A book that holds more accounts, or
    other than ``accounts`` once it has been replayed, is refused: its history would no longer match. An
    existing investor is not checked against ``seed``: a book keeps the seed it was created with."""
    from advisor.services import investor_assign_advisor
    from profiling.services import profile_submit
    from profiling.services.profile import profile_override

    from .accounts import account_deposit, account_open

    if book == LIVE_BOOK:
        raise SimulationError("The live book is not simulated.", fields={"book": "Choose another book name."})
    if not book or len(book) > 32:
        raise SimulationError("Invalid book name.", fields={"book": "1 to 32 characters."})
    plan = synthetic_investors(accounts=accounts, seed=seed)
    existing = Account.objects.filter(book=book).count()
    # Growing a book that has been replayed would change its history; completing an interrupted creation is fine.
    if existing > accounts or (existing != accounts and PipelineRun.objects.filter(book=book).exists()):
        raise SimulationError(
            f"The book {book!r} already holds {existing} accounts, not {accounts}.",
            fields={"accounts": f"Use --accounts {existing}, or another --book."},
        )
    admin = _user(_email(book, "admin"), f"Simulation admin ({book})", Role.ADMIN)
    advisor = _user(_email(book, "advisor"), f"Simulation advisor ({book})", Role.ADVISOR)
    for investor_plan in plan:
        email = _email(book, f"investor{investor_plan.number:05d}")
        if Account.objects.filter(book=book, owner__email=email).exists():
            continue
        with transaction.atomic():
            investor = _user(email, f"Synthetic investor {investor_plan.number}", Role.INVESTOR)
            if Account.objects.filter(owner=investor).exclude(book=book).exists():
                raise SimulationError(f"{email} holds accounts outside the book {book!r}.")
            investor = investor_assign_advisor(investor=investor, advisor=advisor, actor=admin)
            profile_submit(investor=investor, answers=ANSWERS)
            profile_override(
                advisor=advisor,
                investor=investor,
                risk_level=investor_plan.risk_level,
                reason=f"Synthetic investor of the simulation book {book!r} (seed {seed}).",
            )
            for planned in investor_plan.accounts:
                account = account_open(owner=investor, account_type=planned.account_type)
                # In the same transaction as the opening: no other book ever sees the account.
                Account.objects.filter(pk=account.pk).update(book=book)
                account.book = book
                account_deposit(account=account, amount=planned.deposit, actor=investor)
    return advisor


# --- one day --------------------------------------------------------------------------------------------------


@dataclass
class DayResult:
    market_date: date
    skipped: bool = False  # settled before (a resumed simulation)
    recommendations: dict[str, int] = field(default_factory=dict)  # kind -> count (this run's)
    approved: int = 0
    rejected: int = 0
    fills: int = 0
    value: Decimal = ZERO
    drift_mean: float = 0.0
    drift_max: float = 0.0
    pipeline_seconds: float = 0.0
    optimization_run: int | None = None


@contextmanager
def _tasks_in_process() -> Iterator[None]:
    """The tasks an approval schedules after commit run here (there are no workers in a replay): the execution
    task then finds the recommendation already executed at the replayed day's closes and does nothing."""
    from advisor.celery import app

    previous = app.conf.task_always_eager
    trace = logging.getLogger("celery.app.trace")  # a line per no-op task would drown the day lines
    level = trace.level
    app.conf.task_always_eager = True
    trace.setLevel(logging.WARNING)
    try:
        yield
    finally:
        app.conf.task_always_eager = previous
        trace.setLevel(level)


def _settled(run: PipelineRun) -> dict[str, Any] | None:
    payload = (
        AuditEvent.objects.filter(action=DAY_EVENT, object_type="portfolios.pipelinerun", object_id=str(run.pk))
        .values_list("payload", flat=True)
        .first()
    )
    return payload


def _decide(run: PipelineRun, advisor: User, market_date: date) -> tuple[int, int]:
    """Approve and execute each open recommendation of the run at the day's closes; reject what cannot be."""
    from .recommendations import recommendation_approve, recommendation_execute, recommendation_reject

    approved = rejected = 0
    open_recommendations = list(
        Recommendation.objects.filter(
            pipeline_run=run, status__in=(RecommendationStatus.PENDING, RecommendationStatus.BLOCKED)
        )
        .order_by("pk")
        .values_list("pk", "status")
    )
    for recommendation_id, status in open_recommendations:
        reason = "compliance blocked it" if status == RecommendationStatus.BLOCKED else ""
        if not reason:
            try:
                # Approval and fills in one transaction: an approved recommendation is never left for a worker
                # (which would fill it at the latest stored closes, not the replayed day's).
                with transaction.atomic():
                    recommendation_approve(
                        recommendation_id=recommendation_id,
                        advisor=advisor,
                        comment="Approved by the simulation (--auto-approve).",
                        as_of=market_date,
                    )
                    recommendation_execute(recommendation_id=recommendation_id, market_date=market_date)
                approved += 1
                continue
            except InvalidStateError as exc:
                reason = str(exc)
        recommendation_reject(
            recommendation_id=recommendation_id,
            advisor=advisor,
            comment=f"Rejected by the simulation: {reason}"[:2000],
        )
        rejected += 1
    return approved, rejected


def _measure(run: PipelineRun, market_date: date) -> tuple[Decimal, float, float, int]:
    """The book's value at the day's closes, and the mean and largest drift of its accounts from their personal
    targets. Drift is measured by asset class, as the pipeline measures it (a harvest's substitute fund stands
    for its class, it is not off target): sum over classes of |weight - target| / 2, cash counted as a class
    whose target is 0. 0 is on target, 1 is nothing in common."""
    accounts = list(Account.objects.filter(book=run.book).order_by("pk"))
    if not accounts or run.optimization_run is None:
        return ZERO, 0.0, 0.0, 0
    levels = current_risk_levels({a.owner_id for a in accounts})
    targets = personal_targets_build(
        optimization_run=run.optimization_run,
        accounts_with_levels=[(a, levels[a.owner_id]) for a in accounts if a.owner_id in levels],
    )
    ids = [a.pk for a in accounts]
    held = holdings(ids)
    cash = cash_balances(ids)
    closes = {asset_id: close for asset_id, (close, _) in prices_as_of(market_date).items()}
    class_of_id = dict(Asset.objects.values_list("pk", "asset_class__code"))
    class_of_ticker = dict(Asset.objects.values_list("ticker", "asset_class__code"))
    total = ZERO
    drifts: list[float] = []
    for account in accounts:
        by_class: dict[str, Decimal] = {}
        for asset_id, quantity in held.get(account.pk, {}).items():
            if asset_id in closes:
                amount = (quantity * closes[asset_id]).quantize(CENT, rounding=ROUND_FLOOR)
                by_class[class_of_id[asset_id]] = by_class.get(class_of_id[asset_id], ZERO) + amount
        account_cash = cash.get(account.pk, ZERO)
        value = sum(by_class.values(), ZERO) + account_cash
        total += value
        target = targets.get(account.pk)
        if value <= 0 or target is None:
            continue
        wanted: dict[str, Decimal] = {}
        for ticker, weight in target.weights.items():
            wanted[class_of_ticker[ticker]] = wanted.get(class_of_ticker[ticker], ZERO) + Decimal(weight)
        gap = sum((abs(by_class.get(c, ZERO) / value - wanted.get(c, ZERO)) for c in set(by_class) | set(wanted)), ZERO)
        drifts.append(float((gap + account_cash / value) / 2))
    mean = round(sum(drifts) / len(drifts), 6) if drifts else 0.0
    return total, mean, round(max(drifts, default=0.0), 6), len(drifts)


def simulation_day(
    *, book: str, market_date: date, advisor: User, auto_approve: bool, progress: Progress | None = None
) -> DayResult:
    """Replay one market date for the book (see the module's docstring); a settled date is skipped."""
    run = PipelineRun.objects.filter(book=book, market_date=market_date).first()
    if run is not None and run.status == RunStatus.SUCCEEDED:
        payload = _settled(run)
        if payload is not None:
            return _result(run, payload, skipped=True)
    started = time.perf_counter()
    run = pipeline_run(market_date=market_date, book=book, dispatch="inline", progress=progress or (lambda _: None))
    if run.status != RunStatus.SUCCEEDED:
        raise InvalidStateError(
            f"The pipeline for {book} {market_date} {run.status}: {run.error or 'see /staff/pipeline/'}. "
            "Fix the cause and run the simulation again: it resumes this date."
        )
    pipeline_seconds = time.perf_counter() - started
    approved = rejected = 0
    if auto_approve:
        approved, rejected = _decide(run, advisor, market_date)
    value, drift_mean, drift_max, measured = _measure(run, market_date)
    kinds = dict(
        Recommendation.objects.filter(pipeline_run=run).values_list("kind").annotate(n=Count("id")).order_by("kind")
    )
    fills = Fill.objects.filter(order__recommendation__pipeline_run=run, market_date=market_date).count()
    payload = {
        "book": book,
        "market_date": market_date,
        "recommendations": kinds,
        "approved": approved,
        "rejected": rejected,
        "fills": fills,
        "value": value,
        "accounts_measured": measured,
        "drift_mean": drift_mean,
        "drift_max": drift_max,
        "auto_approve": auto_approve,
        "optimization_run": run.optimization_run_id,
        "pipeline_seconds": round(pipeline_seconds, 3),
    }
    with transaction.atomic():
        # One event per run: the row lock keeps two simulations of the same book from both settling the date.
        PipelineRun.objects.select_for_update().get(pk=run.pk)
        previous = _settled(run)
        if previous is not None:
            return _result(run, previous, skipped=True)
        audit_record(actor=advisor, action=DAY_EVENT, obj=run, payload=payload)
    return _result(run, payload | {"value": str(value), "market_date": market_date.isoformat()}, skipped=False)


def _result(run: PipelineRun, payload: dict[str, Any], *, skipped: bool) -> DayResult:
    return DayResult(
        market_date=run.market_date,
        skipped=skipped,
        recommendations=dict(payload.get("recommendations", {})),
        approved=int(payload.get("approved", 0)),
        rejected=int(payload.get("rejected", 0)),
        fills=int(payload.get("fills", 0)),
        value=Decimal(str(payload.get("value", "0"))),
        drift_mean=float(payload.get("drift_mean", 0.0)),
        drift_max=float(payload.get("drift_max", 0.0)),
        pipeline_seconds=float(payload.get("pipeline_seconds", 0.0)),
        optimization_run=payload.get("optimization_run"),
    )


# --- the whole replay -----------------------------------------------------------------------------------------


def market_dates(*, date_from: date, date_to: date) -> list[date]:
    """The stored market dates in ``[date_from, date_to]``, refused in plain words when there are none."""
    if date_to < date_from:
        raise SimulationError(
            f"--to {date_to} is before --from {date_from}.", fields={"to": "Choose a date on or after --from."}
        )
    dates = list(
        Price.objects.filter(date__range=(date_from, date_to))
        .values_list("date", flat=True)
        .distinct()
        .order_by("date")
    )
    if not dates:
        bounds = Price.objects.aggregate(first=Min("date"), last=Max("date"))
        stored = f"{bounds['first']} to {bounds['last']}" if bounds["first"] else "none: run import_prices first"
        raise SimulationError(
            f"No prices between {date_from} and {date_to} (stored prices: {stored}).",
            fields={"from": "Choose dates inside the stored prices."},
        )
    return dates


def simulation_run(
    *,
    date_from: date,
    date_to: date,
    book: str = SIMULATION_BOOK,
    accounts: int = DEFAULT_ACCOUNTS,
    auto_approve: bool = False,
    seed: int = DEFAULT_SEED,
    progress: Callable[[DayResult, int, int], None] | None = None,
    pipeline_progress: Progress | None = None,
) -> Summary:
    """Create the book if needed and replay every market date in the range, in order; return the summary."""
    dates = market_dates(date_from=date_from, date_to=date_to)
    advisor = simulation_book_create(book=book, accounts=accounts, seed=seed)
    with _tasks_in_process():
        for index, market_date in enumerate(dates, start=1):
            result = simulation_day(
                book=book, market_date=market_date, advisor=advisor, auto_approve=auto_approve,
                progress=pipeline_progress,
            )  # fmt: skip
            if progress is not None:
                progress(result, index, len(dates))
    return simulation_summary(book=book, date_from=date_from, date_to=date_to)


# --- the summary ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonthRow:
    month: str  # YYYY-MM
    days: int
    recommendations: int
    fills: int
    harvests: int
    harvested_losses: Decimal
    drift_mean: float  # mean over the month's days of the book's mean drift
    drift_max: float  # the largest account drift on any day of the month
    value_end: Decimal


@dataclass(frozen=True)
class Summary:
    book: str
    date_from: date | None
    date_to: date | None
    days: int
    accounts: int
    investors: int
    recommendations: dict[str, int]
    approved: int
    rejected: int
    trades: int  # fills
    buys: Decimal  # gross traded value, dollars
    sells: Decimal
    traded_value: Decimal
    traded_value_after_investing: Decimal  # without the trades that invested cash (the first day's deposits)
    fees: Decimal
    average_value: Decimal
    turnover: Decimal  # traded value / average value over the days
    turnover_after_investing: Decimal
    harvest_trades: int  # sells of tax-loss harvests that filled
    harvested_losses: Decimal  # the realized losses of those sells (negative)
    wash_sale_disallowed: Decimal
    realized_short: Decimal  # net realized gains by term (all sells)
    realized_long: Decimal
    drift_mean: float
    drift_max: float
    deposits: Decimal
    final_value: Decimal
    months: tuple[MonthRow, ...]


def _dec(value: object) -> Decimal:
    return Decimal(str(value or 0)).quantize(CENT)


def simulation_summary(*, book: str, date_from: date, date_to: date) -> Summary:
    """What the replay did in ``[date_from, date_to]``, read back from the database."""
    runs = dict(
        PipelineRun.objects.filter(book=book, market_date__range=(date_from, date_to)).values_list("pk", "market_date")
    )
    days = sorted(
        (
            (runs[int(object_id)], payload)
            for object_id, payload in AuditEvent.objects.filter(
                action=DAY_EVENT, object_type="portfolios.pipelinerun", object_id__in=[str(pk) for pk in runs]
            ).values_list("object_id", "payload")
        ),
        key=lambda row: row[0],
    )
    fills = Fill.objects.filter(order__account__book=book, market_date__range=(date_from, date_to))
    sides = dict(fills.values_list("order__side").annotate(total=Sum("gross_amount")).order_by("order__side"))
    investing = fills.filter(order__trade__purpose=TradePurpose.CASH).aggregate(total=Sum("gross_amount"))["total"]
    gains = RealizedGain.objects.filter(account__book=book, sold_on__range=(date_from, date_to))
    by_term = dict(gains.values_list("term").annotate(total=Sum("gain")).order_by("term"))
    harvested = gains.filter(harvest=True, gain__lt=0)
    harvest_fills = fills.filter(order__trade__purpose=TradePurpose.HARVEST, order__side="sell")
    recommendations: Counter[str] = Counter()
    for _, payload in days:
        recommendations.update(payload.get("recommendations", {}))
    values = [Decimal(str(p["value"])) for _, p in days]
    average = (sum(values, ZERO) / len(values)).quantize(CENT) if values else ZERO
    buys, sells = _dec(sides.get("buy")), _dec(sides.get("sell"))
    traded = buys + sells
    after_investing = traded - _dec(investing)
    fees = fills.aggregate(total=Sum("cost"))["total"]

    def ratio(amount: Decimal) -> Decimal:
        return (amount / average).quantize(Decimal("0.0001")) if average else ZERO

    months: list[MonthRow] = []
    for month in sorted({day.strftime("%Y-%m") for day, _ in days}):
        rows = [(day, p) for day, p in days if day.strftime("%Y-%m") == month]
        first, last = rows[0][0], rows[-1][0]
        month_harvest = harvested.filter(sold_on__range=(first, last))
        months.append(
            MonthRow(
                month=month,
                days=len(rows),
                recommendations=sum(sum(p.get("recommendations", {}).values()) for _, p in rows),
                fills=sum(int(p.get("fills", 0)) for _, p in rows),
                harvests=harvest_fills.filter(market_date__range=(first, last)).count(),
                harvested_losses=_dec(month_harvest.aggregate(total=Sum("gain"))["total"]),
                drift_mean=round(sum(float(p["drift_mean"]) for _, p in rows) / len(rows), 6),
                drift_max=max(float(p["drift_max"]) for _, p in rows),
                value_end=Decimal(str(rows[-1][1]["value"])),
            )
        )
    accounts = Account.objects.filter(book=book)
    return Summary(
        book=book,
        date_from=days[0][0] if days else None,
        date_to=days[-1][0] if days else None,
        days=len(days),
        accounts=accounts.count(),
        investors=accounts.values("owner_id").distinct().count(),
        recommendations=dict(sorted(recommendations.items())),
        approved=sum(int(p.get("approved", 0)) for _, p in days),
        rejected=sum(int(p.get("rejected", 0)) for _, p in days),
        trades=fills.count(),
        buys=buys,
        sells=sells,
        traded_value=traded,
        traded_value_after_investing=after_investing,
        fees=_dec(fees),
        average_value=average,
        turnover=ratio(traded),
        turnover_after_investing=ratio(after_investing),
        harvest_trades=harvest_fills.count(),
        harvested_losses=_dec(harvested.aggregate(total=Sum("gain"))["total"]),
        wash_sale_disallowed=_dec(gains.aggregate(total=Sum("wash_sale_disallowed"))["total"]),
        realized_short=_dec(by_term.get("short")),
        realized_long=_dec(by_term.get("long")),
        drift_mean=round(sum(float(p["drift_mean"]) for _, p in days) / len(days), 6) if days else 0.0,
        drift_max=max((float(p["drift_max"]) for _, p in days), default=0.0),
        deposits=_dec(
            CashMovement.objects.filter(account__book=book, kind=CashMovementKind.DEPOSIT).aggregate(
                total=Sum("amount")
            )["total"]
        ),
        final_value=values[-1] if values else ZERO,
        months=tuple(months),
    )
