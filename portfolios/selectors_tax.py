"""Reads about taxes: the yearly summary of an investor's realized gains, open lots and realized gains of an account.

Bulk queries, no per-row lookups. The amounts follow docs/tax.md ("The yearly tax summary").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db.models import QuerySet
from django.utils import timezone

from advisor.errors import InvalidInputError
from advisor.models import User

from . import tax
from .models import TAX_ADVANTAGED_ACCOUNT_TYPES, Account, GainTerm, Lot, RealizedGain
from .selectors import market_date_latest, prices_as_of

ZERO = Decimal("0")
FIRST_YEAR, LAST_YEAR = 1900, 2200


def year_parse(value: object, *, default: int) -> int:
    """``?year=`` as a calendar year; empty means ``default``."""
    if value is None or str(value).strip() == "":
        return default
    text = str(value).strip()
    if not text.isdigit() or not FIRST_YEAR <= int(text) <= LAST_YEAR:
        raise InvalidInputError("Invalid year.", fields={"year": f"A year from {FIRST_YEAR} to {LAST_YEAR}."})
    return int(text)


def market_year() -> int:
    """The year of the market clock (the latest price), or of the newest price-less day: the default tax year."""
    latest = market_date_latest()
    return latest.year if latest else timezone.localdate().year


@dataclass
class TaxTotals:
    """Realized gains of one account (or of all taxable accounts) in one year.

    Gains are positive; losses are negative and *recognized*: a loss the wash-sale rule disallowed is not in
    them but in ``wash_sale_disallowed`` (positive). ``losses_harvested`` (positive) is the recognized loss of
    harvest sales, and ``estimated_tax_saved`` prices it at the investor's rate of its term.
    """

    short_term_gains: Decimal = ZERO
    short_term_losses: Decimal = ZERO
    long_term_gains: Decimal = ZERO
    long_term_losses: Decimal = ZERO
    wash_sale_disallowed: Decimal = ZERO
    losses_harvested: Decimal = ZERO
    short_term_harvested: Decimal = ZERO
    long_term_harvested: Decimal = ZERO
    estimated_tax_saved: Decimal | None = None

    @property
    def short_term_net(self) -> Decimal:
        return self.short_term_gains + self.short_term_losses

    @property
    def long_term_net(self) -> Decimal:
        return self.long_term_gains + self.long_term_losses

    @property
    def net(self) -> Decimal:
        return self.short_term_net + self.long_term_net

    def add(self, row: RealizedGain) -> None:
        long = row.term == GainTerm.LONG
        if row.gain >= 0:
            if long:
                self.long_term_gains += row.gain
            else:
                self.short_term_gains += row.gain
            return
        recognized = row.gain + row.wash_sale_disallowed
        if long:
            self.long_term_losses += recognized
        else:
            self.short_term_losses += recognized
        self.wash_sale_disallowed += row.wash_sale_disallowed
        if row.harvest:
            self.losses_harvested -= recognized
            if long:
                self.long_term_harvested -= recognized
            else:
                self.short_term_harvested -= recognized

    def price_harvest(self, marginal_rate: Decimal | None) -> None:
        if marginal_rate is None:
            return
        self.estimated_tax_saved = tax.cents(
            self.short_term_harvested * tax.short_term_rate(marginal_rate)
            + self.long_term_harvested * tax.long_term_rate(marginal_rate)
        )

    def merge(self, other: TaxTotals) -> None:
        for name in (
            "short_term_gains", "short_term_losses", "long_term_gains", "long_term_losses", "wash_sale_disallowed",
            "losses_harvested", "short_term_harvested", "long_term_harvested",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.estimated_tax_saved is not None:
            self.estimated_tax_saved = (self.estimated_tax_saved or ZERO) + other.estimated_tax_saved


@dataclass
class AccountTaxSummary:
    account: Account
    tax_advantaged: bool
    totals: TaxTotals
    sales: list[RealizedGain] = field(default_factory=list)


@dataclass
class TaxYearSummary:
    investor: User
    year: int
    years: list[int]  # the years with sales, and the requested one
    marginal_rate: Decimal | None  # None: the investor has not stated a tax rate
    short_term_rate: Decimal | None
    long_term_rate: Decimal | None
    accounts: list[AccountTaxSummary]
    total: TaxTotals  # taxable accounts only: gains inside an IRA are not taxed


def _marginal_rate(investor: User) -> Decimal | None:
    from profiling.models import Preferences  # profiling's preferences, read-only

    rate: Decimal | None = (
        Preferences.objects.filter(investor=investor).order_by("-version").values_list("marginal_tax_rate", flat=True)
    ).first()
    return rate


def tax_year_summary(*, investor: User, year: int) -> TaxYearSummary:
    """Per account and in total: realized gains and losses short and long term, wash-sale disallowed losses,
    losses harvested and the tax they saved at the investor's rates (docs/tax.md)."""
    accounts = list(Account.objects.filter(owner=investor).order_by("id"))
    rows = list(
        RealizedGain.objects.filter(account__owner=investor, sold_on__year=year)
        .select_related("asset", "replacement_lot__account")
        .order_by("sold_on", "fill_id", "lot_id", "id")
    )
    years = {d.year for d in RealizedGain.objects.filter(account__owner=investor).dates("sold_on", "year")}
    marginal = _marginal_rate(investor)
    summaries = {
        a.pk: AccountTaxSummary(
            account=a, tax_advantaged=a.account_type in TAX_ADVANTAGED_ACCOUNT_TYPES, totals=TaxTotals()
        )
        for a in accounts
    }
    for row in rows:
        summary = summaries[row.account_id]
        summary.sales.append(row)
        summary.totals.add(row)
    total = TaxTotals(estimated_tax_saved=None if marginal is None else ZERO)
    for summary in summaries.values():
        if summary.tax_advantaged:
            continue
        summary.totals.price_harvest(marginal)
        total.merge(summary.totals)
    return TaxYearSummary(
        investor=investor,
        year=year,
        years=sorted(years | {year}, reverse=True),
        marginal_rate=marginal,
        short_term_rate=None if marginal is None else tax.short_term_rate(marginal),
        long_term_rate=None if marginal is None else tax.long_term_rate(marginal),
        accounts=list(summaries.values()),
        total=total,
    )


