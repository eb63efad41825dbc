"""The rebalancing engine on hand-made accounts: exact expected trades for each rule.

Every case is run through both the vectorised engine and the per-account reference, which must agree.
Universe: VTI (us, substitute ITOT), ITOT (us), AGG (bonds, substitute BND), BND (bonds), GLD (gold), all at
$100 unless a case says otherwise. Target: 60% us (buy VTI), 30% bonds (buy AGG), 10% gold (buy GLD).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal

import numpy as np
import pytest

from portfolios.rebalancer import (
    BUY,
    PURPOSES,
    SELL,
    STATUS_DEFERRED,
    STATUS_EMPTY,
    STATUS_IN_BAND,
    STATUS_NO_PRICE,
    STATUS_NO_TARGET,
    STATUS_TRADE,
    TRIGGER_CASH,
    TRIGGER_DRIFT,
    TRIGGER_HARVEST,
    TRIGGER_NO_BUY_FUND,
    TRIGGER_SHORT_TERM_DEFERRED,
    TRIGGER_SHORT_TERM_REDUCED,
    TRIGGER_SWITCH_BACK,
    TRIGGER_WITHDRAWAL,
    BookArrays,
    EnginePolicy,
    LotPick,
    Plan,
    TargetArrays,
    UniverseArrays,
    exact_trades,
    rebalance_plan,
)
from portfolios.rebalancer_reference import reference_plan

TODAY = 739_000
VTI, ITOT, AGG, BND, GLD = range(5)
TICKERS = ["VTI", "ITOT", "AGG", "BND", "GLD"]
GROUPS = 5  # every fund tracks its own index
LONG_AGO = 800  # days: a long-term lot
RECENT = 100  # days: a short-term lot
POLICY = EnginePolicy()


def universe(price: list[float] | None = None) -> UniverseArrays:
    return UniverseArrays(
        tickers=TICKERS,
        asset_class=np.array([0, 0, 1, 1, 2]),
        class_codes=["us", "bonds", "gold"],
        wash_group=np.arange(5),
        substitute=np.array([ITOT, -1, BND, -1, -1]),
        price=np.array(price or [100.0] * 5),
    )


def targets(weights: list[float] | None = None) -> TargetArrays:
    return TargetArrays(
        weights=np.array([weights or [0.6, 0.3, 0.1]]),
        buy_asset=np.array([[VTI, AGG, GLD]]),
        allowed=np.ones((1, 5), dtype=np.bool_),
    )


@dataclass
class Lot:
    asset: int
    quantity: float
    basis: float = 100.0
    age: int = LONG_AGO  # days since acquired
    lot_id: int = 0


@dataclass
class Account:
    lots: list[Lot]
    cash: float = 0.0
    withdrawal: float = 0.0
    owner: int = 1
    taxable: bool = True
    method: int = 0  # tax_min
    target: int = 0
    rates: tuple[float, float] = field(default=(0.37, 0.2))


def book(
    *accounts: Account, loss_sold: list[tuple[int, int]] = (), recent_buys: list[tuple[int, int]] = ()
) -> BookArrays:  # type: ignore[assignment]
    rows, lots = [], []
    next_id = 1
    for row, account in enumerate(accounts):
        for lot in sorted(account.lots, key=lambda lot: lot.asset):
            lot_id = lot.lot_id or next_id
            next_id += 1
            rows.append(row)
            lots.append(replace(lot, lot_id=lot_id))
    acquired = np.array([TODAY - lot.age for lot in lots], dtype=np.int64)
    taxable = np.array([a.taxable for a in accounts])
    return BookArrays(
        account_id=np.arange(1, len(accounts) + 1),
        owner=np.array([a.owner for a in accounts]),
        taxable=taxable,
        lot_method=np.array([a.method if a.taxable else 2 for a in accounts], dtype=np.int8),
        short_rate=np.array([a.rates[0] if a.taxable else 0.0 for a in accounts]),
        long_rate=np.array([a.rates[1] if a.taxable else 0.0 for a in accounts]),
        cash=np.array([a.cash for a in accounts]),
        withdrawal=np.array([a.withdrawal for a in accounts]),
        target=np.array([a.target for a in accounts]),
        lot_account=np.array(rows, dtype=np.int64),
        lot_id=np.array([lot.lot_id for lot in lots], dtype=np.int64),
        lot_asset=np.array([lot.asset for lot in lots], dtype=np.int64),
        lot_quantity=np.array([lot.quantity for lot in lots]),
        lot_basis=np.array([lot.basis for lot in lots]),
        lot_acquired=acquired,
        lot_long_from=acquired + 366,
        loss_sold=np.array([owner * GROUPS + group for owner, group in loss_sold], dtype=np.int64),
        recent_buys=np.array([owner * GROUPS + group for owner, group in recent_buys], dtype=np.int64),
    )


def plan_for(
    the_book: BookArrays,
    *,
    policy: EnginePolicy = POLICY,
    the_universe: UniverseArrays | None = None,
    the_targets: TargetArrays | None = None,
) -> Plan:
    u = the_universe or universe()
    t = the_targets or targets()
    plan = rebalance_plan(u, t, the_book, policy, TODAY)
    reference = reference_plan(u, t, the_book, policy, TODAY)
    for name in ("status", "trigger", "trade_asset", "trade_side", "trade_purpose", "sale_lot_id"):
        assert np.array_equal(getattr(plan, name), getattr(reference, name)), name
    for name in ("trade_quantity", "sale_quantity", "sale_gain", "estimated_tax"):
        assert np.allclose(getattr(plan, name), getattr(reference, name), atol=1e-9), name
    return plan


def trades(plan: Plan, row: int = 0) -> list[tuple[str, str, str, float]]:
    """(side, ticker, purpose, quantity) of one account's trades, in plan order."""
    return [
        (
            "buy" if plan.trade_side[j] == BUY else "sell",
            TICKERS[plan.trade_asset[j]],
            PURPOSES[plan.trade_purpose[j]],
            round(float(plan.trade_quantity[j]), 6),
        )
        for j in plan.account_trades(row)
    ]


