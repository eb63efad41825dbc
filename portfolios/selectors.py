"""Reads shaped for views, APIs and the pipeline: bulk queries, no per-row lookups."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db.models import Max, OuterRef, Subquery, Sum

from profiling.models import RiskProfile

from .models import (
    Account,
    Asset,
    AssetClass,
    CashMovement,
    Lot,
    ModelPortfolio,
    OptimizationRun,
    Price,
    Recommendation,
    RunStatus,
)
from .rebalance import CENT, SHARE_STEP, ZERO, Position, account_value, class_drift


def market_date_latest() -> date | None:
    """The market clock: the latest date with a stored price."""
    result: date | None = Price.objects.aggregate(latest=Max("date"))["latest"]
    return result


MARKET_PROXY = "VTI"  # US total market: the drawdown investors feel
DRAWDOWN_WINDOW_DAYS = 365


def market_drawdown(as_of: date | None = None) -> Decimal:
    """How far the market proxy's close on ``as_of`` is below its highest close of the past year (0 to 1)."""
    as_of = as_of or market_date_latest()
    if as_of is None:
        return Decimal(0)
    from datetime import timedelta

    closes = Price.objects.filter(
        asset__ticker=MARKET_PROXY, date__lte=as_of, date__gt=as_of - timedelta(days=DRAWDOWN_WINDOW_DAYS)
    )
    stats = closes.aggregate(peak=Max("close"))
    last = closes.order_by("-date").values_list("close", flat=True).first()
    if not stats["peak"] or last is None:
        return Decimal(0)
    return (1 - Decimal(last) / Decimal(stats["peak"])).quantize(Decimal("0.0001"))


def prices_as_of(as_of: date) -> dict[int, tuple[Decimal, date]]:
    """Latest close on or before ``as_of`` per asset id, with its date: one query."""
    latest = Price.objects.filter(asset=OuterRef("pk"), date__lte=as_of).order_by("-date")
    rows = Asset.objects.annotate(
        close=Subquery(latest.values("close")[:1]), close_date=Subquery(latest.values("date")[:1])
    ).values_list("id", "close", "close_date")
    return {asset_id: (close, day) for asset_id, close, day in rows if close is not None}


def optimization_run_current() -> OptimizationRun | None:
    return OptimizationRun.objects.filter(status=RunStatus.SUCCEEDED).order_by("-as_of", "-id").first()


def model_portfolio_for(*, risk_level: int, run: OptimizationRun | None = None) -> ModelPortfolio | None:
    run = run or optimization_run_current()
    if run is None:
        return None
    return (
        ModelPortfolio.objects.filter(run=run, risk_level=risk_level)
        .prefetch_related("weights__asset__asset_class")
        .first()
    )


def model_portfolios_current() -> list[ModelPortfolio]:
    run = optimization_run_current()
    if run is None:
        return []
    return list(
        ModelPortfolio.objects.filter(run=run).order_by("risk_level").prefetch_related("weights__asset__asset_class")
    )


def cash_balances(account_ids: Iterable[int]) -> dict[int, Decimal]:
    rows = (
        CashMovement.objects.filter(account_id__in=list(account_ids))
        .values("account_id")
        .annotate(balance=Sum("amount"))
        .values_list("account_id", "balance")
    )
    # SQLite sums NUMERIC through floats: bring the balance back to cents.
    return {account_id: Decimal(balance).quantize(CENT) for account_id, balance in rows}


def holdings(account_ids: Iterable[int]) -> dict[int, dict[int, Decimal]]:
    """account id -> asset id -> shares held (sum of open lots)."""
    rows = (
        Lot.objects.filter(account_id__in=list(account_ids), quantity__gt=0)
        .values("account_id", "asset_id")
        .annotate(quantity=Sum("quantity"))
        .values_list("account_id", "asset_id", "quantity")
    )
    result: dict[int, dict[int, Decimal]] = defaultdict(dict)
    for account_id, asset_id, quantity in rows:
        # SQLite sums NUMERIC through floats; the broker's step is 1e-6 shares.
        result[account_id][asset_id] = Decimal(quantity).quantize(SHARE_STEP)
    return result