@dataclass
class OpenLotRow:
    lot: Lot
    ticker: str
    price: Decimal | None
    cost_basis: Decimal
    market_value: Decimal | None
    unrealized_gain: Decimal | None
    holding_start: date
    long_term_from: date
    term_if_sold: str | None  # at the market date


def account_lots(account: Account) -> tuple[date | None, list[OpenLotRow]]:
    """The account's open lots valued at the latest close, with the term a sale at the market date would have."""
    market_date = market_date_latest()
    prices = prices_as_of(market_date) if market_date else {}
    lots = Lot.objects.filter(account=account, quantity__gt=0).select_related("asset").order_by("acquired_on", "id")
    rows = []
    for lot in lots:
        start = lot.holding_start or lot.acquired_on
        price = prices[lot.asset_id][0] if lot.asset_id in prices else None
        basis = tax.cost_basis(lot.quantity, lot.cost_per_share)
        value = tax.cents(lot.quantity * price) if price is not None else None
        rows.append(
            OpenLotRow(
                lot=lot,
                ticker=lot.asset.ticker,
                price=price,
                cost_basis=basis,
                market_value=value,
                unrealized_gain=None if value is None else value - basis,
                holding_start=start,
                long_term_from=tax.first_long_term_day(start),
                term_if_sold=tax.gain_term(start, market_date).value if market_date else None,
            )
        )
    return market_date, rows


def account_realized_gains(account: Account, year: int | None = None) -> QuerySet[RealizedGain]:
    """An account's realized gains, oldest first (a query set: the API pages it in SQL)."""
    rows = (
        RealizedGain.objects.filter(account=account)
        .select_related("asset")
        .order_by("sold_on", "fill_id", "lot_id", "id")
    )
    if year is not None:
        rows = rows.filter(sold_on__year=year)
    return rows
