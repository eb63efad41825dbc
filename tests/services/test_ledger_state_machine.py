"""A hypothesis state machine over one investor's money: deposits, buys, sells, harvests and price moves, in a
taxable account and a Roth IRA, every trade a recommendation approved by the advisor and executed by the broker
at the machine's market date (``recommendation_execute(market_date=...)``).

Invariants after every step, per account:

1. cash is never negative, and no lot holds a negative quantity (or more than it was bought with);
2. the money identity, exact to the last digit::

       cash + sum(q * p)  ==  net deposits + sum(gain) + sum(A) + sum(q * (p - c)) + R

   where, over open lots, ``q`` is the quantity held, ``c`` the cost per share (the tax basis, wash-sale
   adjustments included) and ``p`` the latest close; ``gain`` (proceeds - cost basis) is summed over every
   realized gain of the account, *before* any wash-sale disallowance; ``A`` is the ``wash_sale_adjustment`` of
   every lot of the account, open or closed (the disallowed losses added to the basis of taxable replacement
   lots); and ``R`` is the sum of the ledger's rounding residuals, each tracked exactly and bounded:

   * a buy: ``q * c0 - (gross + cost)``, with ``c0 = (gross + cost) / q`` rounded to 1e-6: at most ``q * 5e-7``;
   * a sale of shares of a lot: ``cost basis - quantity * c``, the basis rounded to the cent: at most half a
     cent (a wash-sale split of the sale into two rows keeps their sum);
   * a wash-sale adjustment of ``D`` over the ``q`` shares a lot holds: ``q * (c' - c) - D`` with ``c'`` rounded
     to 1e-6: at most ``q * 5e-7``.

   In terms of the recognized gains (``gain + wash_sale_disallowed``) the same identity reads
   ``value == net deposits + recognized gains - disallowed losses carried into IRA replacements + unrealized + R``:
   a loss washed by an IRA purchase is lost for tax but was spent all the same.
3. Disallowed losses are all accounted for: their sum equals the adjustments of taxable replacement lots plus
   the losses washed by IRA purchases; no lot replaces more shares than it was bought with.
4. No silent wash sale: no loss realized in the taxable account is left unmatched while a lot of the same index
   (another lot than the one sold, in either account) bought within 30 days of the sale still holds more shares
   than it has already replaced.

Withdrawals are left out: their service (``portfolios/services/cashflows.py``) is written on another branch.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.db.models import Sum
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from portfolios.models import (
    Account,
    AccountType,
    CashMovement,
    Fill,
    Lot,
    RealizedGain,
    TradePurpose,
)
from portfolios.rebalance import floor_shares
from portfolios.services.accounts import account_deposit
from portfolios.services.recommendations import recommendation_approve, recommendation_execute
from portfolios.tax import WASH_SALE_WINDOW_DAYS
from tests.factories import AdvisorFactory, InvestorFactory
from tests.services.trading import prices_set, recommend

pytestmark = pytest.mark.django_db

D = Decimal
ZERO = D("0")
TICKERS = ("SPY", "IVV", "VTI")  # SPY and IVV track the S&P 500: substantially identical
START = date(2026, 8, 3)  # after the shipped prices
ROUNDING_PER_SHARE = D("0.0000005")
HALF_CENT = D("0.005")
_people = itertools.count(1)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Each example runs in a savepoint rolled back at teardown, so examples never see each other's rows.
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        n = next(_people)
        self.advisor = AdvisorFactory(email=f"sm-advisor-{n}@example.com")
        self.investor = InvestorFactory(email=f"sm-investor-{n}@example.com", advisor=self.advisor)
        self.accounts = {
            "taxable": Account.objects.create(owner=self.investor, name="Taxable", account_type=AccountType.TAXABLE),
            "ira": Account.objects.create(owner=self.investor, name="IRA", account_type=AccountType.ROTH_IRA),
        }
        self.day = START
        self.prices = {"SPY": D("100.00"), "IVV": D("100.00"), "VTI": D("100.00")}
        prices_set(self.day, {t: str(p) for t, p in self.prices.items()})
        self.deposits = dict.fromkeys(self.accounts, ZERO)
        self.residual = dict.fromkeys(self.accounts, ZERO)
        self.sale_cost: dict[tuple[int, int], Decimal] = {}  # (fill, lot) -> the lot's cost per share when sold

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    # ------------------------------------------------------------------------------------------ helpers

    def cash(self, name: str) -> Decimal:
        total = CashMovement.objects.filter(account=self.accounts[name]).aggregate(total=Sum("amount"))["total"]
        return D(total or 0)

    def lots(self, name: str | None = None) -> dict[int, Lot]:
        rows = Lot.objects.filter(account__owner=self.investor).select_related("account", "asset")
        if name is not None:
            rows = rows.filter(account=self.accounts[name])
        return {lot.pk: lot for lot in rows}

    def held(self, name: str, ticker: str) -> list[Lot]:
        return sorted(
            (x for x in self.lots(name).values() if x.asset.ticker == ticker and x.quantity > 0), key=lambda x: x.pk
        )

    def execute(self, name: str, trades: list[tuple[str, str, str]], **options: object) -> None:
        """Propose, approve and fill; then book the rounding residuals of the lots the fill opened or adjusted."""
        before = {pk: (lot.cost_per_share, lot.wash_sale_adjustment) for pk, lot in self.lots().items()}
        rec = recommend(self.accounts[name], self.day, trades, **options)  # type: ignore[arg-type]
        recommendation_approve(recommendation_id=rec.pk, advisor=self.advisor)
        recommendation_execute(recommendation_id=rec.pk, market_date=self.day)
        by_account = {a.pk: key for key, a in self.accounts.items()}
        for pk, lot in self.lots().items():
            adjustments = RealizedGain.objects.filter(replacement_lot=lot).count()
            if pk not in before:  # bought now, and perhaps already a wash-sale replacement
                fill = Fill.objects.get(pk=lot.fill_id)
                step = lot.quantity * lot.cost_per_share - (fill.gross_amount + fill.cost) - lot.wash_sale_adjustment
                bound = lot.quantity * ROUNDING_PER_SHARE * (1 + adjustments)
            else:
                cost, adjustment = before[pk]
                step = lot.quantity * (lot.cost_per_share - cost) - (lot.wash_sale_adjustment - adjustment)
                bound = lot.quantity * ROUNDING_PER_SHARE * adjustments
            assert abs(step) <= bound, (pk, step, bound)
            self.residual[by_account[lot.account_id]] += step
        # A sale's rows are valued at the cost per share their lot had when sold (a later wash-sale adjustment
        # of the same lot does not change them); rows split off later share their sale's fill and lot.
        for fill_id, lot_id in RealizedGain.objects.filter(fill__order__recommendation=rec).values_list(
            "fill_id", "lot_id"
        ):
            self.sale_cost[(fill_id, lot_id)] = before[lot_id][0]

    # ------------------------------------------------------------------------------------------ rules

    @initialize(taxable=st.decimals("1000", "50000", places=2), ira=st.decimals("1000", "50000", places=2))
    def fund(self, taxable: Decimal, ira: Decimal) -> None:
        self.deposit("taxable", taxable)
        self.deposit("ira", ira)

    @initialize(taxable=st.sampled_from(TICKERS), ira=st.sampled_from(TICKERS))
    def open_positions(self, taxable: str, ira: str) -> None:
        self.buy("taxable", taxable, D("0.5"))
        self.buy("ira", ira, D("0.5"))

    @rule(name=st.sampled_from(["taxable", "ira"]), amount=st.decimals("100", "20000", places=2))
    def deposit(self, name: str, amount: Decimal) -> None:
        account_deposit(account=self.accounts[name], amount=amount, actor=self.investor)
        self.deposits[name] += amount

    @rule(
        name=st.sampled_from(["taxable", "ira"]),
        ticker=st.sampled_from(TICKERS),
        share_of_cash=st.decimals("0.05", "0.9", places=2),
    )
    def buy(self, name: str, ticker: str, share_of_cash: Decimal) -> None:
        cost_rate: Decimal = django_settings.ADVISOR["TRADING_COST_RATE"]
        quantity = floor_shares(self.cash(name) * share_of_cash / (self.prices[ticker] * (1 + cost_rate)))
        if quantity * self.prices[ticker] >= 1:
            self.execute(name, [("buy", ticker, str(quantity))])

    @rule(
        name=st.sampled_from(["taxable", "ira"]),
        ticker=st.sampled_from(TICKERS),
        share=st.decimals("0.1", "1", places=2),
        name_a_lot=st.booleans(),
    )
    def sell(self, name: str, ticker: str, share: Decimal, name_a_lot: bool) -> None:
        lots = self.held(name, ticker)
        quantity = floor_shares(sum((x.quantity for x in lots), ZERO) * share)
        if quantity <= 0:
            return
        plan = [{"lot": lots[-1].pk, "quantity": str(lots[-1].quantity)}] if name_a_lot else []
        self.execute(name, [("sell", ticker, str(quantity))], lots={0: plan})

    @rule(ticker=st.sampled_from(TICKERS))
    def harvest(self, ticker: str) -> None:
        """Sell every taxable lot of the fund that stands at a loss, naming them (as the pipeline does)."""
        losers = [x for x in self.held("taxable", ticker) if self.prices[ticker] < x.cost_per_share]
        if not losers:
            return
        quantity = sum((x.quantity for x in losers), ZERO)
        plan = [{"lot": x.pk, "quantity": str(x.quantity)} for x in losers]
        self.execute("taxable", [("sell", ticker, str(quantity))], purpose=TradePurpose.HARVEST, lots={0: plan})

    @rule(
        days=st.sampled_from([1, 7, 20, 29, 30, 31, 45, 370]),
        moves=st.tuples(*(st.decimals("0.7", "1.4", places=2) for _ in TICKERS)),
    )
    def move_prices(self, days: int, moves: tuple[Decimal, ...]) -> None:
        self.day += timedelta(days=days)
        for ticker, move in zip(TICKERS, moves, strict=True):
            self.prices[ticker] = max(D("1.00"), (self.prices[ticker] * move).quantize(D("0.01")))
        prices_set(self.day, {t: str(p) for t, p in self.prices.items()})

    # ------------------------------------------------------------------------------------------ invariants

    @invariant()
    def cash_and_lots_never_negative(self) -> None:
        for name in self.accounts:
            assert self.cash(name) >= 0, name
        for lot in self.lots().values():
            assert ZERO <= lot.quantity <= lot.original_quantity, lot

    @invariant()
    def value_is_deposits_plus_gains_plus_adjustments_plus_unrealized(self) -> None:
        for name, account in self.accounts.items():
            lots = self.lots(name).values()
            open_lots = [x for x in lots if x.quantity > 0]
            value = self.cash(name) + sum((x.quantity * self.prices[x.asset.ticker] for x in open_lots), ZERO)
            gains = list(RealizedGain.objects.filter(account=account))
            realized = sum((g.gain for g in gains), ZERO)
            adjustments = sum((x.wash_sale_adjustment for x in lots), ZERO)
            unrealized = sum((x.quantity * (self.prices[x.asset.ticker] - x.cost_per_share) for x in open_lots), ZERO)
            by_sale: dict[tuple[int, int], Decimal] = {}
            for g in gains:  # the rows one wash-sale split made of a lot's sale add up to what was sold
                key = (g.fill_id, g.lot_id)
                by_sale[key] = by_sale.get(key, ZERO) + g.cost_basis - g.quantity * self.sale_cost[key]
            assert all(abs(r) <= HALF_CENT for r in by_sale.values()), by_sale
            sale_residual = sum(by_sale.values(), ZERO)
            expected = self.deposits[name] + realized + adjustments + unrealized + self.residual[name] + sale_residual
            assert value == expected, (name, value, expected)

    @invariant()
    def every_disallowed_loss_is_carried_or_lost_in_an_ira(self) -> None:
        gains = RealizedGain.objects.filter(account__owner=self.investor).select_related("replacement_lot__account")
        disallowed = sum((g.wash_sale_disallowed for g in gains), ZERO)
        into_ira = sum(
            (
                g.wash_sale_disallowed
                for g in gains
                if g.replacement_lot and g.replacement_lot.account.account_type != AccountType.TAXABLE
            ),
            ZERO,
        )
        lots = self.lots().values()
        carried = sum((x.wash_sale_adjustment for x in lots if x.account.account_type == AccountType.TAXABLE), ZERO)
        assert disallowed == carried + into_ira
        for g in gains:
            assert g.wash_sale_disallowed == (-g.gain if g.replacement_lot_id and g.gain < 0 else ZERO)
        for lot in lots:
            used = sum((g.quantity for g in gains if g.replacement_lot_id == lot.pk), ZERO)
            assert used <= lot.original_quantity

    @invariant()
    def no_silent_wash_sale(self) -> None:
        gains = list(RealizedGain.objects.filter(account__owner=self.investor).select_related("asset", "account"))
        used: dict[int, Decimal] = {}
        for g in gains:
            if g.replacement_lot_id:
                used[g.replacement_lot_id] = used.get(g.replacement_lot_id, ZERO) + g.quantity
        lots = self.lots().values()
        for g in gains:
            if g.account.account_type != AccountType.TAXABLE or g.gain >= 0 or g.replacement_lot_id:
                continue
            for lot in lots:
                capacity = lot.quantity - used.get(lot.pk, ZERO)
                assert not (
                    lot.pk != g.lot_id
                    and lot.asset.tracks_index == g.asset.tracks_index
                    and abs((lot.acquired_on - g.sold_on).days) <= WASH_SALE_WINDOW_DAYS
                    and capacity > 0
                ), f"loss {g.pk} of {g.asset.ticker} on {g.sold_on} left unmatched beside lot {lot.pk}"


def test_the_ledger_keeps_its_invariants_through_any_sequence_of_operations(db: None) -> None:
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=10,
            stateful_step_count=16,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