def current_risk_levels(investor_ids: Iterable[int]) -> dict[int, int]:
    """investor id -> effective risk level of their newest profile version: one query."""
    newest = RiskProfile.objects.filter(investor=OuterRef("investor")).order_by("-version")
    rows = RiskProfile.objects.filter(investor_id__in=list(investor_ids), pk=Subquery(newest.values("pk")[:1]))
    return dict(rows.values_list("investor_id", "effective_risk_level"))


@dataclass
class PositionRow:
    ticker: str
    name: str
    asset_class: str
    quantity: Decimal
    price: Decimal
    value: Decimal
    weight: Decimal
    target_weight: Decimal


@dataclass
class ClassRow:
    code: str
    name: str
    current: Decimal
    target: Decimal
    drift: Decimal


@dataclass
class AccountSnapshot:
    account: Account
    market_date: date | None
    cash: Decimal
    invested: Decimal
    total: Decimal
    risk_level: int | None
    model_portfolio: ModelPortfolio | None
    positions: list[PositionRow] = field(default_factory=list)
    classes: list[ClassRow] = field(default_factory=list)
    max_drift: Decimal = ZERO


def account_snapshot(account: Account) -> AccountSnapshot:
    """Value, cash, positions and drift against target of one account at the market date."""
    market_date = market_date_latest()
    cash = cash_balances([account.pk]).get(account.pk, ZERO)
    held = holdings([account.pk]).get(account.pk, {})
    prices = prices_as_of(market_date) if market_date else {}
    risk_level = current_risk_levels([account.owner_id]).get(account.owner_id)
    portfolio = model_portfolio_for(risk_level=risk_level) if risk_level else None
    target = {w.asset_id: w.weight for w in portfolio.weights.all()} if portfolio else {}
    assets = {a.pk: a for a in Asset.objects.select_related("asset_class").filter(pk__in=set(held) | set(target))}
    positions = {
        assets[aid].ticker: Position(assets[aid].ticker, assets[aid].asset_class.code, qty, prices[aid][0])
        for aid, qty in held.items()
    }
    total = account_value(positions, cash)
    rows = []
    for aid in sorted(set(held) | set(target), key=lambda a: assets[a].ticker):
        asset = assets[aid]
        quantity = held.get(aid, ZERO)
        price = prices[aid][0] if aid in prices else ZERO
        value = (quantity * price).quantize(Decimal("0.01"))
        rows.append(
            PositionRow(
                ticker=asset.ticker,
                name=asset.name,
                asset_class=asset.asset_class.name,
                quantity=quantity,
                price=price,
                value=value,
                weight=(value / total).quantize(Decimal("0.0001")) if total else ZERO,
                target_weight=target.get(aid, ZERO),
            )
        )
    class_names = dict(AssetClass.objects.values_list("code", "name"))
    drifts = class_drift(
        positions,
        cash,
        {assets[aid].ticker: w for aid, w in target.items()},
        {a.ticker: a.asset_class.code for a in assets.values()},
    )
    classes = [ClassRow(d.asset_class, class_names[d.asset_class], d.current, d.target, d.drift) for d in drifts]
    return AccountSnapshot(
        account=account,
        market_date=market_date,
        cash=cash,
        invested=(total - cash).quantize(Decimal("0.01")),
        total=total.quantize(Decimal("0.01")),
        risk_level=risk_level,
        model_portfolio=portfolio,
        positions=rows,
        classes=classes,
        max_drift=max((abs(c.drift) for c in classes), default=ZERO),
    )


def recommendation_detail(recommendation: Recommendation) -> Recommendation:
    return (
        Recommendation.objects.select_related("account__owner", "model_portfolio", "decided_by", "pipeline_run")
        .prefetch_related("trades__asset__asset_class", "findings", "orders__fill")
        .get(pk=recommendation.pk)
    )
