"""portfolios/tax.py: lot order, holding period, rates, proceeds allocation and wash-sale matching."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from portfolios import tax
from portfolios.tax import LossSale, OpenLot, Purchase, Realized, Term

D = Decimal


def lot(lot_id: int, cost: str, acquired: date, quantity: str = "10", holding_start: date | None = None) -> OpenLot:
    return OpenLot(lot_id, D(quantity), D(cost), acquired, holding_start or acquired)


SALE = date(2026, 6, 1)
OLD = date(2024, 1, 15)  # long-term on SALE
RECENT = date(2026, 3, 1)  # short-term on SALE


# ------------------------------------------------------------------------------------------ lot order


def test_tax_min_sells_losses_then_long_term_gains_then_short_term_gains() -> None:
    # given: the price is 100
    lots = [
        lot(1, "80", RECENT),  # short-term gain
        lot(2, "90", OLD),  # long-term gain
        lot(3, "110", RECENT),  # loss of 10
        lot(4, "130", OLD),  # loss of 30
        lot(5, "95", RECENT),  # short-term gain, higher cost than lot 1
        lot(6, "60", OLD),  # long-term gain, lower cost than lot 2
        lot(7, "100", RECENT),  # no gain: counts as a gain lot of its term
    ]
    # when
    order = [x.id for x in tax.lots_in_sale_order(lots, "tax_min", D("100"), SALE)]
    # then
    assert order == [4, 3, 2, 6, 7, 5, 1]


def test_hifo_is_highest_cost_first_then_oldest_then_id() -> None:
    lots = [lot(1, "80", RECENT), lot(2, "130", RECENT), lot(3, "130", OLD), lot(4, "80", RECENT), lot(5, "90", OLD)]
    assert [x.id for x in tax.lots_in_sale_order(lots, "hifo", D("100"), SALE)] == [3, 2, 5, 1, 4]


def test_fifo_is_oldest_first_then_id() -> None:
    lots = [lot(3, "80", RECENT), lot(2, "130", RECENT), lot(1, "130", OLD), lot(9, "90", OLD)]
    assert [x.id for x in tax.lots_in_sale_order(lots, "fifo", D("100"), SALE)] == [1, 9, 2, 3]


def test_tax_min_term_uses_the_holding_start_of_a_wash_sale_replacement() -> None:
    # given: bought recently, but the holding period carried over from a lot bought long ago
    carried = lot(1, "80", RECENT, holding_start=OLD)
    plain = lot(2, "90", RECENT)
    # then: the carried lot is a long-term gain and goes first
    assert [x.id for x in tax.lots_in_sale_order([plain, carried], "tax_min", D("100"), SALE)] == [1, 2]


def test_select_lots_takes_planned_lots_first_capped_then_the_method() -> None:
    lots = [lot(1, "80", OLD, "5"), lot(2, "120", OLD, "5"), lot(3, "100", OLD, "5")]
    picks = tax.select_lots(
        lots,
        D("9"),
        method="hifo",
        price=D("100"),
        sale_date=SALE,
        planned=[(1, D("7")), (99, D("3")), (1, D("1"))],  # more than lot 1 holds; an unknown lot; lot 1 again
    )
    assert picks == [(1, D("5")), (2, D("4"))]


def test_select_lots_refuses_to_sell_more_than_held() -> None:
    with pytest.raises(ValueError, match="hold 5"):
        tax.select_lots([lot(1, "80", OLD, "5")], D("6"), method="fifo", price=D("1"), sale_date=SALE)


lots_strategy = st.lists(
    st.builds(
        OpenLot,
        id=st.integers(1, 10_000),
        quantity=st.decimals("0.000001", "1000", places=6),
        cost_per_share=st.decimals("1", "200", places=6),
        acquired_on=st.dates(date(2023, 1, 1), date(2026, 6, 1)),
        holding_start=st.dates(date(2022, 1, 1), date(2026, 6, 1)),
    ),
    min_size=1,
    max_size=12,
    unique_by=lambda x: x.id,
)


@given(lots_strategy, st.sampled_from(["tax_min", "hifo", "fifo"]), st.decimals("1", "200", places=6))
def test_the_lot_order_is_a_total_order_consistent_with_the_method(lots, method, price) -> None:  # type: ignore[no-untyped-def]
    ordered = tax.lots_in_sale_order(lots, method, price, SALE)
    # total: the order does not depend on the input order
    assert ordered == tax.lots_in_sale_order(list(reversed(lots)), method, price, SALE)
    for first, second in pairwise(ordered):
        if method == "fifo":
            assert (first.acquired_on, first.id) < (second.acquired_on, second.id)
        elif method == "hifo":
            assert first.cost_per_share >= second.cost_per_share
            if first.cost_per_share == second.cost_per_share:
                assert (first.acquired_on, first.id) < (second.acquired_on, second.id)
        else:
            c1, c2 = (tax.tax_min_category(x, price, SALE) for x in (first, second))
            assert c1 <= c2
            if c1 == c2:
                assert first.cost_per_share >= second.cost_per_share
                if first.cost_per_share == second.cost_per_share:
                    assert (first.acquired_on, first.id) < (second.acquired_on, second.id)


@given(lots_strategy, st.sampled_from(["tax_min", "hifo", "fifo"]), st.data())
def test_select_lots_sells_exactly_the_quantity_never_more_than_a_lot_holds(lots, method, data) -> None:  # type: ignore[no-untyped-def]
    held = sum((x.quantity for x in lots), D(0))
    quantity = data.draw(st.decimals("0.000001", str(held), places=6))
    planned = data.draw(
        st.lists(st.tuples(st.sampled_from([x.id for x in lots]), st.decimals("0.000001", "50", places=6)), max_size=3)
    )
    picks = tax.select_lots(lots, quantity, method=method, price=D("100"), sale_date=SALE, planned=planned)
    by_id = {x.id: x for x in lots}
    assert sum((shares for _, shares in picks), D(0)) == quantity
    assert len({lot_id for lot_id, _ in picks}) == len(picks)
    assert all(D(0) < shares <= by_id[lot_id].quantity for lot_id, shares in picks)


# ------------------------------------------------------------------------------------------ holding period


@pytest.mark.parametrize(
    ("start", "first_long"),
    [
        (date(2025, 3, 10), date(2026, 3, 11)),
        (date(2024, 2, 29), date(2025, 3, 1)),  # anniversary of Feb 29 is Feb 28
        (date(2023, 2, 28), date(2024, 2, 29)),  # into a leap year
        (date(2025, 12, 31), date(2027, 1, 1)),
    ],
)
def test_first_long_term_day_is_the_day_after_the_first_anniversary(start: date, first_long: date) -> None:
    assert tax.first_long_term_day(start) == first_long
    assert tax.gain_term(start, first_long) == Term.LONG
    assert tax.gain_term(start, first_long - timedelta(days=1)) == Term.SHORT  # sold on the anniversary: short


def test_leap_day_purchase_is_long_term_from_march_first() -> None:
    assert tax.gain_term(date(2024, 2, 29), date(2025, 2, 28)) == Term.SHORT
    assert tax.gain_term(date(2024, 2, 29), date(2025, 3, 1)) == Term.LONG


# ------------------------------------------------------------------------------------------ rates


@pytest.mark.parametrize(
    ("marginal", "long_term"),
    [("0", "0"), ("0.10", "0"), ("0.12", "0"), ("0.22", "0.15"), ("0.35", "0.15"), ("0.37", "0.20")],
)
def test_long_term_rate_follows_the_simplified_schedule(marginal: str, long_term: str) -> None:
    assert tax.long_term_rate(D(marginal)) == D(long_term)
    assert tax.rate_for("long", D(marginal)) == D(long_term)
    assert tax.rate_for(Term.SHORT, D(marginal)) == D(marginal)


# ------------------------------------------------------------------------------------------ realized gains


def test_proceeds_are_allocated_by_shares_in_whole_cents_that_add_up() -> None:
    assert tax.allocate_cents(D("100.00"), [D("1"), D("1"), D("1")]) == [D("33.34"), D("33.33"), D("33.33")]
    assert tax.allocate_cents(D("0.05"), [D("1"), D("3")]) == [D("0.01"), D("0.04")]
    assert tax.allocate_cents(D("0.00"), [D("2")]) == [D("0.00")]


@given(
    st.decimals("0", "1000000", places=2),
    st.lists(st.decimals("0.000001", "10000", places=6), min_size=1, max_size=8),
)
def test_allocation_adds_up_to_the_total_and_each_part_is_within_a_cent_of_its_share(total, weights) -> None:  # type: ignore[no-untyped-def]
    parts = tax.allocate_cents(total, weights)
    assert sum(parts, D(0)) == total
    weight_sum = sum(weights, D(0))
    for part, weight in zip(parts, weights, strict=True):
        assert part == part.quantize(tax.CENT)
        assert abs(part - total * weight / weight_sum) < D("0.01")


def test_realize_rounds_the_basis_to_the_cent_and_allocates_the_proceeds() -> None:
    rows = tax.realize([(D("3"), D("10.333333")), (D("1"), D("9.000001"))], D("40.01"))
    assert [(r.proceeds, r.cost_basis, r.gain) for r in rows] == [
        (D("30.01"), D("31.00"), D("-0.99")),
        (D("10.00"), D("9.00"), D("1.00")),
    ]


# ------------------------------------------------------------------------------------------ wash sales


def test_wash_group_is_the_tracked_index() -> None:
    assert tax.wash_group("SPY", "S&P 500") == tax.wash_group("VOO", "S&P 500")
    assert tax.wash_group("VTI", "CRSP US Total Market") != tax.wash_group("ITOT", "S&P Total Market")
    assert tax.wash_group("XYZ", "") == "ticker:XYZ"


def test_window_is_30_days_either_side_inclusive() -> None:
    sale = date(2026, 6, 1)
    assert tax.in_wash_window(sale, sale - timedelta(days=30))
    assert tax.in_wash_window(sale, sale + timedelta(days=30))
    assert not tax.in_wash_window(sale, sale + timedelta(days=31))
    assert not tax.in_wash_window(sale, sale - timedelta(days=31))


def test_matching_takes_sales_in_date_order_and_earliest_purchases_first() -> None:
    sales = [
        LossSale(key=2, lot=20, group="g", sold_on=date(2026, 6, 10), shares=D("5")),
        LossSale(key=1, lot=10, group="g", sold_on=date(2026, 6, 1), shares=D("8")),
    ]
    purchases = [
        Purchase(key=31, group="g", acquired_on=date(2026, 6, 15), shares=D("4")),
        Purchase(key=30, group="g", acquired_on=date(2026, 5, 20), shares=D("6")),
        Purchase(key=32, group="other", acquired_on=date(2026, 6, 2), shares=D("100")),
        Purchase(key=10, group="g", acquired_on=date(2026, 5, 25), shares=D("100")),  # the lot sale 1 sold
    ]
    assert tax.wash_matches(sales, purchases) == [
        tax.WashMatch(sale=1, purchase=30, shares=D("6")),
        tax.WashMatch(sale=1, purchase=31, shares=D("2")),
        tax.WashMatch(sale=2, purchase=10, shares=D("5")),  # lot 10 is another lot for sale 2
    ]


def test_day_31_does_not_wash() -> None:
    sale = LossSale(key=1, lot=1, group="g", sold_on=date(2026, 6, 1), shares=D("5"))
    late = Purchase(key=2, group="g", acquired_on=date(2026, 7, 2), shares=D("5"))
    assert tax.wash_matches([sale], [late]) == []


def test_washed_loss_is_shares_times_loss_per_share_to_the_cent() -> None:
    realized = Realized(quantity=D("3"), proceeds=D("20.00"), cost_basis=D("30.01"))  # loss 10.01
    assert tax.washed_loss(realized, D("1")) == D("3.34")
    assert tax.washed_loss(realized, D("3")) == D("10.01")
    assert tax.washed_loss(Realized(D("1"), D("5"), D("4")), D("1")) == D("0")  # a gain washes nothing
    washed, rest = tax.split_realized(realized, D("1"))
    assert (washed.quantity, washed.proceeds, washed.cost_basis, washed.gain) == (
        D("1"),
        D("6.66"),
        D("10.00"),
        D("-3.34"),
    )
    assert (rest.quantity, rest.proceeds, rest.cost_basis, rest.gain) == (D("2"), D("13.34"), D("20.01"), D("-6.67"))


def test_raised_cost_per_share_spreads_the_disallowed_loss_over_the_shares_held() -> None:
    assert tax.raised_cost_per_share(D("100"), D("30.00"), D("7")) == D("104.285714")
    with pytest.raises(ValueError, match="no shares"):
        tax.raised_cost_per_share(D("100"), D("1"), D("0"))


loss_sales = st.lists(
    st.builds(
        LossSale,
        key=st.integers(1, 50),
        lot=st.integers(1, 20),
        group=st.sampled_from(["a", "b"]),
        sold_on=st.dates(date(2026, 1, 1), date(2026, 4, 1)),
        shares=st.decimals("0.000001", "100", places=6),
    ),
    max_size=6,
    unique_by=lambda s: s.key,
)
purchases = st.lists(
    st.builds(
        Purchase,
        key=st.integers(1, 20),
        group=st.sampled_from(["a", "b"]),
        acquired_on=st.dates(date(2025, 12, 1), date(2026, 5, 1)),
        shares=st.decimals("0", "100", places=6),
    ),
    max_size=6,
    unique_by=lambda p: p.key,
)


@given(loss_sales, purchases)
def test_washed_shares_never_exceed_either_side(sales, bought) -> None:  # type: ignore[no-untyped-def]
    matches = tax.wash_matches(sales, bought)
    sale_by_key = {s.key: s for s in sales}
    purchase_by_key = {p.key: p for p in bought}
    for key, sale in sale_by_key.items():
        assert sum((m.shares for m in matches if m.sale == key), D(0)) <= sale.shares
    for key, purchase in purchase_by_key.items():
        assert sum((m.shares for m in matches if m.purchase == key), D(0)) <= purchase.shares
    for m in matches:
        sale, purchase = sale_by_key[m.sale], purchase_by_key[m.purchase]
        assert m.shares > 0 and sale.group == purchase.group and sale.lot != purchase.key
        assert tax.in_wash_window(sale.sold_on, purchase.acquired_on)
    # maximal: no sale keeps unmatched shares while an eligible purchase keeps unused shares
    for sale in sales:
        left = sale.shares - sum((m.shares for m in matches if m.sale == sale.key), D(0))
        for purchase in bought:
            unused = purchase.shares - sum((m.shares for m in matches if m.purchase == purchase.key), D(0))
            eligible = (
                purchase.group == sale.group
                and purchase.key != sale.lot
                and tax.in_wash_window(sale.sold_on, purchase.acquired_on)
            )
            assert not (eligible and left > 0 and unused > 0)


realized_losses = st.builds(
    lambda q, basis, loss: Realized(quantity=q, proceeds=basis - loss, cost_basis=basis),
    st.decimals("0.000002", "1000", places=6),
    st.decimals("10", "100000", places=2),
    st.decimals("0.01", "10", places=2),
)


@given(realized_losses, st.data())
@example(Realized(D("3"), D("20.00"), D("30.01")), None)
def test_disallowed_amount_is_washed_shares_times_loss_per_share(realized, data) -> None:  # type: ignore[no-untyped-def]
    washed_shares = D("1") if data is None else data.draw(st.decimals("0.000001", str(realized.quantity), places=6))
    loss = -realized.gain
    disallowed = tax.washed_loss(realized, washed_shares)
    assert disallowed == (washed_shares * loss / realized.quantity).quantize(tax.CENT) or (
        washed_shares == realized.quantity and disallowed == loss
    )
    assert D(0) <= disallowed <= loss
    if washed_shares < realized.quantity:
        washed, rest = tax.split_realized(realized, washed_shares)
        assert washed.quantity + rest.quantity == realized.quantity
        assert washed.proceeds + rest.proceeds == realized.proceeds
        assert washed.cost_basis + rest.cost_basis == realized.cost_basis
        assert washed.gain == -disallowed and rest.gain <= 0
