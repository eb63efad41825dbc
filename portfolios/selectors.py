"""Reads shaped for views, APIs and the pipeline: bulk queries, no per-row lookups."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Max, OuterRef, Prefetch, Subquery, Sum

from profiling.models import RiskProfile

from .models import (
    Account,
    Asset,
    AssetClass,
    AssetClassKind,
    CashMovement,
    Lot,
    ModelPortfolio,
    OptimizationRun,
    Price,
    Recommendation,
    RunStatus,
)
from .outlook import bad_year_return, explain_level
from .policy import (
    OPTIMIZATION,
    REBALANCING,
    OptimizationPolicy,
    PolicyVersion,
    RebalancingPolicy,
    default_optimization_policy,
    default_rebalancing_policy,
    policy_from_values,
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


_LOOK_UP = object()  # account_snapshot looks the personal target up itself


def account_snapshot(account: Account, *, personal_target: Any = _LOOK_UP) -> AccountSnapshot:
    """Value, cash, positions and drift against target of one account at the market date. ``personal_target``:
    the account's target when the caller looked several up at once (``personal_targets_lookup``)."""
    market_date = market_date_latest()
    cash = cash_balances([account.pk]).get(account.pk, ZERO)
    held = holdings([account.pk]).get(account.pk, {})
    prices = prices_as_of(market_date) if market_date else {}
    risk_level = current_risk_levels([account.owner_id]).get(account.owner_id)
    portfolio = model_portfolio_for(risk_level=risk_level) if risk_level else None
    target = {w.asset_id: w.weight for w in portfolio.weights.all()} if portfolio else {}
    # The account's own target (the model portfolio under the investor's constraints) when the pipeline
    # has built one at the current risk level.
    from .services.targets import personal_target_lookup  # services import selectors

    personal = personal_target
    if personal is _LOOK_UP:
        personal = personal_target_lookup(account=account, risk_level=risk_level) if risk_level else None
    if personal is not None:
        ids = dict(Asset.objects.filter(ticker__in=list(personal.weights)).values_list("ticker", "pk"))
        target = {ids[ticker]: Decimal(weight) for ticker, weight in personal.weights.items()}
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


def _frontier_point(portfolio: ModelPortfolio) -> dict[str, float | int]:
    """A model portfolio as a chart point: volatility (x) and expected return (y) in percent."""
    return {
        "x": round(float(portfolio.volatility) * 100, 2),
        "y": round(float(portfolio.expected_return) * 100, 2),
        "level": portfolio.risk_level,
    }


@dataclass
class TargetClassRow:
    code: str
    name: str
    weight: Decimal


@dataclass
class TargetFundRow:
    ticker: str
    name: str
    asset_class: str
    weight: Decimal


@dataclass
class TargetPreview:
    """The model portfolio of one risk level, shaped for the target-allocation preview."""

    risk_level: int
    portfolio: ModelPortfolio | None
    classes: list[TargetClassRow] = field(default_factory=list)
    funds: list[TargetFundRow] = field(default_factory=list)
    outlook: dict[str, Decimal] | None = None
    # For json_script: every level's point on the frontier and the investor's own.
    chart: dict[str, object] = field(default_factory=dict)


def target_preview(risk_level: int) -> TargetPreview:
    """Classes, funds, expected return, volatility, bad year and the frontier for ``risk_level``: two queries."""
    portfolios = model_portfolios_current()
    portfolio = next((p for p in portfolios if p.risk_level == risk_level), None)
    if portfolio is None:
        return TargetPreview(risk_level=risk_level, portfolio=None)
    weights = list(portfolio.weights.all())  # prefetched, largest first
    by_class: dict[AssetClass, Decimal] = defaultdict(Decimal)
    for w in weights:
        by_class[w.asset.asset_class] += w.weight
    classes = [
        TargetClassRow(code=c.code, name=c.name, weight=weight)
        for c, weight in sorted(by_class.items(), key=lambda item: (-item[1], item[0].display_order))
    ]
    return TargetPreview(
        risk_level=risk_level,
        portfolio=portfolio,
        classes=classes,
        funds=[TargetFundRow(w.asset.ticker, w.asset.name, w.asset.asset_class.name, w.weight) for w in weights],
        outlook=explain_level(portfolio),
        chart={"frontier": [_frontier_point(p) for p in portfolios], "investor": _frontier_point(portfolio)},
    )


@dataclass
class ModelPortfolioStats:
    portfolio: ModelPortfolio
    bad_year: Decimal  # 5th percentile of a year's return
    bad_year_loss: Decimal  # the same as a positive loss, 0 when the bad year is still a gain
    equity_share: Decimal
    fund_count: int


