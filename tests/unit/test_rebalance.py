"""Drift and trades in Decimal: no short sales, cash never negative, value conserved minus costs."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from portfolios.rebalance import (
    CENT,
    ZERO,
    Position,
    account_value,
    buy_cash_effect,
    class_drift,
    generate_trades,
    sell_cash_effect,
    triggers,
)

TICKERS = ["VTI", "VEA", "AGG", "TLT", "GLD", "BIL"]
CLASS_OF = {"VTI": "us_large", "VEA": "intl", "AGG": "bonds", "TLT": "bonds", "GLD": "gold", "BIL": "cash"}
MIN_TRADE = Decimal("50")
COST = Decimal("0.0005")

prices_st = st.decimals(min_value=Decimal("1"), max_value=Decimal("2000"), places=2)
quantity_st = st.decimals(min_value=Decimal("0"), max_value=Decimal("500"), places=6)
cash_st = st.decimals(min_value=Decimal("0"), max_value=Decimal("500000"), places=2)


@st.composite
def targets(draw: st.DrawFn) -> dict[str, Decimal]:
    raw = draw(st.lists(st.integers(min_value=0, max_value=100), min_size=len(TICKERS), max_size=len(TICKERS)))
    if sum(raw) == 0:
        raw[0] = 1
    total = sum(raw)
    weights = {
        t: (Decimal(r) / Decimal(total)).quantize(Decimal("0.000001")) for t, r in zip(TICKERS, raw, strict=True)
    }
    weights[TICKERS[0]] += Decimal(1) - sum(weights.values())
    return {t: w for t, w in weights.items() if w > 0}


@st.composite
def accounts(draw: st.DrawFn) -> tuple[dict[str, Position], Decimal, dict[str, Decimal], dict[str, Decimal]]:
    prices = {t: draw(prices_st) for t in TICKERS}
    positions = {}
    for t in draw(st.lists(st.sampled_from(TICKERS), unique=True)):
        quantity = draw(quantity_st)
        if quantity > 0:
            positions[t] = Position(t, CLASS_OF[t], quantity, prices[t])
    return positions, draw(cash_st), draw(targets()), prices


def apply(trades, positions, cash):  # type: ignore[no-untyped-def]
    held = {t: p.quantity for t, p in positions.items()}
    for trade in trades:
        held[trade.ticker] = held.get(trade.ticker, ZERO) + (trade.quantity if trade.side == "buy" else -trade.quantity)
        cash += trade.cash_effect
    return held, cash


@settings(max_examples=300, deadline=None)
@given(accounts())
def test_trades_never_short_never_overdraw_and_conserve_value(account) -> None:  # type: ignore[no-untyped-def]
    positions, cash, target, prices = account
    trades = generate_trades(positions, cash, target, prices, min_trade=MIN_TRADE, cost_rate=COST)
    held, cash_after = apply(trades, positions, cash)
    assert all(q >= 0 for q in held.values()), "short sale"
    assert cash_after >= 0, "negative cash"
    for trade in trades:
        assert trade.quantity > 0
        assert trade.amount >= MIN_TRADE
        assert trade.quantity == trade.quantity.quantize(Decimal("0.000001"))
        if trade.side == "sell":
            assert trade.quantity <= positions[trade.ticker].quantity
    before = account_value(positions, cash)
    after = cash_after + sum((q * prices[t] for t, q in held.items()), ZERO)
    costs = sum((t.cost for t in trades), ZERO)
    # Value is conserved minus trading costs, up to a cent of rounding per trade.
    assert abs(after - (before - costs)) <= CENT * len(trades)


@settings(max_examples=200, deadline=None)
@given(accounts())
def test_trades_move_every_class_toward_target(account) -> None:  # type: ignore[no-untyped-def]
    positions, cash, target, prices = account
    trades = generate_trades(positions, cash, target, prices, min_trade=MIN_TRADE, cost_rate=COST)
    held, cash_after = apply(trades, positions, cash)
    after_positions = {t: Position(t, CLASS_OF[t], q, prices[t]) for t, q in held.items() if q > 0}
    before = {d.asset_class: abs(d.drift) for d in class_drift(positions, cash, target, CLASS_OF)}
    after = {d.asset_class: abs(d.drift) for d in class_drift(after_positions, cash_after, target, CLASS_OF)}
    total = account_value(positions, cash)
    if total == 0:
        return
    # Each class ends no further from target than before, give or take one minimum trade and rounding.
    slack = (MIN_TRADE * 2) / total + Decimal("0.0001")
    for asset_class, drift in after.items():
        assert drift <= before.get(asset_class, ZERO) + slack


def test_all_cash_account_is_invested_to_target() -> None:
    prices = {"VTI": Decimal("300.00"), "AGG": Decimal("100.00")}
    target = {"VTI": Decimal("0.6"), "AGG": Decimal("0.4")}
    trades = generate_trades({}, Decimal("10000.00"), target, prices, min_trade=MIN_TRADE, cost_rate=COST)
    by_ticker = {t.ticker: t for t in trades}
    assert set(by_ticker) == {"VTI", "AGG"} and all(t.side == "buy" for t in trades)
    # Scaled down a hair so that the trades and their costs fit the cash.
    assert Decimal("5990") < by_ticker["VTI"].amount <= Decimal("6000")
    assert Decimal("3990") < by_ticker["AGG"].amount <= Decimal("4000")
    assert Decimal("10000.00") + sum(t.cash_effect for t in trades) >= 0


def test_sells_overweight_and_buys_underweight() -> None:
    prices = {"VTI": Decimal("100"), "AGG": Decimal("100")}
    positions = {"VTI": Position("VTI", "us_large", Decimal("80"), prices["VTI"])}
    positions["AGG"] = Position("AGG", "bonds", Decimal("20"), prices["AGG"])
    trades = generate_trades(
        positions, ZERO, {"VTI": Decimal("0.5"), "AGG": Decimal("0.5")}, prices, min_trade=MIN_TRADE, cost_rate=ZERO
    )
    assert [(t.side, t.ticker, t.quantity) for t in trades] == [
        ("sell", "VTI", Decimal("30.000000")),
        ("buy", "AGG", Decimal("29.999800")),  # $3,000 less the 2-cent rounding reserve
    ]


def test_trades_below_minimum_are_skipped() -> None:
    prices = {"VTI": Decimal("100"), "AGG": Decimal("100")}
    positions = {"VTI": Position("VTI", "us_large", Decimal("50.2"), prices["VTI"])}
    positions["AGG"] = Position("AGG", "bonds", Decimal("49.8"), prices["AGG"])
    target = {"VTI": Decimal("0.5"), "AGG": Decimal("0.5")}
    assert generate_trades(positions, ZERO, target, prices, min_trade=MIN_TRADE, cost_rate=COST) == []


def test_triggers_name_the_class_beyond_the_band_and_idle_cash() -> None:
    prices = {"VTI": Decimal("100"), "AGG": Decimal("100")}
    positions = {"VTI": Position("VTI", "us_large", Decimal("56"), prices["VTI"])}
    positions["AGG"] = Position("AGG", "bonds", Decimal("40"), prices["AGG"])
    target = {"VTI": Decimal("0.5"), "AGG": Decimal("0.5")}
    drifts = class_drift(positions, Decimal("400"), target, {"VTI": "us_large", "AGG": "bonds"})
    found = triggers(
        drifts,
        Decimal("400"),
        Decimal("10000"),
        band=Decimal("0.05"),
        cash_threshold_amount=Decimal("100"),
        cash_threshold_weight=Decimal("0.01"),
    )
    assert [(r["type"], r.get("asset_class"), r.get("drift")) for r in found] == [
        ("cash", None, None),
        ("drift", "bonds", "-0.100000"),
        ("drift", "us_large", "0.060000"),
    ]
    inside = triggers(
        drifts,
        Decimal("400"),
        Decimal("10000"),
        band=Decimal("0.10"),  # a drift exactly on the band is inside it
        cash_threshold_amount=Decimal("1000"),
        cash_threshold_weight=Decimal("0.01"),
    )
    assert inside == []


def test_cash_ledger_rounding_is_conservative() -> None:
    gross, cost = buy_cash_effect(Decimal("1.000001"), Decimal("99.99"), Decimal("0.0005"))
    assert (gross, cost) == (Decimal("100.00"), Decimal("0.05"))  # 99.9901 rounds up
    gross, cost = sell_cash_effect(Decimal("1.000001"), Decimal("99.99"), Decimal("0.0005"))
    assert (gross, cost) == (Decimal("99.99"), Decimal("0.05"))  # rounds down; cost rounds up
