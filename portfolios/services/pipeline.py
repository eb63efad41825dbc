"""The nightly pipeline: model portfolios, then drift and recommendations for every account."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from advisor.errors import InvalidStateError
from compliance.audit import audit_record
from compliance.rules import Proposal, TradeLine
from compliance.services import has_blocking, recommendation_check

from ..explain import binding_sentence as _binding_sentence
from ..models import (
    Account,
    Asset,
    AssetClass,
    ModelPortfolio,
    OptimizationRun,
    PersonalTarget,
    PipelineRun,
    Recommendation,
    RecommendationKind,
    RecommendationStatus,
    RunStatus,
    Trade,
)
from ..rebalance import ZERO, ClassDrift, Position, ProposedTrade, account_value, class_drift, generate_trades, triggers
from ..selectors import cash_balances, current_risk_levels, holdings, market_date_latest, prices_as_of
from .optimization import model_portfolios_build
from .targets import personal_targets_build

logger = logging.getLogger(__name__)
PIPELINE_LOCK_KEY = 0x504950454C494E45  # "PIPELINE"
# An account with one of these waits for the advisor (or the broker) before it gets another.
OPEN_STATUSES = (RecommendationStatus.PENDING, RecommendationStatus.BLOCKED, RecommendationStatus.APPROVED)
# A run still "running" after this long is taken to have crashed and may be claimed again.
STALE_AFTER = timedelta(hours=2)


class PipelineBusyError(InvalidStateError):
    pass


@contextmanager
def _exclusive(market_date: date) -> Iterator[None]:
    """One pipeline per date at a time, across processes and hosts (a Postgres advisory lock)."""
    if connection.vendor != "postgresql":
        # SQLite is the single-machine demo: its IMMEDIATE transactions serialize writers.
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [PIPELINE_LOCK_KEY >> 32, market_date.toordinal()])
        if not cursor.fetchone()[0]:
            raise PipelineBusyError(f"A pipeline for {market_date} is already running.")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [PIPELINE_LOCK_KEY >> 32, market_date.toordinal()])


def _claim(market_date: date, *, rerun: bool) -> tuple[PipelineRun, bool]:
    """The run row for the date, and whether this process now owns it (compare-and-set on its status)."""
    run, created = PipelineRun.objects.get_or_create(market_date=market_date)
    if created:
        return run, True
    if run.status == RunStatus.SUCCEEDED and not rerun:
        return run, False
    if run.status == RunStatus.RUNNING and run.started_at > timezone.now() - STALE_AFTER:
        raise PipelineBusyError(f"A pipeline for {market_date} is already running (started {run.started_at}).")
    claimed = PipelineRun.objects.filter(pk=run.pk, status=run.status, started_at=run.started_at).update(
        status=RunStatus.RUNNING, started_at=timezone.now(), error=""
    )
    if not claimed:
        raise PipelineBusyError(f"Another process claimed the pipeline for {market_date} first.")
    return run, True


def pipeline_run(*, market_date: date | None = None, rerun: bool = False) -> PipelineRun:
    """Run (or finish) the pipeline for a market date; calling it again for the same date changes nothing.

    ``rerun`` scans a finished date again, for accounts funded or profiled since: accounts that already have
    a recommendation from this run are skipped (one per run and account).
    """
    market_date = market_date or market_date_latest()
    if market_date is None:
        raise InvalidStateError("No prices are stored: run import_prices first.")
    with _exclusive(market_date):
        run, owned = _claim(market_date, rerun=rerun)
        if not owned:
            return run
        timings: dict[str, float] = {}
        counts: Counter[str] = Counter()
        failures: list[str] = []
        try:
            t0 = time.perf_counter()
            optimization = model_portfolios_build(as_of=market_date)
            timings["optimize_seconds"] = round(time.perf_counter() - t0, 4)
            t0 = time.perf_counter()
            _recommend_all(run, optimization_run=optimization, counts=counts, failures=failures)
            timings["accounts_seconds"] = round(time.perf_counter() - t0, 4)
            if requeued := _requeue_approved():
                counts["executions_requeued"] = requeued
        except Exception as exc:
            # Record why the run failed before letting the error reach Celery: never silently skipped.
            PipelineRun.objects.filter(pk=run.pk).update(
                status=RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=timezone.now()
            )
            raise
        with transaction.atomic():
            PipelineRun.objects.filter(pk=run.pk).update(
                status=RunStatus.FAILED if failures else RunStatus.SUCCEEDED,
                optimization_run=optimization,
                counts={**dict(counts), "failures": len(failures)},
                timings=timings,
                error="\n".join(failures[:100]),
                finished_at=timezone.now(),
            )
            audit_record(
                actor=None,
                action="pipeline.finished",
                obj=run,
                payload={"market_date": market_date, "counts": dict(counts), "failures": len(failures)},
            )
        run.refresh_from_db()
        return run


def _requeue_approved() -> int:
    """Approved recommendations whose execution task was lost get it again (execution is idempotent)."""
    from ..tasks import execute_recommendation

    waiting = list(Recommendation.objects.filter(status=RecommendationStatus.APPROVED).values_list("pk", flat=True))
    for recommendation_id in waiting:
        transaction.on_commit(partial(execute_recommendation.delay, recommendation_id))
    return len(waiting)


def _recommend_all(
    run: PipelineRun, *, optimization_run: OptimizationRun, counts: Counter[str], failures: list[str]
) -> None:
    params = settings.ADVISOR
    accounts = list(Account.objects.select_related("owner"))
    account_ids = [a.pk for a in accounts]
    levels = current_risk_levels({a.owner_id for a in accounts})
    cash = cash_balances(account_ids)
    held = holdings(account_ids)
    prices = {aid: close for aid, (close, _) in prices_as_of(run.market_date).items()}
    assets = {a.pk: a for a in Asset.objects.select_related("asset_class")}
    class_of = {a.ticker: a.asset_class.code for a in assets.values()}
    class_names = dict(AssetClass.objects.values_list("code", "name"))
    portfolios = {
        p.risk_level: p for p in ModelPortfolio.objects.filter(run=optimization_run).prefetch_related("weights")
    }
    # Once per run, for every account with a profile: the model portfolio under the investor's constraints.
    # An account whose constraints no portfolio satisfies gets none; the failure names it.
    personal_targets = personal_targets_build(
        optimization_run=optimization_run,
        accounts_with_levels=[(a, levels[a.owner_id]) for a in accounts if a.owner_id in levels],
        failures=failures,
    )
    busy = set(
        Recommendation.objects.filter(account_id__in=account_ids, status__in=OPEN_STATUSES).values_list(
            "account_id", flat=True
        )
    )
    done = set(Recommendation.objects.filter(pipeline_run=run).values_list("account_id", flat=True))

    for account in accounts:
        counts["accounts_seen"] += 1
        if account.pk in done:
            counts["already_recommended"] += 1
            continue
        if account.owner_id not in levels:
            counts["no_profile"] += 1
            continue
        if account.pk in busy:
            counts["awaiting_decision"] += 1
            continue
        personal_target = personal_targets.get(account.pk)
        if personal_target is None:  # infeasible constraints: already recorded in failures
            continue
        account_cash = cash.get(account.pk, ZERO)
        positions = {}
        try:
            for asset_id, quantity in held.get(account.pk, {}).items():
                asset = assets[asset_id]
                positions[asset.ticker] = Position(asset.ticker, class_of[asset.ticker], quantity, prices[asset_id])
        except KeyError as exc:
            failures.append(f"account {account.pk}: no price for asset {exc} on or before {run.market_date}")
            continue
        total = account_value(positions, account_cash)
        if total <= 0:
            counts["empty"] += 1
            continue
        portfolio = portfolios[personal_target.risk_level]
        target = {ticker: Decimal(weight) for ticker, weight in personal_target.weights.items()}
        drifts = class_drift(positions, account_cash, target, class_of)
        reasons = triggers(
            drifts,
            account_cash,
            total,
            band=params["DRIFT_BAND"],
            cash_threshold_amount=params["CASH_THRESHOLD_AMOUNT"],
            cash_threshold_weight=params["CASH_THRESHOLD_WEIGHT"],
        )
        if not reasons:
            counts["in_band"] += 1
            continue
        ticker_prices = {assets[aid].ticker: p for aid, p in prices.items()}
        trades = generate_trades(
            positions,
            account_cash,
            target,
            ticker_prices,
            min_trade=params["MIN_TRADE_AMOUNT"],
            cost_rate=params["TRADING_COST_RATE"],
        )
        if not trades:
            counts["no_trades"] += 1
            continue
        try:
            recommendation = _recommendation_create(
                run=run,
                account=account,
                portfolio=portfolio,
                personal_target=personal_target,
                reasons=reasons,
                drifts=drifts,
                class_names=class_names,
                trades=trades,
                cash=account_cash,
                total=total,
                positions=positions,
                asset_ids={a.ticker: a.pk for a in assets.values()},
            )
        except IntegrityError:
            # A concurrent delivery of the same run created it first.
            counts["already_recommended"] += 1
            continue
        counts[f"recommendations_{recommendation.kind}"] += 1
        if recommendation.status == RecommendationStatus.BLOCKED:
            counts["blocked_by_compliance"] += 1


def _explain(
    *,
    level: int,
    binding: list[dict[str, Any]],
    reasons: list[dict[str, str]],
    class_names: dict[str, str],
    trades: list[ProposedTrade],
) -> str:
    lines = []
    for r in reasons:
        if r["type"] == "cash":
            lines.append(
                f"You have ${Decimal(r['amount']):,.2f} of uninvested cash "
                f"({Decimal(r['weight']):.1%} of the account); we propose investing it."
            )
        else:
            current, target, band = Decimal(r["current"]), Decimal(r["target"]), Decimal(r["band"])
            lines.append(
                f"{class_names[r['asset_class']]} are {current:.1%} of your account against a target of "
                f"{target:.1%}, more than {band * 100:.0f} percentage points away."
            )
    buys = [t for t in trades if t.side == "buy"]
    sells = [t for t in trades if t.side == "sell"]
    if sells:
        lines.append("Sell: " + ", ".join(f"{t.ticker} ${t.amount:,.2f}" for t in sells) + ".")
    if buys:
        lines.append("Buy: " + ", ".join(f"{t.ticker} ${t.amount:,.2f}" for t in buys) + ".")
    cost = sum((t.cost for t in trades), ZERO)
    lines.append(
        f"These trades bring the account back to the target portfolio for your risk level {level} "
        f"at an estimated trading cost of ${cost:,.2f}."
    )
    lines.extend(_binding_sentence(b) for b in binding)
    return " ".join(lines)


def _recommendation_create(
    *,
    run: PipelineRun,
    account: Account,
    portfolio: ModelPortfolio,
    personal_target: PersonalTarget,
    reasons: list[dict[str, str]],
    drifts: list[ClassDrift],
    class_names: dict[str, str],
    trades: list[ProposedTrade],
    cash: Decimal,
    total: Decimal,
    positions: dict[str, Position],
    asset_ids: dict[str, int],
) -> Recommendation:
    # Buying with idle cash and selling nothing is "invest cash"; anything that sells is a rebalance.
    kind = (
        RecommendationKind.INVEST_CASH
        if any(r["type"] == "cash" for r in reasons) and all(t.side == "buy" for t in trades)
        else RecommendationKind.REBALANCE
    )
    with transaction.atomic():
        recommendation = Recommendation.objects.create(
            account=account,
            pipeline_run=run,
            model_portfolio=portfolio,
            personal_target=personal_target,
            kind=kind,
            status=RecommendationStatus.PENDING,
            risk_level=portfolio.risk_level,
            market_date=run.market_date,
            triggers=[{**r, "name": class_names[r["asset_class"]]} if "asset_class" in r else r for r in reasons],
            drift=[
                {
                    "asset_class": d.asset_class,
                    "name": class_names[d.asset_class],
                    "current": str(d.current),
                    "target": str(d.target),
                    "drift": str(d.drift),
                }
                for d in drifts
            ],
            explanation=_explain(
                level=portfolio.risk_level,
                binding=personal_target.binding,
                reasons=reasons,
                class_names=class_names,
                trades=trades,
            ),
            total_value=total.quantize(Decimal("0.01")),
            cash_before=cash,
            estimated_cost=sum((t.cost for t in trades), ZERO),
        )
        Trade.objects.bulk_create(
            [
                Trade(
                    recommendation=recommendation,
                    asset_id=asset_ids[t.ticker],
                    side=t.side,
                    quantity=t.quantity,
                    price=t.price,
                    amount=t.amount,
                    cash_effect=t.cash_effect,
                )
                for t in trades
            ]
        )
        audit_record(
            actor=None,
            action="recommendation.created",
            obj=recommendation,
            subject_id=account.owner_id,
            payload={
                "account_id": account.pk,
                "kind": kind,
                "risk_level": portfolio.risk_level,
                "model_portfolio_id": portfolio.pk,
                "personal_target_id": personal_target.pk,
                "triggers": reasons,
                "trades": [
                    {"ticker": t.ticker, "side": t.side, "quantity": t.quantity, "price": t.price, "amount": t.amount}
                    for t in trades
                ],
            },
        )
        findings = recommendation_check(
            recommendation_id=recommendation.pk,
            subject_id=account.owner_id,
            proposal=Proposal(
                risk_level=portfolio.risk_level,
                cash_before=cash,
                holdings_before={k: p.quantity for k, p in positions.items()},
                prices={t.ticker: t.price for t in trades} | {k: p.price for k, p in positions.items()},
                trades=[TradeLine(t.ticker, t.side, t.quantity, t.price, t.cash_effect) for t in trades],
                target_volatility=float(personal_target.volatility),
            ),
        )
        if has_blocking(findings):
            recommendation.status = RecommendationStatus.BLOCKED
            recommendation.save(update_fields=["status"])
    return recommendation