def sales(plan: Plan, trade: int) -> list[tuple[int, float]]:
    return [(int(plan.sale_lot_id[s]), round(float(plan.sale_quantity[s]), 6)) for s in plan.trade_sales(trade)]


def overweight_us(method: int) -> Account:
    """$8,000 of VTI in three lots (a small loss, a long-term gain, a short-term gain), $1,500 AGG, $500 GLD."""
    return Account(
        [
            Lot(VTI, 5, basis=110.0, age=RECENT, lot_id=1),  # a $50 loss: too small to harvest
            Lot(VTI, 40, basis=50.0, age=LONG_AGO, lot_id=2),
            Lot(VTI, 35, basis=90.0, age=RECENT, lot_id=3),
            Lot(AGG, 15, lot_id=4),
            Lot(GLD, 5, lot_id=5),
        ],
        method=method,
    )


def test_tax_minimizing_sells_losses_then_long_term_then_short_term() -> None:
    # Given an account 20 points overweight in US stocks, lots in the tax-minimizing order
    plan = plan_for(book(overweight_us(method=0)))

    # Then US is sold down to 62.5% (half-way back into the 5-point band): $1,750, the loss lot first, then
    # the long-term lot; the short-term gain lot is untouched; the proceeds buy bonds and gold to 27.5%/8.75%
    assert plan.status[0] == STATUS_TRADE
    assert plan.trigger[0] == TRIGGER_DRIFT
    assert trades(plan) == [
        ("sell", "VTI", "rebalance", 17.5),
        ("buy", "AGG", "rebalance", 12.5),
        ("buy", "GLD", "rebalance", 3.75),
    ]
    assert sales(plan, 0) == [(1, 5.0), (2, 12.5)]
    assert plan.realized_short[0] == pytest.approx(-50.0)
    assert plan.realized_long[0] == pytest.approx(625.0)
    assert plan.estimated_tax[0] == pytest.approx(-50 * 0.37 + 625 * 0.2)
    assert plan.harvested_loss[0] == pytest.approx(50.0)


def test_hifo_sells_highest_basis_first_and_fifo_oldest_first() -> None:
    hifo = plan_for(book(overweight_us(method=1)))
    fifo = plan_for(book(overweight_us(method=2)))

    assert sales(hifo, 0) == [(1, 5.0), (3, 12.5)]  # bases 110, then 90
    assert sales(fifo, 0) == [(2, 17.5)]  # the oldest lot


