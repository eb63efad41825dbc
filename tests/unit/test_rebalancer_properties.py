"""Properties of the rebalancing engine on random books (hypothesis draws the book's seed, size and policy).

- The vectorised engine equals the per-account reference: statuses, triggers, trades, lot sales, taxes.
- Plan invariants: quantities on the share grid, lot sales sum to their trade and never exceed a lot, no fund
  bought and sold in one account, no purchase of a blocked wash group by its owner, realized gains and tax
  add up, a harvest keeps its class's value up to costs, and drift plans end inside the band (condition below).
- The exact boundary: sells within holdings per lot and per fund, cash after every buy >= the reserve exactly.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from portfolios.rebalance import SHARE_STEP
from portfolios.rebalancer import (
    BUY,
    PURPOSE_SUBSTITUTE,
    PURPOSE_SWITCH_BACK,
    SELL,
    STATUS_IN_BAND,
    STATUS_TRADE,
    TRIGGER_DRIFT,
    TRIGGER_HARVEST,
    TRIGGER_NO_BUY_FUND,
    TRIGGER_SHORT_TERM_DEFERRED,
    TRIGGER_SWITCH_BACK,
    Plan,
    exact_trades,
    rebalance_plan,
)
from portfolios.rebalancer_reference import reference_plan
from tests.unit.rebalancer_books import Case, random_case

EXACT = ("status", "trigger", "trade_account", "trade_asset", "trade_side", "trade_purpose", "trade_link")
EXACT += ("trade_start", "sale_trade", "sale_lot", "sale_lot_id", "sale_long", "sale_start")
CLOSE = ("value", "weights", "cash_weight", "drift", "band", "total_drift", "trade_quantity", "trade_amount")
CLOSE += ("sale_quantity", "sale_gain", "realized_short", "realized_long", "harvested_loss", "estimated_tax")

cases = st.builds(
    random_case,
    seed=st.integers(0, 2**32 - 1),
    accounts=st.integers(1, 14),
    owners=st.integers(1, 4),
    max_lots=st.integers(0, 10),
    short_term=st.booleans(),
)


def plan_of(case: Case) -> Plan:
    return rebalance_plan(case.universe, case.targets, case.book, case.policy, case.today)


@settings(max_examples=60, deadline=None)
@given(case=cases)
def test_the_engine_equals_the_reference(case: Case) -> None:
    engine = plan_of(case)
    reference = reference_plan(case.universe, case.targets, case.book, case.policy, case.today)

    for name in EXACT:
        assert np.array_equal(getattr(engine, name), getattr(reference, name)), name
    for name in CLOSE:
        a, b = getattr(engine, name), getattr(reference, name)
        assert a.shape == b.shape, name
        assert np.allclose(a, b, atol=1e-6, equal_nan=True), name


@settings(max_examples=60, deadline=None)
@given(case=cases)
def test_plan_invariants(case: Case) -> None:
    plan = plan_of(case)
    book, universe = case.book, case.universe
    G = universe.group_count

    # Quantities positive and on the broker's grid; lot sales sum to their trade, never beyond a lot.
    assert np.all(plan.trade_quantity > 0)
    assert np.allclose(plan.trade_quantity * 1e6, np.round(plan.trade_quantity * 1e6), atol=1e-6)
    for j in range(len(plan.trade_account)):
        sold = sum(float(plan.sale_quantity[s]) for s in plan.trade_sales(j))
        assert (plan.trade_side[j] == SELL) == (len(plan.trade_sales(j)) > 0)
        if plan.trade_side[j] == SELL:
            assert abs(sold - plan.trade_quantity[j]) <= 1e-9 * max(1.0, sold)
            assert np.all(book.lot_account[plan.sale_lot[plan.trade_sales(j)]] == plan.trade_account[j])
            assert np.all(book.lot_asset[plan.sale_lot[plan.trade_sales(j)]] == plan.trade_asset[j])
    per_lot = np.bincount(plan.sale_lot, plan.sale_quantity, minlength=len(book.lot_account))
    assert np.all(per_lot <= book.lot_quantity * (1 + 1e-12))

    # No fund bought and sold in one account; no purchase of a group blocked for its owner.
    blocked = set(book.loss_sold.tolist())
    for s in range(len(plan.sale_lot)):
        row = plan.trade_account[plan.sale_trade[s]]
        if plan.sale_gain[s] < 0 and book.taxable[row]:
            blocked.add(int(book.owner[row]) * G + int(universe.wash_group[book.lot_asset[plan.sale_lot[s]]]))
    for row in range(len(book.account_id)):
        js = plan.account_trades(row)
        bought = {int(plan.trade_asset[j]) for j in js if plan.trade_side[j] == BUY}
        sold_funds = {int(plan.trade_asset[j]) for j in js if plan.trade_side[j] == SELL}
        assert not bought & sold_funds
        for asset in bought:
            assert int(book.owner[row]) * G + int(universe.wash_group[asset]) not in blocked

    # Realized gains are the lot sales' gains; the estimated tax is the rates times them.
    sale_row = plan.trade_account[plan.sale_trade]
    long = np.bincount(sale_row, np.where(plan.sale_long, plan.sale_gain, 0.0), minlength=len(book.account_id))
    short = np.bincount(sale_row, np.where(plan.sale_long, 0.0, plan.sale_gain), minlength=len(book.account_id))
    assert np.allclose(plan.realized_long, long)
    assert np.allclose(plan.realized_short, short)
    assert np.allclose(plan.estimated_tax, short * book.short_rate + long * book.long_rate)
    assert np.all(plan.harvested_loss >= 0)
    lot_gain = (universe.price[book.lot_asset[plan.sale_lot]] - book.lot_basis[plan.sale_lot]) * plan.sale_quantity
    assert np.allclose(plan.sale_gain, lot_gain)

    # A harvest or switch back keeps its class's value, up to the two costs and the buy's rounding down.
    cr = case.policy.cost_rate
    for j in range(len(plan.trade_account)):
        if plan.trade_purpose[j] in (PURPOSE_SUBSTITUTE, PURPOSE_SWITCH_BACK) and plan.trade_side[j] == BUY:
            paid_by = np.flatnonzero(plan.trade_link == j)
            assert len(paid_by) >= 1
            sold = float(plan.trade_amount[paid_by].sum())
            step = float(universe.price[plan.trade_asset[j]]) * 1e-6
            assert 0 <= sold - plan.trade_amount[j] <= 2 * cr * sold + step + 1e-9


@settings(max_examples=60, deadline=None)
@given(case=cases)
def test_a_drift_plan_ends_inside_the_band(case: Case) -> None:
    """After a drift account's trades, every class is inside its band, unless the plan says why not.

    The exact condition: with a one-cent minimum trade (a class's trade split over funds can fall under a
    larger one; each trade under a cent is allowed for in the slack), no
    pending withdrawal (the sales may not cover it), rebalance_to <= 0.5 (the costs fit in the other half of
    the band), every account with DRIFT and none of NO_BUY_FUND (a class has no fund to buy, or a pair's buy
    was blocked after its lots were set aside),
    SHORT_TERM_DEFERRED (the rebalance waits), HARVEST or SWITCH_BACK (a class's value sits in a fund bought
    today, which the plan may not sell) ends with |weight - target| <= band + (the plan's costs, the
    flooring of quantities to 1e-6 shares and the dropped sub-cent trades) / value.
    """
    policy = replace(case.policy, min_trade=0.01, rebalance_to=min(case.policy.rebalance_to, 0.5))
    book = replace(case.book, withdrawal=np.zeros(len(case.book.account_id)))
    case = replace(case, policy=policy, book=book)
    plan = plan_of(case)
    universe, targets = case.universe, case.targets
    K = len(universe.class_codes)
    excused = TRIGGER_NO_BUY_FUND | TRIGGER_SHORT_TERM_DEFERRED | TRIGGER_HARVEST | TRIGGER_SWITCH_BACK
    for row in np.flatnonzero((plan.trigger & TRIGGER_DRIFT) != 0):
        if plan.trigger[row] & excused:
            continue
        values = plan.weights[row] * plan.value[row]
        cash = float(book.cash[row])
        turnover = 0.0
        flooring = 0.0  # each quantity floored to 1e-6 shares: per trade, and per lot of a sell
        for j in plan.account_trades(row):
            k = universe.asset_class[plan.trade_asset[j]]
            amount = float(plan.trade_amount[j])
            values[k] += amount * plan.trade_side[j]
            cash -= amount * plan.trade_side[j] + policy.cost_rate * amount
            turnover += amount
            flooring += 1e-6 * float(universe.price[plan.trade_asset[j]]) * (1 + len(plan.trade_sales(j)))
        assert cash >= -1e-6
        total = values.sum() + cash
        t = targets.weights[book.target[row]]
        band = np.minimum(policy.band_absolute, policy.band_relative * t)
        # ... and a buy that floors to nothing (a share step of the dearest fund) in a dust-sized account
        flooring += 2e-6 * float(np.nanmax(universe.price))
        dropped = policy.min_trade * (K + len(plan.account_trades(row)))  # trades under a cent are dropped
        slack = (2 * policy.cost_rate * turnover + 2 * flooring + dropped) / total + 1e-9
        assert np.all(np.abs(values / total - t) <= band + slack), (values / total - t, band)
        assert len(t) == K


def decimal(value: float) -> Decimal:
    return Decimal(repr(float(value)))


@settings(max_examples=60, deadline=None)
@given(case=cases, reserve_kind=st.sampled_from(["withdrawal", "none", "huge"]))
def test_the_exact_boundary_never_oversells_and_keeps_the_reserve(case: Case, reserve_kind: str) -> None:
    plan = plan_of(case)
    book, universe = case.book, case.universe
    tickers = list(universe.tickers)
    prices = {t: decimal(p) for t, p in zip(tickers, universe.price, strict=True) if not np.isnan(p)}
    cost_rate = decimal(case.policy.cost_rate)
    min_trade = decimal(case.policy.min_trade)
    for row in np.flatnonzero(plan.status == STATUS_TRADE):
        lots = np.flatnonzero(book.lot_account == row)
        lot_quantities = {int(book.lot_id[m]): decimal(book.lot_quantity[m]) for m in lots}
        holdings: dict[str, Decimal] = defaultdict(Decimal)
        for m in lots:
            holdings[tickers[book.lot_asset[m]]] += lot_quantities[int(book.lot_id[m])]
        cash = decimal(book.cash[row])
        reserve = {"withdrawal": decimal(book.withdrawal[row]), "none": Decimal(0), "huge": Decimal(10**9)}[
            reserve_kind
        ]

        exact = exact_trades(
            plan,
            int(row),
            tickers=tickers,
            lots=lot_quantities,
            holdings=dict(holdings),
            cash=cash,
            prices=prices,
            cost_rate=cost_rate,
            min_trade=min_trade,
            reserve=reserve,
        )

        sold_lots: dict[int, Decimal] = defaultdict(Decimal)
        sold_funds: dict[str, Decimal] = defaultdict(Decimal)
        balance = cash
        sells_done = False
        for trade in exact:
            assert trade.quantity > 0
            assert trade.quantity == trade.quantity.quantize(SHARE_STEP)
            assert trade.amount >= min_trade
            if trade.side == "sell":
                assert not sells_done, "sells come before buys"
                assert sum((pick.quantity for pick in trade.lots), Decimal(0)) == trade.quantity
                for pick in trade.lots:
                    assert pick.quantity > 0
                    sold_lots[pick.lot_id] += pick.quantity
                sold_funds[trade.ticker] += trade.quantity
            else:
                sells_done = True
                assert trade.lots == ()
            balance += trade.cash_effect
            if trade.side == "buy":
                assert balance >= reserve, "cash after a buy and its cost stays >= the reserve"
        for lot_id, quantity in sold_lots.items():
            assert quantity <= lot_quantities[lot_id]
        for ticker, quantity in sold_funds.items():
            assert quantity <= holdings[ticker]
        assert balance >= 0 or balance >= cash
        if reserve_kind == "huge":
            assert all(trade.side == "sell" for trade in exact)
        # A pair's buy is there only with at least one of its sells.
        kept = {trade.plan_trade for trade in exact}
        for trade in exact:
            if trade.side == "buy" and trade.purpose in ("substitute", "switch_back"):
                assert any(int(j) in kept for j in np.flatnonzero(plan.trade_link == trade.plan_trade))


def test_accounts_with_nothing_to_do_are_in_band() -> None:
    case = random_case(7, accounts=30)

    plan = plan_of(case)

    no_trades = np.diff(plan.trade_start) == 0
    assert np.all(plan.status[no_trades] != STATUS_TRADE)
    assert np.all(plan.status[~no_trades] == STATUS_TRADE)
    assert np.count_nonzero(plan.status == STATUS_IN_BAND) > 0
