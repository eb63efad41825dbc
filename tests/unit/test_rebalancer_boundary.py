"""The fast exact boundary (``rebalancer.exact_trades``) equals the Decimal reference it replaced
(``rebalancer_reference.exact_trades_reference``) on random books: every trade field by field, every lot pick,
Decimal for Decimal and in the same representation (``repr`` of the whole result), and the same error when the
reference raises one.

The Decimal state handed to the boundary is drawn away from the plan the way the database can be when the plan
was made from earlier arrays: lots sold down or gone since, holdings short of the lots, lot quantities a hair off
the share grid, prices that moved (with more decimals than cents), a reserve that eats the cash, and plan floats
nudged off the grid (the slow paths of the float-to-grid step).
"""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfolios.rebalancer import LotPick, Plan, exact_trades, rebalance_plan
from portfolios.rebalancer_reference import exact_trades_reference
from tests.unit.rebalancer_books import Case, random_case

cases = st.builds(
    random_case,
    seed=st.integers(0, 2**32 - 1),
    accounts=st.integers(1, 14),
    owners=st.integers(1, 4),
    max_lots=st.integers(0, 10),
    short_term=st.booleans(),
)


def decimal(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def nudged(plan: Plan, rng: np.random.Generator) -> Plan:
    """The plan with some planned quantities one float step off the 1e-6 grid, up or down."""
    trade_quantity = plan.trade_quantity.copy()
    sale_quantity = plan.sale_quantity.copy()
    for values in (trade_quantity, sale_quantity):
        picked = rng.random(len(values)) < 0.3
        direction = np.where(rng.random(len(values)) < 0.5, np.inf, -np.inf)
        values[picked] = np.nextafter(values[picked], direction[picked])
    return replace(plan, trade_quantity=trade_quantity, sale_quantity=sale_quantity)


def drawn_lot(quantity: Decimal, rng: np.random.Generator) -> Decimal | None:
    """What the database holds of a lot the plan saw with ``quantity`` (None: gone)."""
    roll = rng.random()
    if roll < 0.6:
        return quantity
    if roll < 0.7:
        return None
    if roll < 0.8:
        return (quantity * Decimal(repr(round(float(rng.random()), 3)))).quantize(Decimal("0.000001"))
    if roll < 0.85:
        return quantity + Decimal("1E-9") * int(rng.integers(1, 999))  # a hair above, off the grid
    if roll < 0.9:
        return quantity + Decimal("1E-20")  # above the grid by less than a float can tell
    return quantity.quantize(Decimal("0.000001")) + Decimal("0.000001") * int(rng.integers(-2, 3))


@settings(max_examples=150, deadline=None)
@given(
    case=cases,
    state_seed=st.integers(0, 2**32 - 1),
    cost_rate=st.sampled_from(["0", "0.0005", "0.003", "0.01"]),
    min_trade=st.sampled_from(["0", "0.01", "50", "500.00"]),
    reserve_kind=st.sampled_from(["withdrawal", "none", "part", "huge"]),
    drawn=st.booleans(),
    nudge=st.booleans(),
)
def test_the_fast_boundary_equals_the_decimal_reference(
    case: Case,
    state_seed: int,
    cost_rate: str,
    min_trade: str,
    reserve_kind: str,
    drawn: bool,
    nudge: bool,
) -> None:
    # Given a plan and, for every account, its Decimal state (drawn away from the plan's arrays or not)
    plan = rebalance_plan(case.universe, case.targets, case.book, case.policy, case.today)
    rng = np.random.default_rng(state_seed)
    if nudge:
        plan = nudged(plan, rng)
    book, tickers = case.book, list(case.universe.tickers)
    prices = {t: decimal(p) for t, p in zip(tickers, case.universe.price, strict=True) if not np.isnan(p)}
    if drawn:
        for ticker in prices:
            if rng.random() < 0.4:
                prices[ticker] = (prices[ticker] * Decimal(repr(round(float(rng.uniform(0.9, 1.1)), 4)))).quantize(
                    Decimal("0.0001")
                )
        if prices and rng.random() < 0.1:
            prices.pop(tickers[int(rng.integers(len(tickers)))], None)  # a price missing: both must fail alike
    for row in range(len(book.account_id)):
        lots: dict[int, Decimal] = {}
        holdings: dict[str, Decimal] = {}
        for m in np.flatnonzero(book.lot_account == row):
            quantity: Decimal | None = decimal(book.lot_quantity[m])
            if drawn:
                quantity = drawn_lot(quantity, rng)
            if quantity is None:
                continue
            lots[int(book.lot_id[m])] = quantity
            ticker = tickers[book.lot_asset[m]]
            holdings[ticker] = holdings.get(ticker, Decimal(0)) + quantity
        if drawn:
            for ticker in holdings:
                if rng.random() < 0.15:
                    holdings[ticker] = (holdings[ticker] * Decimal("0.9")).quantize(Decimal("0.000001"))
        cash = decimal(book.cash[row])
        reserve = {
            "withdrawal": decimal(book.withdrawal[row]),
            "none": Decimal(0),
            "part": (cash * Decimal(repr(round(float(rng.random()), 2)))).quantize(Decimal("0.01")),
            "huge": Decimal(10**9),
        }[reserve_kind]
        arguments = {
            "tickers": tickers,
            "lots": lots,
            "holdings": holdings,
            "cash": cash,
            "prices": prices,
            "cost_rate": Decimal(cost_rate),
            "min_trade": Decimal(min_trade),
            "reserve": reserve,
        }

        # When both boundaries book the account
        try:
            expected = exact_trades_reference(plan, row, **arguments)  # type: ignore[arg-type]
        except Exception as error:  # the fast boundary must fail the same way
            with pytest.raises(type(error), match=re.escape(str(error))):
                exact_trades(plan, row, **arguments)  # type: ignore[arg-type]
            continue
        trades = exact_trades(plan, row, **arguments)  # type: ignore[arg-type]

        # Then they agree trade for trade, field for field, in value and in representation
        assert trades == expected
        assert repr(trades) == repr(expected)
        for trade in trades:
            assert type(trade) is type(expected[0])
            assert all(type(pick) is LotPick for pick in trade.lots)


def test_the_plans_lists_are_built_once() -> None:
    case = random_case(3, accounts=10)
    plan = rebalance_plan(case.universe, case.targets, case.book, case.policy, case.today)

    assert plan.boundary_view is plan.boundary_view
    assert plan.boundary_view.sale_lot_id == plan.sale_lot_id.tolist()


@pytest.mark.parametrize(("cash", "reserve"), [("-0.01", "0"), ("100", "-1")])
def test_negative_cash_or_reserve_is_refused_by_both(cash: str, reserve: str) -> None:
    case = random_case(5, accounts=3)
    plan = rebalance_plan(case.universe, case.targets, case.book, case.policy, case.today)
    arguments = {
        "tickers": list(case.universe.tickers),
        "lots": {},
        "holdings": {},
        "cash": Decimal(cash),
        "prices": {},
        "cost_rate": Decimal("0.0005"),
        "min_trade": Decimal("50"),
        "reserve": Decimal(reserve),
    }

    for boundary in (exact_trades, exact_trades_reference):
        with pytest.raises(ValueError, match="must not be negative"):
            boundary(plan, 0, **arguments)  # type: ignore[operator]
