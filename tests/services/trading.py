"""Test support: recommendations with chosen trades, approved and executed through the real services.

Prices for the days a test trades on are set by the test, after the shipped data (which ends 2026-07-31), so
fills happen at known closes: ``prices_set(day, {"SPY": "100"})``.
"""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal

from django.conf import settings

from portfolios.models import (
    Account,
    Asset,
    ModelPortfolio,
    OptimizationRun,
    PipelineRun,
    Price,
    Recommendation,
    RecommendationKind,
    RecommendationStatus,
    RunStatus,
    Trade,
    TradePurpose,
    TradeSide,
)
from portfolios.rebalance import buy_cash_effect, sell_cash_effect
from portfolios.services.recommendations import recommendation_approve, recommendation_execute

_books = itertools.count(1)


def prices_set(day: date, closes: dict[str, str]) -> None:
    ids = dict(Asset.objects.filter(ticker__in=list(closes)).values_list("ticker", "pk"))
    Price.objects.bulk_create([Price(asset_id=ids[t], date=day, close=Decimal(c)) for t, c in closes.items()])


def _model_portfolio() -> ModelPortfolio:
    run, _ = OptimizationRun.objects.get_or_create(
        fingerprint="tests-trading",
        defaults={"as_of": date(2026, 7, 31), "data_hash": "0" * 64, "status": RunStatus.FAILED},
    )
    portfolio, _ = ModelPortfolio.objects.get_or_create(
        run=run,
        risk_level=5,
        defaults={"risk_aversion": 1.0, "expected_return": 0, "volatility": 0, "solver_status": "test"},
    )
    return portfolio


def _close(asset: Asset, day: date) -> Decimal:
    close = Price.objects.filter(asset=asset, date__lte=day).order_by("-date").values_list("close", flat=True)[0]
    return Decimal(close)


def recommend(
    account: Account,
    day: date,
    trades: list[tuple[str, str, str]],
    *,
    purpose: str = TradePurpose.REBALANCE,
    lots: dict[int, list[dict[str, str]]] | None = None,
) -> Recommendation:
    """A pending recommendation for ``account`` on ``day`` with trades ``(side, ticker, quantity)``; ``lots``
    maps a trade's index to its planned lot picks."""
    cost_rate: Decimal = settings.ADVISOR["TRADING_COST_RATE"]
    run = PipelineRun.objects.create(book=f"test-{next(_books)}", market_date=day, status=RunStatus.SUCCEEDED)
    kind = RecommendationKind.TAX_LOSS_HARVEST if purpose == TradePurpose.HARVEST else RecommendationKind.REBALANCE
    rec = Recommendation.objects.create(
        account=account,
        pipeline_run=run,
        model_portfolio=_model_portfolio(),
        kind=kind,
        status=RecommendationStatus.PENDING,
        risk_level=5,
        market_date=day,
        explanation="test trades",
        total_value=0,
        cash_before=0,
        estimated_cost=0,
    )
    for index, (side, ticker, quantity) in enumerate(trades):
        asset = Asset.objects.get(ticker=ticker)
        price = _close(asset, day)
        shares = Decimal(quantity)
        if side == TradeSide.BUY:
            gross, cost = buy_cash_effect(shares, price, cost_rate)
            cash_effect = -(gross + cost)
        else:
            gross, cost = sell_cash_effect(shares, price, cost_rate)
            cash_effect = gross - cost
        Trade.objects.create(
            recommendation=rec,
            asset=asset,
            side=side,
            purpose=purpose,
            quantity=shares,
            price=price,
            amount=gross,
            cash_effect=cash_effect,
            lots=(lots or {}).get(index, []),
        )
    return rec


def trade(
    account: Account,
    advisor: object,
    day: date,
    *trades: tuple[str, str, str],
    purpose: str = TradePurpose.REBALANCE,
    lots: dict[int, list[dict[str, str]]] | None = None,
) -> Recommendation:
    """Propose, approve (as the investor's advisor) and execute at ``day``'s closes."""
    return execute(approve(account, advisor, day, *trades, purpose=purpose, lots=lots), day)


def approve(
    account: Account,
    advisor: object,
    day: date,
    *trades: tuple[str, str, str],
    purpose: str = TradePurpose.REBALANCE,
    lots: dict[int, list[dict[str, str]]] | None = None,
) -> Recommendation:
    """Propose and approve now; ``execute`` fills it later. Approval refuses a buy that would wash a loss already
    realized, so a wash sale that happens anyway is a buy approved *before* the loss was realized elsewhere."""
    rec = recommend(account, day, list(trades), purpose=purpose, lots=lots)
    return recommendation_approve(recommendation_id=rec.pk, advisor=advisor, comment="")  # type: ignore[arg-type]


def execute(rec: Recommendation, day: date) -> Recommendation:
    """The broker fills an approved recommendation at ``day``'s closes."""
    return recommendation_execute(recommendation_id=rec.pk, market_date=day)
