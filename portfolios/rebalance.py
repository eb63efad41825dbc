"""Drift measurement and trade generation, in ``Decimal`` (pure: no Django).

Cash-ledger policy (also used by the paper broker, so proposals and fills agree):

* a buy debits ``ceil_cents(quantity * price)`` plus the trading cost;
* a sell credits ``floor_cents(quantity * price)`` minus the trading cost;
* the trading cost is ``ceil_cents(notional * cost_rate)``;
* quantities are rounded down to the broker's step of 1e-6 shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

CENT = Decimal("0.01")
SHARE_STEP = Decimal("0.000001")
WEIGHT_STEP = Decimal("0.000001")
ZERO = Decimal("0")


def ceil_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_CEILING)


def floor_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_FLOOR)


def floor_shares(value: Decimal) -> Decimal:
    return value.quantize(SHARE_STEP, rounding=ROUND_DOWN) if value > 0 else ZERO


def trading_cost(notional: Decimal, cost_rate: Decimal) -> Decimal:
    return ceil_cents(notional * cost_rate)


def buy_cash_effect(quantity: Decimal, price: Decimal, cost_rate: Decimal) -> tuple[Decimal, Decimal]:
    """(gross notional debited, cost) of a buy; the cash effect is ``-(gross + cost)``."""
    gross = ceil_cents(quantity * price)
    return gross, trading_cost(gross, cost_rate)


def sell_cash_effect(quantity: Decimal, price: Decimal, cost_rate: Decimal) -> tuple[Decimal, Decimal]:
    """(gross notional credited, cost) of a sell; the cash effect is ``gross - cost``."""
    gross = floor_cents(quantity * price)
    return gross, trading_cost(gross, cost_rate)


@dataclass(frozen=True)
class Position:
    ticker: str
    asset_class: str
    quantity: Decimal
    price: Decimal

    @property
    def value(self) -> Decimal:
        return self.quantity * self.price


@dataclass(frozen=True)
class ClassDrift:
    asset_class: str
    current: Decimal
    target: Decimal

    @property
    def drift(self) -> Decimal:
        return self.current - self.target


@dataclass(frozen=True)
class ProposedTrade:
    ticker: str
    side: str  # "buy" | "sell"
    quantity: Decimal
    price: Decimal
    amount: Decimal  # gross notional, in cents
    cost: Decimal

    @property
    def cash_effect(self) -> Decimal:
        return -(self.amount + self.cost) if self.side == "buy" else self.amount - self.cost


def account_value(positions: Mapping[str, Position], cash: Decimal) -> Decimal:
    return cash + sum((p.value for p in positions.values()), ZERO)


def class_drift(
    positions: Mapping[str, Position],
    cash: Decimal,
    target_weights: Mapping[str, Decimal],
    class_of: Mapping[str, str],
) -> list[ClassDrift]:
    """Current vs target weight per asset class, as shares of the whole account (cash included)."""
    total = account_value(positions, cash)
    current: dict[str, Decimal] = {}
    target: dict[str, Decimal] = {}
    for position in positions.values():
        current[position.asset_class] = current.get(position.asset_class, ZERO) + position.value
    for ticker, weight in target_weights.items():
        target[class_of[ticker]] = target.get(class_of[ticker], ZERO) + weight
    classes = sorted(set(current) | set(target))
    return [
        ClassDrift(
            asset_class=c,
            current=(current.get(c, ZERO) / total).quantize(WEIGHT_STEP) if total > 0 else ZERO,
            target=target.get(c, ZERO),
        )
        for c in classes
    ]


def triggers(
    drifts: list[ClassDrift],
    cash: Decimal,
    total: Decimal,
    *,
    band: Decimal,
    cash_threshold_amount: Decimal,
    cash_threshold_weight: Decimal,
) -> list[dict[str, str]]:
    """Why this account needs a recommendation; empty when it is inside its bands."""
    reasons: list[dict[str, str]] = []
    if total > 0 and cash > cash_threshold_amount and cash / total > cash_threshold_weight:
        reasons.append({"type": "cash", "amount": str(cash), "weight": str((cash / total).quantize(WEIGHT_STEP))})
    for d in drifts:
        if abs(d.drift) > band:
            reasons.append(
                {
                    "type": "drift",
                    "asset_class": d.asset_class,
                    "current": str(d.current),
                    "target": str(d.target),
                    "drift": str(d.drift),
                    "band": str(band),
                }
            )
    return reasons


def generate_trades(
    positions: Mapping[str, Position],
    cash: Decimal,
    target_weights: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
    *,
    min_trade: Decimal,
    cost_rate: Decimal,
) -> list[ProposedTrade]:
    """Trades that move the account toward its target.

    Sells first (never more than held), then buys scaled down so that cash after
    every trade and its cost stays at or above zero. Trades below ``min_trade``
    are skipped.
    """
    if cash < 0:
        raise ValueError("Cash is negative before trading.")
    total = account_value(positions, cash)
    tickers = sorted(set(positions) | set(target_weights))
    trades: list[ProposedTrade] = []
    available = cash
    for ticker in tickers:
        held = positions[ticker].quantity if ticker in positions else ZERO
        price = prices[ticker]
        excess = held * price - target_weights.get(ticker, ZERO) * total
        if excess < min_trade or held <= 0:
            continue
        quantity = min(held, floor_shares(excess / price))
        gross, cost = sell_cash_effect(quantity, price, cost_rate)
        if quantity <= 0 or gross < min_trade:
            continue
        trades.append(ProposedTrade(ticker, "sell", quantity, price, gross, cost))
        available += gross - cost

    wanted: dict[str, Decimal] = {}
    for ticker in tickers:
        held = positions[ticker].quantity if ticker in positions else ZERO
        shortfall = target_weights.get(ticker, ZERO) * total - held * prices[ticker]
        if shortfall >= min_trade:
            wanted[ticker] = shortfall
    if not wanted:
        return trades
    # Each buy can round its notional and its cost up by a cent: keep that in reserve.
    budget = available - CENT * 2 * len(wanted)
    need = sum(wanted.values(), ZERO) * (1 + cost_rate)
    scale = min(Decimal(1), budget / need) if need > 0 and budget > 0 else ZERO
    for ticker, shortfall in wanted.items():
        price = prices[ticker]
        quantity = floor_shares(shortfall * scale / price)
        gross, cost = buy_cash_effect(quantity, price, cost_rate)
        if quantity <= 0 or gross < min_trade or gross + cost > available:
            continue
        trades.append(ProposedTrade(ticker, "buy", quantity, price, gross, cost))
        available -= gross + cost
    return trades


def selling_cost(quantity: Decimal, price: Decimal, cost_rate: Decimal) -> Decimal:
    """What selling ``quantity`` at ``price`` would cost against its value floored to the cent: the trading cost,
    plus the sub-cent rounding. A withdrawal may ask for at most the value less these (what selling raises)."""
    gross, cost = sell_cash_effect(quantity, price, cost_rate)
    return floor_cents(quantity * price) - gross + cost