def test_a_class_sell_takes_the_largest_loss_per_dollar_first_across_its_funds() -> None:
    # Given US stocks 20 points over target in two funds, both at a loss: VTI ($100) 2% under its $102 basis,
    # ITOT ($50, bought 20 days ago) 4% under its $52 basis; VTI's basis is the higher in dollars
    account = Account(
        [
            Lot(VTI, 50, basis=102.0, age=RECENT, lot_id=1),
            Lot(ITOT, 60, basis=52.0, age=20, lot_id=2),
            Lot(AGG, 15, lot_id=3),
            Lot(GLD, 5, lot_id=4),
        ]
    )

    plan = plan_for(book(account), the_universe=universe([100.0, 50.0, 100.0, 100.0, 100.0]))

    # Then the $1,750 comes from ITOT, the larger loss per dollar sold
    assert trades(plan)[0] == ("sell", "ITOT", "rebalance", 35.0)
    assert sales(plan, 0) == [(2, 35.0)]


def test_a_deposit_rebalances_by_buying_before_any_sell() -> None:
    # Given $2,000 of new cash and US and bonds each 10 points under target
    account = Account([Lot(VTI, 50), Lot(AGG, 20), Lot(GLD, 10)], cash=2000.0)

    plan = plan_for(book(account))

    # Then the cash fills both shortfalls in proportion (net of costs) and nothing is sold
    assert plan.trigger[0] == TRIGGER_DRIFT | TRIGGER_CASH
    spend = 2000 / 1.0005 / 2 / 100
    assert trades(plan) == [
        ("buy", "VTI", "cash", pytest.approx(spend, abs=1e-6)),
        ("buy", "AGG", "cash", pytest.approx(spend, abs=1e-6)),
    ]


def test_a_withdrawal_sells_the_overweight_classes_loss_lots_first() -> None:
    # Given $1,000 to pay out and no cash; US 4 points over target with a small-loss lot and a gain lot
    account = Account(
        [
            Lot(VTI, 20, basis=104.0, age=RECENT, lot_id=1),  # 4% loss: below the harvest threshold
            Lot(VTI, 44, basis=60.0, lot_id=2),
            Lot(AGG, 28, basis=90.0, lot_id=3),
            Lot(GLD, 8, lot_id=4),
        ],
        withdrawal=1000.0,
    )

    plan = plan_for(book(account))

    # Then the classes in excess of the post-withdrawal target pay it (US $1,000 over, bonds $100 over, in
    # proportion), US from its loss lot; the total raised covers the withdrawal, the costs and the margin
    assert plan.trigger[0] == TRIGGER_WITHDRAWAL
    assert [t[:3] for t in trades(plan)] == [("sell", "VTI", "withdrawal"), ("sell", "AGG", "withdrawal")]
    assert sales(plan, 0)[0][0] == 1
    assert len(sales(plan, 0)) == 1
    raised = float(plan.trade_amount[0] + plan.trade_amount[1]) * (1 - POLICY.cost_rate)
    assert 1000.0 <= raised <= 1001.0 + 1e-3
    assert float(plan.trade_amount[0]) == pytest.approx(1001 / 0.9995 * 1000 / 1100, abs=1e-3)


def test_harvest_sells_the_loss_lot_and_buys_the_substitute_keeping_the_class() -> None:
    # Given a taxable account in band whose VTI lot is 20% ($2,500) under its basis
    account = Account([Lot(VTI, 100, basis=125.0, age=RECENT, lot_id=7), Lot(AGG, 50), Lot(GLD, 17)], cash=100.0)

    plan = plan_for(book(account))

    # Then the whole lot is sold and the net proceeds buy ITOT; the class keeps its value less two costs
    assert plan.trigger[0] == TRIGGER_HARVEST
    net = 10_000 * (1 - POLICY.cost_rate) / (1 + POLICY.cost_rate) / 100
    assert trades(plan) == [
        ("sell", "VTI", "harvest", 100.0),
        ("buy", "ITOT", "substitute", pytest.approx(net, abs=1e-6)),
    ]
    assert plan.trade_link[0] == 1
    assert sales(plan, 0) == [(7, 100.0)]
    assert plan.harvested_loss[0] == pytest.approx(2500.0)
    assert plan.estimated_tax[0] == pytest.approx(-2500 * 0.37)
    assert 10_000 - plan.trade_amount[1] <= 2 * POLICY.cost_rate * 10_000 + 1e-4


def test_no_harvest_in_an_ira_or_after_a_recent_purchase() -> None:
    lots = [Lot(VTI, 100, basis=125.0, age=RECENT), Lot(AGG, 50), Lot(GLD, 17)]
    ira = plan_for(book(Account(lots, taxable=False)))
    bought_lately = plan_for(book(Account(lots), recent_buys=[(1, VTI)]))

    assert trades(ira) == []
    assert trades(bought_lately) == []