def model_portfolio_statistics(portfolios: Iterable[ModelPortfolio]) -> list[ModelPortfolioStats]:
    """Per level: bad year, equity share and number of funds (weights prefetched by the caller's selector)."""
    rows = []
    for p in portfolios:
        weights = list(p.weights.all())
        bad_year = bad_year_return(p.expected_return, p.volatility)
        rows.append(
            ModelPortfolioStats(
                portfolio=p,
                bad_year=bad_year,
                bad_year_loss=-bad_year if bad_year < 0 else ZERO,
                equity_share=sum(
                    (w.weight for w in weights if w.asset.asset_class.kind == AssetClassKind.EQUITY), ZERO
                ),
                fund_count=len(weights),
            )
        )
    return rows


@dataclass
class OptimizationRunRow:
    run: OptimizationRun
    data_hash_prefix: str
    timings: list[tuple[str, float]]  # ("estimate", 0.0123): seconds per step, in the order recorded


# The steps of model_portfolios_build in the order they run (jsonb does not keep key order).
TIMING_ORDER = ("load", "estimate", "first_solve", "resolve_mean", "optimize", "total")


def _timing_rows(timings: dict[str, float]) -> list[tuple[str, float]]:
    named = {key.replace("_seconds", ""): value for key, value in timings.items()}
    rank = {name: i for i, name in enumerate(TIMING_ORDER)}
    return [(name.replace("_", " "), named[name]) for name in sorted(named, key=lambda n: (rank.get(n, len(rank)), n))]


def optimization_runs_recent(limit: int = 10) -> list[OptimizationRunRow]:
    runs = OptimizationRun.objects.order_by("-created_at", "-id")[:limit]
    return [
        OptimizationRunRow(run=run, data_hash_prefix=run.data_hash[:12], timings=_timing_rows(run.timings))
        for run in runs
    ]


def optimization_run_detail(*, run_id: int) -> OptimizationRun | None:
    """One run with its model portfolios and their weights (prefetched: three queries in all)."""
    return (
        OptimizationRun.objects.filter(pk=run_id)
        .prefetch_related(
            Prefetch(
                "model_portfolios",
                queryset=ModelPortfolio.objects.order_by("risk_level").prefetch_related("weights__asset__asset_class"),
            )
        )
        .first()
    )


def model_universe(run: OptimizationRun) -> list[Asset]:
    """The funds the run optimized over, in the run's order (its ``universe`` parameter)."""
    tickers = list(run.parameters.get("universe", []))
    assets = {a.ticker: a for a in Asset.objects.select_related("asset_class").filter(ticker__in=tickers)}
    return [assets[t] for t in tickers if t in assets]


def _policy_current(name: str) -> PolicyVersion:
    from compliance.models import ParameterVersion

    stored = ParameterVersion.objects.filter(name=name).order_by("-version").first()
    if stored is not None:
        return PolicyVersion(name, stored.version, policy_from_values(name, stored.values))
    params = settings.ADVISOR
    if name == OPTIMIZATION:
        default: OptimizationPolicy | RebalancingPolicy = default_optimization_policy(
            estimation_years=params["ESTIMATION_YEARS"], max_asset_weight=params["MAX_ASSET_WEIGHT"]
        )
    else:
        default = default_rebalancing_policy(
            band_absolute=params["DRIFT_BAND"],
            min_trade=params["MIN_TRADE_AMOUNT"],
            cash_threshold_amount=params["CASH_THRESHOLD_AMOUNT"],
            cash_threshold_weight=params["CASH_THRESHOLD_WEIGHT"],
        )
    return PolicyVersion(name, 0, default)


def optimization_policy_current() -> tuple[int, OptimizationPolicy]:
    """The optimization parameters in force and their version (0: the defaults, with deployment settings)."""
    current = _policy_current(OPTIMIZATION)
    if not isinstance(current.policy, OptimizationPolicy):  # pragma: no cover - policy_from_values by name
        raise TypeError("optimization parameters did not parse as an OptimizationPolicy")
    return current.version, current.policy


def rebalancing_policy_current() -> tuple[int, RebalancingPolicy]:
    """The rebalancing parameters in force and their version (0: the defaults, with deployment settings)."""
    current = _policy_current(REBALANCING)
    if not isinstance(current.policy, RebalancingPolicy):  # pragma: no cover - policy_from_values by name
        raise TypeError("rebalancing parameters did not parse as a RebalancingPolicy")
    return current.version, current.policy
