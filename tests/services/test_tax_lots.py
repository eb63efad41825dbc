"""The paper broker's tax lots through the real services: lot choice, realized gains, wash sales at fill time.

Every test trades after the shipped prices end (2026-07-31), at closes it sets itself; the trading cost is 0.05%
of the notional, rounded up to the cent (so a buy of 10 shares at $100 costs $1,000.50: $100.05 a share).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from compliance.models import AuditEvent
from portfolios.models import (
    Account,
    AccountType,
    Fill,
    Lot,
    LotMethod,
    Order,
    RealizedGain,
    TradePurpose,
)
from portfolios.services.accounts import account_deposit
from portfolios.services.recommendations import order_fill, recommendation_execute
from tests.services.trading import approve, execute, prices_set, trade

pytestmark = pytest.mark.django_db

D = Decimal
BUY, SELL = "buy", "sell"


@pytest.fixture
def taxable(funded_alice) -> Account:  # type: ignore[no-untyped-def]
    return funded_alice.accounts.get(account_type=AccountType.TAXABLE)


@pytest.fixture
def ira(funded_alice) -> Account:  # type: ignore[no-untyped-def]
    account = Account.objects.create(owner=funded_alice, name="Roth IRA", account_type=AccountType.ROTH_IRA)
    account_deposit(account=account, amount=D("20000.00"), actor=funded_alice)
    return account


def lot_of(rec) -> Lot:  # type: ignore[no-untyped-def]
    return Lot.objects.get(fill__order__recommendation=rec)


def gains_of(rec) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    return [
        (g.lot_id, g.quantity, g.proceeds, g.cost_basis, g.gain, g.term, g.wash_sale_disallowed, g.replacement_lot_id)
        for g in RealizedGain.objects.filter(fill__order__recommendation=rec).order_by("id")
    ]


# ------------------------------------------------------------------------------------------ lots and gains


def test_a_buy_opens_a_lot_whose_holding_period_starts_on_the_fill_date(taxable, carol) -> None:  # type: ignore[no-untyped-def]
    # given
    day = date(2026, 8, 3)
    prices_set(day, {"SPY": "100"})
    # when
    rec = trade(taxable, carol, day, (BUY, "SPY", "10"))
    # then
    lot = lot_of(rec)
    assert (lot.original_quantity, lot.quantity, lot.cost_per_share) == (D("10"), D("10"), D("100.05"))
    assert lot.acquired_on == lot.holding_start == day and lot.wash_sale_adjustment == 0
    event = AuditEvent.objects.filter(action="order.filled").latest("id")
    assert event.payload["lot"] == lot.pk and event.payload["market_date"] == "2026-08-03"


@pytest.fixture
def three_lots(taxable, carol):  # type: ignore[no-untyped-def]
    """SPY lots: L1 long-term gain at $110 (cost 100.05), L2 long-term loss (120.06), L3 short-term gain (105.053)."""
    days = {"L1": date(2026, 8, 3), "L2": date(2026, 9, 15), "L3": date(2027, 8, 2)}
    lots = {}
    for name, close in (("L1", "100"), ("L2", "120"), ("L3", "105")):
        prices_set(days[name], {"SPY": close})
        lots[name] = lot_of(trade(taxable, carol, days[name], (BUY, "SPY", "10"))).pk
    sale_day = date(2027, 10, 1)  # 60 days after L3: no wash sale
    prices_set(sale_day, {"SPY": "110"})
    return lots, sale_day


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        # net proceeds 1,650.00 - 0.83 = 1,649.17, allocated 1,099.45 / 549.72 by shares
        (LotMethod.TAX_MINIMIZING, [("L2", "10", "1099.45", "1200.60", "-101.15", "long"),
                                    ("L1", "5", "549.72", "500.25", "49.47", "long")]),
        (LotMethod.HIFO, [("L2", "10", "1099.45", "1200.60", "-101.15", "long"),
                          ("L3", "5", "549.72", "525.26", "24.46", "short")]),
        (LotMethod.FIFO, [("L1", "10", "1099.45", "1000.50", "98.95", "long"),
                          ("L2", "5", "549.72", "600.30", "-50.58", "long")]),
    ],
)  # fmt: skip
def test_a_sell_takes_lots_by_the_accounts_method_and_records_exact_gains(
    three_lots, taxable, carol, method, expected
) -> None:  # type: ignore[no-untyped-def]
    # given
    lots, sale_day = three_lots
    Account.objects.filter(pk=taxable.pk).update(lot_method=method)
    taxable.refresh_from_db()
    # when
    rec = trade(taxable, carol, sale_day, (SELL, "SPY", "15"))
    # then
    assert gains_of(rec) == [
        (lots[name], D(q), D(p), D(b), D(g), term, D("0"), None) for name, q, p, b, g, term in expected
    ]
    remaining = {name: Lot.objects.get(pk=pk).quantity for name, pk in lots.items()}
    sold = {name: D(q) for name, q, *_ in expected}
    assert remaining == {name: D("10") - sold.get(name, D(0)) for name in lots}
    fill = Fill.objects.get(order__recommendation=rec)
    assert sum(g.proceeds for g in RealizedGain.objects.filter(fill=fill)) == fill.gross_amount - fill.cost
    assert all(g.sold_on == sale_day and not g.harvest for g in RealizedGain.objects.filter(fill=fill))


def test_planned_lots_are_sold_first_each_capped_at_what_it_holds(three_lots, taxable, carol) -> None:  # type: ignore[no-untyped-def]
    # given: the plan names L3 for 4 shares and L1 for more than it holds
    lots, sale_day = three_lots
    plan = [{"lot": lots["L3"], "quantity": "4"}, {"lot": lots["L1"], "quantity": "20"}]
    # when
    rec = trade(taxable, carol, sale_day, (SELL, "SPY", "15"), lots={0: plan})
    # then: L3 4, L1 10, and the last share by the lot method (tax_min: the loss lot L2)
    assert gains_of(rec) == [
        (lots["L3"], D("4"), D("439.78"), D("420.21"), D("19.57"), "short", D("0"), None),
        (lots["L1"], D("10"), D("1099.45"), D("1000.50"), D("98.95"), "long", D("0"), None),
        (lots["L2"], D("1"), D("109.94"), D("120.06"), D("-10.12"), "long", D("0"), None),
    ]
    event = AuditEvent.objects.filter(action="order.filled").latest("id")
    assert [(row["lot"], row["quantity"], row["gain"]) for row in event.payload["lots_sold"]] == [
        (lots["L3"], "4.000000", "19.57"),
        (lots["L1"], "10.000000", "98.95"),
        (lots["L2"], "1.000000", "-10.12"),
    ]


def test_a_harvest_sell_marks_its_realized_gains_as_harvested(three_lots, taxable, carol) -> None:  # type: ignore[no-untyped-def]
    lots, sale_day = three_lots
    rec = trade(taxable, carol, sale_day, (SELL, "SPY", "10"), purpose=TradePurpose.HARVEST)
    assert list(RealizedGain.objects.filter(fill__order__recommendation=rec).values_list("lot", "harvest")) == [
        (lots["L2"], True)
    ]


def test_executing_twice_records_no_second_fill_or_gain(three_lots, taxable, carol) -> None:  # type: ignore[no-untyped-def]
    # given
    lots, sale_day = three_lots
    rec = trade(taxable, carol, sale_day, (SELL, "SPY", "12"))
    counts = (Fill.objects.count(), RealizedGain.objects.count(), AuditEvent.objects.count())
    # when: the task is delivered again, and a worker retries the order itself
    recommendation_execute(recommendation_id=rec.pk, market_date=sale_day)
    assert order_fill(order_id=Order.objects.get(recommendation=rec).pk, market_date=sale_day) is None
    # then
    assert (Fill.objects.count(), RealizedGain.objects.count(), AuditEvent.objects.count()) == counts
    assert Lot.objects.get(pk=lots["L2"]).quantity == 0 and Lot.objects.get(pk=lots["L1"]).quantity == D("8")


def test_without_a_date_the_broker_fills_at_the_latest_close(taxable, carol) -> None:  # type: ignore[no-untyped-def]
    from portfolios.services.recommendations import recommendation_approve
    from tests.services.trading import recommend

    prices_set(date(2026, 8, 3), {"SPY": "100"})
    prices_set(date(2026, 8, 4), {"SPY": "101"})
    rec = recommend(taxable, date(2026, 8, 3), [(BUY, "SPY", "1")])
    recommendation_approve(recommendation_id=rec.pk, advisor=carol)
    recommendation_execute(recommendation_id=rec.pk)
    fill = Fill.objects.get(order__recommendation=rec)
    assert (fill.market_date, fill.price) == (date(2026, 8, 4), D("101"))


# ------------------------------------------------------------------------------------------ wash sales

BOUGHT = date(2026, 8, 3)
SOLD = date(2026, 10, 5)  # SPY bought at 100 (cost 100.05) sold at 78: 10 shares lose 220.89


@pytest.fixture
def spy_lot(taxable, carol) -> Lot:  # type: ignore[no-untyped-def]
    prices_set(BOUGHT, {"SPY": "100", "VOO": "100", "VTI": "100", "ITOT": "100"})
    return lot_of(trade(taxable, carol, BOUGHT, (BUY, "SPY", "10")))


def test_a_loss_sale_after_a_purchase_of_the_same_index_in_the_30_days_before_is_washed(
    spy_lot, taxable, carol
) -> None:  # type: ignore[no-untyped-def]
    # given: VOO (same S&P 500 index as SPY) bought 14 days before the loss sale
    prices_set(date(2026, 9, 21), {"VOO": "80"})
    voo = lot_of(trade(taxable, carol, date(2026, 9, 21), (BUY, "VOO", "4")))
    assert voo.cost_per_share == D("80.04")
    prices_set(SOLD, {"SPY": "78"})
    # when: all 10 SPY shares are sold at a loss of 220.89 (net 779.61 for a basis of 1,000.50)
    rec = trade(taxable, carol, SOLD, (SELL, "SPY", "10"))
    # then: 4 shares are washed (4 x 22.089 = 88.36 disallowed), split off the 6 that are not
    assert gains_of(rec) == [
        (spy_lot.pk, D("6"), D("467.77"), D("600.30"), D("-132.53"), "short", D("0"), None),
        (spy_lot.pk, D("4"), D("311.84"), D("400.20"), D("-88.36"), "short", D("88.36"), voo.pk),
    ]
    voo.refresh_from_db()
    assert voo.cost_per_share == D("102.13")  # 80.04 + 88.36 / 4
    assert voo.wash_sale_adjustment == D("88.36")
    assert voo.holding_start == BOUGHT and voo.acquired_on == date(2026, 9, 21)
    event = AuditEvent.objects.get(action="lot.wash_sale_adjusted")
    assert event.object_id == str(voo.pk)
    assert event.payload["disallowed"] == "88.36" and event.payload["basis_adjusted"] is True
    assert event.payload["old"] == {"cost_per_share": "80.040000", "holding_start": "2026-09-21"}
    assert event.payload["new"] == {"cost_per_share": "102.130000", "holding_start": "2026-08-03"}
    filled = AuditEvent.objects.filter(action="order.filled").latest("id").payload
    washed = RealizedGain.objects.get(replacement_lot=voo)
    assert filled["wash_sales"] == [
        {"realized_gain": washed.pk, "replacement_lot": voo.pk, "shares": "4.000000", "disallowed": "88.36",
         "basis_adjusted": True}
    ]  # fmt: skip


def test_a_buy_of_the_same_index_up_to_30_days_after_a_loss_sale_is_washed_but_not_on_day_31(
    spy_lot, taxable, carol
) -> None:  # type: ignore[no-untyped-def]
    # given: the loss sale
    prices_set(SOLD, {"SPY": "78"})
    sale = trade(taxable, carol, SOLD, (SELL, "SPY", "10"))
    (loss,) = RealizedGain.objects.filter(fill__order__recommendation=sale)
    assert (loss.gain, loss.wash_sale_disallowed) == (D("-220.89"), D("0"))
    # when: 5 VOO bought on day 30, then 5 more on day 31
    prices_set(date(2026, 11, 4), {"VOO": "79"})
    prices_set(date(2026, 11, 5), {"VOO": "79"})
    day30 = lot_of(trade(taxable, carol, date(2026, 11, 4), (BUY, "VOO", "5")))
    day31 = lot_of(trade(taxable, carol, date(2026, 11, 5), (BUY, "VOO", "5")))
    # then: the day-30 lot replaced 5 of the 10 shares (5 x 22.089 = 110.445, 110.44 to the cent)
    assert gains_of(sale) == [
        (spy_lot.pk, D("5"), D("389.80"), D("500.25"), D("-110.45"), "short", D("0"), None),
        (spy_lot.pk, D("5"), D("389.81"), D("500.25"), D("-110.44"), "short", D("110.44"), day30.pk),
    ]
    day30.refresh_from_db()
    day31.refresh_from_db()
    assert (day30.cost_per_share, day30.wash_sale_adjustment, day30.holding_start) == (
        D("101.128"),
        D("110.44"),
        BOUGHT,
    )
    assert (day31.cost_per_share, day31.wash_sale_adjustment, day31.holding_start) == (
        D("79.04"),
        D("0"),
        date(2026, 11, 5),
    )


def test_an_ira_purchase_washes_a_taxable_loss_without_adding_it_to_any_basis(spy_lot, taxable, ira, carol) -> None:  # type: ignore[no-untyped-def]
    # given: an IRA purchase of VOO approved before the loss (approval would refuse it after)
    prices_set(SOLD, {"SPY": "78"})
    prices_set(date(2026, 10, 15), {"VOO": "79"})
    purchase = approve(ira, carol, date(2026, 10, 15), (BUY, "VOO", "10"))
    sale = trade(taxable, carol, SOLD, (SELL, "SPY", "10"))
    # when: the IRA buys the 10 VOO ten days later
    replacement = lot_of(execute(purchase, date(2026, 10, 15)))
    # then: the whole loss is disallowed, and the IRA lot keeps its cost and holding period
    assert gains_of(sale) == [
        (spy_lot.pk, D("10"), D("779.61"), D("1000.50"), D("-220.89"), "short", D("220.89"), replacement.pk)
    ]
    replacement.refresh_from_db()
    assert replacement.cost_per_share == D("79.04")
    assert (replacement.wash_sale_adjustment, replacement.holding_start) == (D("0"), date(2026, 10, 15))
    event = AuditEvent.objects.get(action="lot.wash_sale_adjusted")
    assert event.payload["basis_adjusted"] is False and event.payload["disallowed"] == "220.89"


def test_a_different_index_is_not_substantially_identical(taxable, carol) -> None:  # type: ignore[no-untyped-def]
    # given: VTI (CRSP US Total Market) sold at a loss; ITOT (S&P Total Market) bought five days later
    prices_set(BOUGHT, {"VTI": "100"})
    trade(taxable, carol, BOUGHT, (BUY, "VTI", "10"))
    prices_set(SOLD, {"VTI": "78"})
    sale = trade(taxable, carol, SOLD, (SELL, "VTI", "10"), purpose=TradePurpose.HARVEST)
    prices_set(date(2026, 10, 10), {"ITOT": "79"})
    itot = lot_of(trade(taxable, carol, date(2026, 10, 10), (BUY, "ITOT", "10")))
    # then
    (loss,) = RealizedGain.objects.filter(fill__order__recommendation=sale)
    assert (loss.gain, loss.wash_sale_disallowed, loss.replacement_lot, loss.harvest) == (D("-220.89"), 0, None, True)
    itot.refresh_from_db()
    assert itot.wash_sale_adjustment == 0 and not AuditEvent.objects.filter(action="lot.wash_sale_adjusted").exists()


def test_a_loss_inside_an_ira_is_never_washed(ira, taxable, carol) -> None:  # type: ignore[no-untyped-def]
    prices_set(BOUGHT, {"SPY": "100"})
    trade(ira, carol, BOUGHT, (BUY, "SPY", "10"))
    prices_set(SOLD, {"SPY": "78"})
    sale = trade(ira, carol, SOLD, (SELL, "SPY", "10"))
    trade(taxable, carol, SOLD, (BUY, "SPY", "10"))
    (loss,) = RealizedGain.objects.filter(fill__order__recommendation=sale)
    assert (loss.gain, loss.wash_sale_disallowed, loss.replacement_lot) == (D("-220.89"), 0, None)


def test_a_replacement_lot_serves_several_sales_but_each_share_only_once(taxable, carol) -> None:  # type: ignore[no-untyped-def]
    # given: two SPY lots sold at a loss on two days, then one VOO lot of 15 shares
    prices_set(BOUGHT, {"SPY": "100"})
    first = lot_of(trade(taxable, carol, BOUGHT, (BUY, "SPY", "10")))
    prices_set(date(2026, 8, 4), {"SPY": "100"})
    second = lot_of(trade(taxable, carol, date(2026, 8, 4), (BUY, "SPY", "10")))
    prices_set(SOLD, {"SPY": "78"})
    prices_set(date(2026, 10, 6), {"SPY": "78", "VOO": "78"})
    purchase = approve(taxable, carol, date(2026, 10, 6), (BUY, "VOO", "15"))  # approved before the losses
    trade(taxable, carol, SOLD, (SELL, "SPY", "10"), lots={0: [{"lot": first.pk, "quantity": "10"}]})
    trade(taxable, carol, date(2026, 10, 6), (SELL, "SPY", "10"))
    # when
    voo = lot_of(execute(purchase, date(2026, 10, 6)))
    # then: the earlier sale is washed in full, the later one for 5 shares; VOO carries both losses
    washed = RealizedGain.objects.filter(replacement_lot=voo).order_by("sold_on")
    assert [(g.lot_id, g.quantity, g.wash_sale_disallowed) for g in washed] == [
        (first.pk, D("10"), D("220.89")),
        (second.pk, D("5"), D("110.44")),
    ]
    voo.refresh_from_db()
    assert voo.wash_sale_adjustment == D("331.33") and voo.holding_start == BOUGHT
    assert AuditEvent.objects.filter(action="lot.wash_sale_adjusted", object_id=str(voo.pk)).count() == 2


def test_a_replacement_lot_replaces_at_most_the_shares_it_still_holds(taxable, ira, carol) -> None:  # type: ignore[no-untyped-def]
    # given: 5 IVV in each account; the IRA sells one of its shares
    prices_set(BOUGHT, {"IVV": "100"})
    trade(taxable, carol, BOUGHT, (BUY, "IVV", "5"))
    ira_lot = lot_of(trade(ira, carol, BOUGHT, (BUY, "IVV", "5")))
    prices_set(date(2026, 8, 4), {"IVV": "100"})
    trade(ira, carol, date(2026, 8, 4), (SELL, "IVV", "1"))
    # when: the taxable lot is sold at a loss of 50.48 (net 449.77 for a basis of 500.25)
    prices_set(date(2026, 8, 10), {"IVV": "90"})
    prices_set(date(2026, 8, 20), {"IVV": "91"})
    purchase = approve(ira, carol, date(2026, 8, 20), (BUY, "IVV", "2"))  # approved before the loss
    sale = trade(taxable, carol, date(2026, 8, 10), (SELL, "IVV", "5"))
    # then: the IRA lot replaces the 4 shares it holds; the fifth stays a loss...
    washed = [(g.quantity, g.gain, g.wash_sale_disallowed, g.replacement_lot_id) for g in gains_of_rows(sale)]
    assert washed == [(D("1"), D("-10.10"), D("0"), None), (D("4"), D("-40.38"), D("40.38"), ira_lot.pk)]
    # ...until another purchase within 30 days replaces it
    later = lot_of(execute(purchase, date(2026, 8, 20)))
    washed = [(g.quantity, g.wash_sale_disallowed, g.replacement_lot_id) for g in gains_of_rows(sale)]
    assert washed == [(D("1"), D("10.10"), later.pk), (D("4"), D("40.38"), ira_lot.pk)]


def gains_of_rows(rec) -> list[RealizedGain]:  # type: ignore[no-untyped-def]
    return list(RealizedGain.objects.filter(fill__order__recommendation=rec).order_by("id"))


def test_a_fill_dated_before_a_purchase_cannot_sell_its_shares(taxable, carol) -> None:  # type: ignore[no-untyped-def]
    from portfolios.models import OrderStatus

    prices_set(date(2026, 8, 3), {"SPY": "100"})
    prices_set(date(2026, 8, 10), {"SPY": "101"})
    trade(taxable, carol, date(2026, 8, 10), (BUY, "SPY", "3"))
    # when: a replay fills a sell at an earlier date
    rec = trade(taxable, carol, date(2026, 8, 3), (SELL, "SPY", "3"))
    # then
    order = Order.objects.get(recommendation=rec)
    assert (order.status, order.note) == (OrderStatus.CANCELLED, "reduced from 3.000000 to the 0 shares held")
    assert not RealizedGain.objects.exists()