def test_a_deposit_inside_the_wash_window_buys_the_substitute() -> None:
    # Given the owner sold VTI at a loss last week, and the account has a deposit
    account = Account([Lot(VTI, 50), Lot(AGG, 30), Lot(GLD, 10)], cash=1000.0)

    plan = plan_for(book(account, loss_sold=[(1, VTI)]))

    # Then the deposit fills the US shortfall with ITOT, not VTI
    assert [t[:3] for t in trades(plan)] == [("buy", "ITOT", "cash")]


def test_an_ira_does_not_buy_what_the_owners_taxable_account_harvests_today() -> None:
    # Given one investor: a taxable account harvesting VTI, and an IRA with a deposit to invest
    taxable = Account([Lot(VTI, 100, basis=125.0, age=RECENT), Lot(AGG, 50), Lot(GLD, 17)], cash=100.0)
    ira = Account([Lot(VTI, 50), Lot(AGG, 30), Lot(GLD, 10)], cash=1000.0, taxable=False)
    other_investor = replace(ira, owner=2)

    plan = plan_for(book(taxable, ira, other_investor))

    # Then the IRA's US purchase is redirected to ITOT; another investor's IRA still buys VTI
    assert [t[:3] for t in trades(plan, 0)] == [("sell", "VTI", "harvest"), ("buy", "ITOT", "substitute")]
    assert [t[:2] for t in trades(plan, 1)] == [("buy", "ITOT")]
    assert [t[:2] for t in trades(plan, 2)] == [("buy", "VTI")]


def test_a_loss_sale_of_one_account_blocks_the_same_fund_in_the_owners_other_accounts() -> None:
    # Given a taxable account that sells VTI at a (small, unharvestable) loss to rebalance, and the owner's IRA
    # that would buy VTI with a deposit
    seller = Account([Lot(VTI, 80, basis=101.0, age=RECENT), Lot(AGG, 15), Lot(GLD, 5)])
    ira = Account([Lot(VTI, 50), Lot(AGG, 30), Lot(GLD, 10)], cash=1000.0, taxable=False)

    plan = plan_for(book(seller, ira))

    assert trades(plan, 0)[0][:2] == ("sell", "VTI")
    assert plan.sale_gain[0] < 0
    assert [t[:2] for t in trades(plan, 1)] == [("buy", "ITOT")]


@pytest.mark.parametrize(
    ("age", "basis", "taxable", "switches"),
    [
        (40, 99.8, True, True),  # 40 days, a $20 gain: switch back
        (20, 99.8, True, False),  # inside 31 days: not yet
        (40, 95.0, True, False),  # a $500 gain: wait
        (40, 105.0, True, True),  # a loss: fine
        (40, 95.0, False, True),  # an IRA: regardless of gain
    ],
)
def test_switch_back_to_the_primary_after_31_days_only_with_a_small_gain(
    age: int, basis: float, taxable: bool, switches: bool
) -> None:
    # Given 100 shares of ITOT (bought when VTI was harvested) and VTI as the class's buy fund
    account = Account([Lot(ITOT, 100, basis=basis, age=age), Lot(AGG, 50), Lot(GLD, 17)], cash=100.0, taxable=taxable)

    plan = plan_for(book(account))

    if switches:
        quantity = 10_000 * (1 - POLICY.cost_rate) / (1 + POLICY.cost_rate) / 100
        assert plan.trigger[0] == TRIGGER_SWITCH_BACK
        assert trades(plan) == [
            ("sell", "ITOT", "switch_back", 100.0),
            ("buy", "VTI", "switch_back", pytest.approx(quantity, abs=1e-6)),
        ]
    else:
        assert trades(plan) == []
        assert plan.status[0] == STATUS_IN_BAND


def st_account(long_term_shares: float) -> Account:
    """US 80% (a long-term lot of the given size, the rest a short-term gain lot), bonds 15%, gold 5%."""
    return Account(
        [
            Lot(VTI, long_term_shares, basis=50.0, lot_id=1),
            Lot(VTI, 80 - long_term_shares, basis=80.0, age=RECENT, lot_id=2),
            Lot(AGG, 15, lot_id=3),
            Lot(GLD, 5, lot_id=4),
        ]
    )


