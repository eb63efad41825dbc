"""Engine behaviour the ledger state machine (tests/services/test_ledger_state_machine.py) found at odds with
what the engine promises, reduced to one account each. Pure: numpy arrays in, a plan and exact trades out.
The strict xfails are open (docs/tax.md lists them); the others were fixed and stay as regression tests.

Universe: VTI (us, substitute ITOT), ITOT (us), AGG (bonds, substitute BND), BND (bonds); target 60% us (buy
VTI), 40% bonds (buy AGG); the default policy (bands 5% absolute / 25% relative, rebalance half-way into the
band, $50 minimum trade, 0.05% trading cost).
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from portfolios.rebalancer import (
    BUY,
    SELL,
    TRIGGER_DRIFT,
    TRIGGER_SWITCH_BACK,
    BookArrays,
    EnginePolicy,
    PlannedTrade,
    TargetArrays,
    UniverseArrays,
    exact_trades,
    rebalance_plan,
)

TODAY = 739_000
VTI, ITOT, AGG, BND = range(4)
TICKERS = ["VTI", "ITOT", "AGG", "BND"]
POLICY = EnginePolicy()
COST_RATE = Decimal("0.0005")
MIN_TRADE = Decimal("50")


def plan_one(  # type: ignore[no-untyped-def]
    prices: list[float],
    lots: list[tuple[int, float, float]],
    cash: float,
    *,
    taxable: bool = True,
    withdrawal: float = 0.0,
):
    """The plan for one account holding ``lots`` of (fund, quantity, basis per share), all long-term."""
    universe = UniverseArrays(
        tickers=TICKERS,
        asset_class=np.array([0, 0, 1, 1]),
        class_codes=["us", "bonds"],
        wash_group=np.arange(4),
        substitute=np.array([ITOT, -1, BND, -1]),
        price=np.array(prices),
    )
    targets = TargetArrays(
        weights=np.array([[0.6, 0.4]]), buy_asset=np.array([[VTI, AGG]]), allowed=np.ones((1, 4), dtype=np.bool_)
    )
    lots = sorted(lots)
    book = BookArrays(
        account_id=np.array([1]),
        owner=np.array([1]),
        taxable=np.array([taxable]),
        lot_method=np.array([0], dtype=np.int8),
        short_rate=np.array([0.24 if taxable else 0.0]),
        long_rate=np.array([0.15 if taxable else 0.0]),
        cash=np.array([cash]),
        withdrawal=np.array([withdrawal]),
        target=np.array([0]),
        lot_account=np.zeros(len(lots), dtype=np.int64),
        lot_id=np.arange(1, len(lots) + 1),
        lot_asset=np.array([fund for fund, _, _ in lots], dtype=np.int64),
        lot_quantity=np.array([q for _, q, _ in lots]),
        lot_basis=np.array([b for _, _, b in lots]),
        lot_acquired=np.full(len(lots), TODAY - 800),
        lot_long_from=np.full(len(lots), TODAY - 400),
        loss_sold=np.array([], dtype=np.int64),
        recent_buys=np.array([], dtype=np.int64),
    )
    return rebalance_plan(universe, targets, book, POLICY, TODAY)


def boundary(  # type: ignore[no-untyped-def]
    plan,
    lots: list[tuple[int, str]],
    cash: Decimal,
    prices: dict[str, Decimal] | None = None,
    reserve: Decimal = Decimal(0),
) -> list[PlannedTrade]:
    """The exact trades of ``plan_one``'s account (every fund at $100 unless ``prices``), the lots numbered 1, 2,
    ... in the order ``plan_one`` sorts them."""
    holdings: dict[str, Decimal] = {}
    for fund, quantity in lots:
        holdings[TICKERS[fund]] = holdings.get(TICKERS[fund], Decimal(0)) + Decimal(quantity)
    return exact_trades(
        plan,
        0,
        tickers=TICKERS,
        lots={i: Decimal(q) for i, (_, q) in enumerate(sorted(lots), start=1)},
        holdings=holdings,
        cash=cash,
        prices=prices or dict.fromkeys(TICKERS, Decimal("100")),
        cost_rate=COST_RATE,
        min_trade=MIN_TRADE,
        reserve=reserve,
    )


def lots_as_text(lots: list[tuple[int, float, float]]) -> list[tuple[int, str]]:
    return [(fund, str(quantity)) for fund, quantity, _ in lots]


def in_band_after(trades: list[PlannedTrade], values: dict[str, Decimal], cash: Decimal) -> bool:
    """Whether us (VTI, ITOT) and bonds (AGG, BND) are inside their 5-point bands after ``trades``."""
    values = dict(values)
    for trade in trades:
        sign = 1 if trade.side == "buy" else -1
        values[trade.ticker] = values.get(trade.ticker, Decimal(0)) + sign * trade.amount
        cash += trade.cash_effect
    total = sum(values.values(), cash)
    us = values.get("VTI", Decimal(0)) + values.get("ITOT", Decimal(0))
    bonds = values.get("AGG", Decimal(0)) + values.get("BND", Decimal(0))
    return abs(us / total - Decimal("0.6")) <= Decimal("0.05") and abs(bonds / total - Decimal("0.4")) <= Decimal(
        "0.05"
    )


def test_a_class_out_of_band_is_brought_inside_it_when_a_minimum_trade_would_do() -> None:
    # given: $1,000, us at 65.5% (6.55 VTI at $100), bonds at 34.5% (3.45 AGG at $100), no cash: both classes
    # are 5.5 points off target, beyond the 5-point band, by $55 >= the $50 minimum trade; the rebalance point
    # (62.5% / 37.5%) is $30 away, under the minimum
    plan = plan_one([100.0] * 4, [(VTI, 6.55, 90.0), (AGG, 3.45, 90.0)], 0.0)
    assert plan.trigger[0] & TRIGGER_DRIFT
    # then: selling $50 of VTI and buying AGG would leave 60.5% / 39.5%: inside the band. The engine trades
    # the larger of the way to the rebalance point and the rebalance minimum (never past the target) ...
    trades = [(int(plan.trade_side[j]), int(plan.trade_asset[j])) for j in plan.account_trades(0)]
    assert (SELL, VTI) in trades and (BUY, AGG) in trades
    # ... sized so that both legs survive the exact boundary's minimum, costs and rounding, and end in band
    exact = boundary(plan, [(VTI, "6.55"), (AGG, "3.45")], Decimal("0"))
    assert [(t.side, t.ticker) for t in exact] == [("sell", "VTI"), ("buy", "AGG")]
    assert all(t.amount >= MIN_TRADE for t in exact)
    assert in_band_after(exact, {"VTI": Decimal("655"), "AGG": Decimal("345")}, Decimal("0"))


def test_a_substitute_buy_spends_no_more_than_the_harvest_raised() -> None:
    # given: a lot of 50 VTI bought at $100, now at $66.67 (a $1,666.50 loss: harvested), ITOT at $33.33, 22.22
    # AGG at $100 (the account is in band: the pair is its only trade) and $100 of cash the pair must not use
    prices = {"VTI": Decimal("66.67"), "ITOT": Decimal("33.33"), "AGG": Decimal("100"), "BND": Decimal("100")}
    plan = plan_one([float(p) for p in prices.values()], [(VTI, 50.0, 100.0), (AGG, 22.22, 100.0)], 100.0)
    trades = exact_trades(
        plan,
        0,
        tickers=TICKERS,
        lots={1: Decimal("50"), 2: Decimal("22.22")},
        holdings={"VTI": Decimal("50"), "AGG": Decimal("22.22")},
        cash=Decimal("100.00"),
        prices=prices,
        cost_rate=COST_RATE,
        min_trade=MIN_TRADE,
    )
    harvest = [t for t in trades if t.purpose == "harvest"]
    substitute = [t for t in trades if t.purpose == "substitute"]
    assert [(t.side, t.ticker) for t in trades] == [("sell", "VTI"), ("buy", "ITOT")]
    raised = harvest[0].amount - harvest[0].cost  # 3,333.50 - 1.67 = 3,331.83
    # then: the substitute's notional plus its cost is at most what the sale raised (it is 99.914939 ITOT:
    # 3,330.17 + 1.67 = 3,331.84, a cent of the account's own cash)
    assert substitute[0].amount + substitute[0].cost <= raised


def test_a_class_sell_above_the_minimum_is_not_lost_by_splitting_it_across_funds() -> None:
    # given: an IRA worth $910.50: us at 69.9% ($44 of ITOT bought at $100, now $40: sold first, a loss; $592 of
    # VTI), bonds at 30.1% ($274.50 of AGG), no cash: us is 9.9 points off target ($90), beyond its band
    plan = plan_one(
        [100.0, 40.0, 100.0, 100.0], [(VTI, 5.92, 100.05), (ITOT, 1.1, 100.0), (AGG, 2.745, 100.0)], 0.0, taxable=False
    )
    assert plan.trigger[0] & TRIGGER_DRIFT
    # then: the $67 the engine sells to reach 62.5% is sold - not split as the lot order has it (ITOT $44 whole,
    # then $23 of VTI: both under the minimum), but from the fund with the most to sell - and AGG bought
    trades = [(int(plan.trade_side[j]), int(plan.trade_asset[j])) for j in plan.account_trades(0)]
    assert trades == [(SELL, VTI), (BUY, AGG)]
    # and so at the exact boundary, which leaves both classes inside their bands
    prices = {"VTI": Decimal("100"), "ITOT": Decimal("40"), "AGG": Decimal("100"), "BND": Decimal("100")}
    exact = boundary(plan, [(VTI, "5.92"), (ITOT, "1.1"), (AGG, "2.745")], Decimal("0"), prices)
    assert [(t.side, t.ticker) for t in exact] == [("sell", "VTI"), ("buy", "AGG")]
    values = {"VTI": Decimal("592"), "ITOT": Decimal("44"), "AGG": Decimal("274.5")}
    assert in_band_after(exact, values, Decimal("0"))


def test_a_class_the_cash_flow_would_fix_is_not_left_out_of_band_when_the_flow_is_dropped() -> None:
    # given: an IRA worth $7,794: us at 64.8% ($5,049 of VTI), bonds at 34.9% ($2,721 of AGG: 5.1 points under
    # target, $396, beyond the 5-point band), $24 of cash, which rule 7 spends on bonds, bringing them to 35.2%
    plan = plan_one([100.0] * 4, [(VTI, 50.49, 100.0), (AGG, 27.21, 100.0)], 24.0, taxable=False)
    assert plan.trigger[0] & TRIGGER_DRIFT
    # then: the plan trades (the $24 buy is dropped under the minimum; selling VTI would pay for bonds)
    trades = [(int(plan.trade_side[j]), int(plan.trade_asset[j])) for j in plan.account_trades(0)]
    assert (BUY, AGG) in trades
    # and at the exact boundary it sells VTI and buys AGG, which leaves both classes inside their bands
    exact = boundary(plan, [(VTI, "50.49"), (AGG, "27.21")], Decimal("24"))
    assert [(t.side, t.ticker) for t in exact] == [("sell", "VTI"), ("buy", "AGG")]
    assert in_band_after(exact, {"VTI": Decimal("5049"), "AGG": Decimal("2721")}, Decimal("24"))


def test_a_pending_withdrawal_is_raised_in_full_when_the_account_holds_enough() -> None:
    # given: an IRA holding $10,000 of VTI, $8,000 of ITOT (VTI's substitute, held long: a switch back) and
    # $28,000 of AGG, no cash, and $36,000 to withdraw
    lots = [(VTI, 100.0, 100.0), (ITOT, 80.0, 100.0), (AGG, 280.0, 100.0)]
    plan = plan_one([100.0] * 4, lots, 0.0, taxable=False, withdrawal=36000.0)
    # then: no switch back while the withdrawal is pending; the sells less the buys raise the $36,000
    assert not plan.trigger[0] & TRIGGER_SWITCH_BACK
    raised = sum(-float(plan.trade_side[j]) * float(plan.trade_amount[j]) for j in plan.account_trades(0))
    assert raised >= 36000.0
    # and so at the exact boundary, net of costs and with the withdrawal reserved
    exact = boundary(plan, lots_as_text(lots), Decimal("0"), reserve=Decimal("36000"))
    assert all(t.side == "sell" for t in exact)
    assert sum((t.cash_effect for t in exact), Decimal(0)) >= Decimal("36000")


@pytest.mark.xfail(
    strict=True,
    reason="engine bug: the drift check (rule 1) is made before the plan's pairs; a switch back's costs can push "
    "a class that was just inside its band past it, and the plan, without DRIFT, does not rebalance",
)
def test_a_switch_back_does_not_push_a_class_out_of_its_band() -> None:
    # given: a taxable account of $10,000, us at 64.98% (VTI), bonds at 35.02% in BND (AGG's substitute, held
    # long, no gain: switched back to AGG), no cash: every class inside its 5-point band
    plan = plan_one([100.0] * 4, [(VTI, 64.98, 100.0), (BND, 35.02, 100.0)], 0.0)
    assert not plan.trigger[0] & TRIGGER_DRIFT
    # when: the plan's trades are made (the switch back's two costs, $3.50, come out of bonds)
    exact = boundary(plan, [(VTI, "64.98"), (BND, "35.02")], Decimal("0"))
    assert ("buy", "AGG") in [(t.side, t.ticker) for t in exact]
    # then: every class is still inside its band
    assert in_band_after(exact, {"VTI": Decimal("6498"), "BND": Decimal("3502")}, Decimal("0"))