def test_short_term_gains_over_the_limit_reduce_the_rebalance_to_other_lots() -> None:
    # Given a rebalance that needs $1,750 of US but only $1,600 is in long-term lots ($30 short-term gain)
    policy = replace(POLICY, short_term_gain_limit=10.0, hard_band_multiple=10.0)

    plan = plan_for(book(st_account(16)), policy=policy)

    # Then it sells only the long-term lot, which is enough to bring every class inside its band
    assert plan.trigger[0] == TRIGGER_DRIFT | TRIGGER_SHORT_TERM_REDUCED
    assert trades(plan)[0] == ("sell", "VTI", "rebalance", 16.0)
    assert sales(plan, 0) == [(1, 16.0)]
    assert plan.realized_short[0] == 0.0
    assert [t[1] for t in trades(plan)[1:]] == ["AGG", "GLD"]


def test_short_term_gains_over_the_limit_defer_the_rebalance_when_other_lots_do_not_suffice() -> None:
    policy = replace(POLICY, short_term_gain_limit=10.0, hard_band_multiple=10.0)

    plan = plan_for(book(st_account(10)), policy=policy)

    assert plan.trigger[0] == TRIGGER_DRIFT | TRIGGER_SHORT_TERM_DEFERRED
    assert plan.status[0] == STATUS_DEFERRED
    assert trades(plan) == []


def test_beyond_the_hard_band_short_term_gains_do_not_stop_the_rebalance() -> None:
    policy = replace(POLICY, short_term_gain_limit=10.0, hard_band_multiple=2.0)  # US is 4 bands out

    plan = plan_for(book(st_account(10)), policy=policy)

    assert plan.trigger[0] == TRIGGER_DRIFT
    assert sales(plan, 0) == [(1, 10.0), (2, 7.5)]


def test_dust_never_triggers() -> None:
    # Given a $200 account 20 points off target: $40 of drift, under the $50 minimum trade
    plan = plan_for(book(Account([Lot(VTI, 1.6), Lot(AGG, 0.3), Lot(GLD, 0.1)])))

    assert plan.trigger[0] == 0
    assert plan.status[0] == STATUS_IN_BAND
    assert plan.drift[0, 0] == pytest.approx(0.2)


def test_small_targets_use_the_relative_band() -> None:
    # Given gold at 5.5% against a 4% target: inside 5 points, outside 25% of 4% (1 point)
    the_targets = targets([0.66, 0.3, 0.04])
    account = Account([Lot(VTI, 64.5), Lot(AGG, 30), Lot(GLD, 5.5)])

    plan = plan_for(book(account), the_targets=the_targets)

    assert plan.band[0].tolist() == pytest.approx([0.05, 0.05, 0.01])
    assert plan.trigger[0] == TRIGGER_DRIFT
    assert ("sell", "GLD", "rebalance") in [t[:3] for t in trades(plan)]


def test_no_buy_fund_leaves_the_cash() -> None:
    # Given VTI and ITOT both blocked for the owner by recent loss sales, and a deposit
    account = Account([Lot(VTI, 50), Lot(AGG, 30), Lot(GLD, 10)], cash=1000.0)

    plan = plan_for(book(account, loss_sold=[(1, VTI), (1, ITOT)]))

    assert plan.trigger[0] & TRIGGER_NO_BUY_FUND
    assert [t[1] for t in trades(plan)] == ["AGG", "GLD"]


def test_statuses_of_accounts_that_cannot_be_planned() -> None:
    the_book = book(
        Account([]),  # nothing in it
        Account([Lot(VTI, 1)], target=-1),
        Account([Lot(BND, 1)]),  # BND has no price today
        Account([Lot(VTI, 60), Lot(AGG, 30), Lot(GLD, 10)]),  # on target
    )

    plan = plan_for(the_book, the_universe=universe([100.0, 100.0, 100.0, float("nan"), 100.0]))

    assert plan.status.tolist() == [STATUS_EMPTY, STATUS_NO_TARGET, STATUS_NO_PRICE, STATUS_IN_BAND]
    assert len(plan.trade_account) == 0


def test_targets_that_do_not_sum_to_one_are_refused() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        rebalance_plan(universe(), targets([0.6, 0.3, 0.2]), book(Account([Lot(VTI, 1)])), POLICY, TODAY)


def test_unsorted_lots_are_refused() -> None:
    the_book = book(Account([Lot(VTI, 1), Lot(AGG, 1)]))
    shuffled = replace(the_book, lot_asset=the_book.lot_asset[::-1].copy())

    with pytest.raises(ValueError, match="sorted by account row, then fund"):
        rebalance_plan(universe(), targets(), shuffled, POLICY, TODAY)


def test_never_buys_and_sells_the_same_fund_in_one_account() -> None:
    # Given a harvest of VTI (ITOT bought) while US is also far over target
    account = Account(
        [Lot(VTI, 30, basis=125.0, age=RECENT), Lot(VTI, 60, basis=50.0), Lot(AGG, 8), Lot(GLD, 2)], cash=0.0
    )

    plan = plan_for(book(account))

    bought = {TICKERS[plan.trade_asset[j]] for j in plan.account_trades(0) if plan.trade_side[j] == BUY}
    sold = {TICKERS[plan.trade_asset[j]] for j in plan.account_trades(0) if plan.trade_side[j] == SELL}
    assert bought and sold
    assert not bought & sold


def exact(plan: Plan, the_book: BookArrays, row: int = 0, **overrides: object) -> list:  # type: ignore[type-arg]
    lots = np.flatnonzero(the_book.lot_account == row)
    lot_quantities = {int(the_book.lot_id[m]): Decimal(repr(float(the_book.lot_quantity[m]))) for m in lots}
    holdings: dict[str, Decimal] = {}
    for m in lots:
        ticker = TICKERS[the_book.lot_asset[m]]
        holdings[ticker] = holdings.get(ticker, Decimal(0)) + lot_quantities[int(the_book.lot_id[m])]
    arguments: dict[str, object] = {
        "tickers": TICKERS,
        "lots": lot_quantities,
        "holdings": holdings,
        "cash": Decimal(repr(float(the_book.cash[row]))),
        "prices": dict.fromkeys(TICKERS, Decimal("100")),
        "cost_rate": Decimal("0.0005"),
        "min_trade": Decimal("50"),
        "reserve": Decimal(repr(float(the_book.withdrawal[row]))),
    }
    arguments.update(overrides)
    return exact_trades(plan, row, **arguments)  # type: ignore[arg-type]


def test_the_exact_harvest_sells_the_whole_lot_and_buys_with_what_it_brought_in() -> None:
    the_book = book(Account([Lot(VTI, 100, basis=125.0, age=RECENT, lot_id=7), Lot(AGG, 50), Lot(GLD, 17)]))
    plan = plan_for(the_book)

    sell, buy = exact(plan, the_book)

    # Then the lot is sold to its last share, booked as the broker books it, and the buy fits the proceeds
    assert (sell.side, sell.ticker, sell.purpose, sell.quantity) == ("sell", "VTI", "harvest", Decimal("100"))
    assert sell.lots == (LotPick(7, Decimal("100")),)
    assert (sell.amount, sell.cost) == (Decimal("10000.00"), Decimal("5.00"))
    assert (buy.side, buy.ticker, buy.purpose) == ("buy", "ITOT", "substitute")
    # $9,995 in: 99.9 shares cost $9,990.00 + $5.00; 99.900049 (the float plan's) would book $9,995.01
    assert buy.quantity == Decimal("99.900000")
    assert buy.amount + buy.cost <= sell.amount - sell.cost
    assert sell.cash_effect + buy.cash_effect >= 0


def test_the_exact_pair_buy_goes_with_its_sell() -> None:
    # Given the same harvest, booked with a minimum trade the sell does not reach
    the_book = book(Account([Lot(VTI, 100, basis=125.0, age=RECENT), Lot(AGG, 50), Lot(GLD, 17)]))
    plan = plan_for(the_book)

    assert exact(plan, the_book, min_trade=Decimal("20000")) == []


def test_the_exact_buys_keep_the_reserve() -> None:
    # Given a deposit plan, booked while $1,500 of the $2,000 must stay for a withdrawal requested since
    the_book = book(Account([Lot(VTI, 50), Lot(AGG, 20), Lot(GLD, 10)], cash=2000.0))
    plan = plan_for(the_book)

    trades = exact(plan, the_book, reserve=Decimal("1500"))

    spent = sum((t.amount + t.cost for t in trades), Decimal(0))
    assert [t.ticker for t in trades] == ["VTI", "AGG"]
    assert Decimal("2000") - spent >= Decimal("1500")
    assert Decimal("2000") - spent <= Decimal("1500") + Decimal("0.10")
