"""Tax lots in ``Decimal`` (pure: no Django): lot order, gain term, tax rates and wash-sale matching.

The paper broker (``services/recommendations.py: order_fill``) uses these functions on rows it has locked; the
rules are described in docs/tax.md. Rounding is explicit:

* money is rounded to the cent half-to-even (``cents``) unless a function says otherwise;
* a sum of money split over several parts (the proceeds of one sell over the lots it took shares from) is
  split by the largest-remainder method, so the parts are whole cents and add up to the total exactly;
* cost per share keeps the 1e-6 precision of ``Lot.cost_per_share`` (half-to-even).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from enum import StrEnum

CENT = Decimal("0.01")
SHARE_STEP = Decimal("0.000001")
PRICE_STEP = Decimal("0.000001")
ZERO = Decimal("0")

# Purchases from this many days before to this many days after a loss sale wash it (both ends included).
WASH_SALE_WINDOW_DAYS = 30


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def per_share(value: Decimal) -> Decimal:
    return value.quantize(PRICE_STEP, rounding=ROUND_HALF_EVEN)


class Method(StrEnum):
    """The values of ``portfolios.models.LotMethod``."""

    TAX_MIN = "tax_min"
    HIFO = "hifo"
    FIFO = "fifo"


class Term(StrEnum):
    """The values of ``portfolios.models.GainTerm``."""

    SHORT = "short"
    LONG = "long"


# ---------------------------------------------------------------------------------------------- holding period


def one_year_after(day: date) -> date:
    """The first anniversary of ``day``; the anniversary of Feb 29 is Feb 28 of the next year."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # Feb 29 -> a year with no Feb 29
        return day.replace(year=day.year + 1, day=28)


def first_long_term_day(holding_start: date) -> date:
    """The first sale date whose gain is long-term: the day after the first anniversary of the holding start.

    A holding is long-term when it was held "more than one year": sold on the anniversary it is still short-term.
    """
    return one_year_after(holding_start) + timedelta(days=1)


def gain_term(holding_start: date, sold_on: date) -> Term:
    return Term.LONG if sold_on >= first_long_term_day(holding_start) else Term.SHORT


# ---------------------------------------------------------------------------------------------- tax rates

# A simplified US schedule keyed on the investor's marginal (ordinary income) rate: the 0% long-term rate applies
# in the 10% and 12% brackets, 15% up to the 35% bracket, 20% in the top bracket. The 3.8% net investment income
# tax, state taxes and the exact income thresholds of each filing status are left out (docs/tax.md).
LONG_TERM_SCHEDULE: tuple[tuple[Decimal, Decimal], ...] = (
    (Decimal("0.12"), Decimal("0")),
    (Decimal("0.35"), Decimal("0.15")),
)
LONG_TERM_TOP_RATE = Decimal("0.20")


def long_term_rate(marginal_rate: Decimal) -> Decimal:
    for up_to, rate in LONG_TERM_SCHEDULE:
        if marginal_rate <= up_to:
            return rate
    return LONG_TERM_TOP_RATE


def short_term_rate(marginal_rate: Decimal) -> Decimal:
    """Short-term gains are taxed as ordinary income, at the marginal rate."""
    return marginal_rate


def rate_for(term: Term | str, marginal_rate: Decimal) -> Decimal:
    return long_term_rate(marginal_rate) if Term(term) == Term.LONG else short_term_rate(marginal_rate)


# ---------------------------------------------------------------------------------------------- lot order


@dataclass(frozen=True)
class OpenLot:
    """What the lot order needs of a lot: ``quantity`` is what remains, ``holding_start`` decides the term."""

    id: int
    quantity: Decimal
    cost_per_share: Decimal
    acquired_on: date
    holding_start: date


def tax_min_category(lot: OpenLot, price: Decimal, sale_date: date) -> int:
    """0: a loss at ``price``; 1: a long-term gain (or no gain); 2: a short-term gain (or no gain)."""
    if price < lot.cost_per_share:
        return 0
    return 1 if gain_term(lot.holding_start, sale_date) == Term.LONG else 2


def lot_sort_key(lot: OpenLot, method: Method | str, price: Decimal, sale_date: date) -> tuple[object, ...]:
    """The key that orders lots for a sell; the lot id last makes it a total order.

    ``tax_min``: losses, then long-term gains, then short-term gains; within each, highest cost per share first,
    then the oldest, then the lowest id. ``hifo``: highest cost first, then oldest, then id. ``fifo``: oldest
    first, then id. (The rebalancing engine ranks lots by exactly this rule when it plans a sell.)
    """
    method = Method(method)
    if method == Method.FIFO:
        return (lot.acquired_on, lot.id)
    if method == Method.HIFO:
        return (-lot.cost_per_share, lot.acquired_on, lot.id)
    return (tax_min_category(lot, price, sale_date), -lot.cost_per_share, lot.acquired_on, lot.id)


def lots_in_sale_order(lots: Iterable[OpenLot], method: Method | str, price: Decimal, sale_date: date) -> list[OpenLot]:
    return sorted(lots, key=lambda lot: lot_sort_key(lot, method, price, sale_date))


def select_lots(
    lots: Sequence[OpenLot],
    quantity: Decimal,
    *,
    method: Method | str,
    price: Decimal,
    sale_date: date,
    planned: Sequence[tuple[int, Decimal]] = (),
) -> list[tuple[int, Decimal]]:
    """Which lots a sell of ``quantity`` shares takes, and how many shares from each: ``[(lot id, shares)]``.

    The planned picks come first (specific identification), each capped at what its lot still holds and at what
    remains to sell; picks of lots that are not open are ignored. Whatever remains follows ``method``. A lot
    appears once in the result. Selling more than the lots hold is the caller's error.
    """
    held = {lot.id: lot.quantity for lot in lots}
    taken: dict[int, Decimal] = {}
    remaining = quantity
    for lot_id, wanted in planned:
        if remaining <= 0:
            break
        available = held.get(lot_id, ZERO) - taken.get(lot_id, ZERO)
        take = min(wanted, available, remaining)
        if take > 0:
            taken[lot_id] = taken.get(lot_id, ZERO) + take
            remaining -= take
    for lot in lots_in_sale_order(lots, method, price, sale_date):
        if remaining <= 0:
            break
        take = min(lot.quantity - taken.get(lot.id, ZERO), remaining)
        if take > 0:
            taken[lot.id] = taken.get(lot.id, ZERO) + take
            remaining -= take
    if remaining > 0:
        raise ValueError(f"the lots hold {quantity - remaining} shares, {quantity} to sell")
    return list(taken.items())


# ---------------------------------------------------------------------------------------------- realized gains


def allocate_cents(total: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """Split ``total`` (whole cents) in proportion to ``weights`` (>= 0, not all zero) into whole cents.

    Each part is first rounded down; the cents left over go one each to the parts with the largest remainders
    (ties to the earlier part), so the parts add up to ``total`` exactly.
    """
    if total != total.quantize(CENT):
        raise ValueError(f"{total} is not whole cents")
    weight_sum = sum(weights, ZERO)
    if weight_sum <= 0 or any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative and not all zero")
    units = int(total / CENT)
    exact = [Decimal(units) * w / weight_sum for w in weights]
    floors = [int(e.to_integral_value(rounding=ROUND_DOWN)) for e in exact]
    left = units - sum(floors)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in by_remainder[:left]:
        floors[i] += 1
    return [Decimal(f) * CENT for f in floors]


@dataclass(frozen=True)
class Realized:
    """Shares of one lot sold: what they brought, what they cost, and the gain (negative: a loss)."""

    quantity: Decimal
    proceeds: Decimal
    cost_basis: Decimal

    @property
    def gain(self) -> Decimal:
        return self.proceeds - self.cost_basis

    @property
    def loss_per_share(self) -> Decimal:
        """The loss per share (positive), unrounded; zero for a gain."""
        return -self.gain / self.quantity if self.gain < 0 else ZERO


def cost_basis(quantity: Decimal, cost_per_share: Decimal) -> Decimal:
    return cents(quantity * cost_per_share)


def realize(picks: Sequence[tuple[Decimal, Decimal]], net_proceeds: Decimal) -> list[Realized]:
    """One ``Realized`` per ``(shares, cost per share)`` pick: basis to the cent, the sell's net proceeds (gross
    less the trading cost, in cents) allocated by shares so the parts add up to it."""
    proceeds = allocate_cents(net_proceeds, [shares for shares, _ in picks])
    return [
        Realized(quantity=shares, proceeds=part, cost_basis=cost_basis(shares, cps))
        for (shares, cps), part in zip(picks, proceeds, strict=True)
    ]


def washed_loss(realized: Realized, washed_shares: Decimal) -> Decimal:
    """The part of a loss the wash-sale rule disallows: washed shares times the loss per share, to the cent.

    All of the loss when every share is washed (no rounding left behind).
    """
    if realized.gain >= 0 or washed_shares <= 0:
        return ZERO
    if washed_shares >= realized.quantity:
        return -realized.gain
    return cents(washed_shares * -realized.gain / realized.quantity)


def split_realized(realized: Realized, washed_shares: Decimal) -> tuple[Realized, Realized]:
    """Split a loss into the washed shares and the rest; quantities, proceeds, bases and gains add up exactly.

    The washed part's loss is ``washed_loss``; its basis is the basis pro rata (to the cent), and its proceeds
    follow from the two.
    """
    if not ZERO < washed_shares < realized.quantity:
        raise ValueError(f"cannot split {washed_shares} of {realized.quantity} shares")
    loss = washed_loss(realized, washed_shares)
    basis = cents(realized.cost_basis * washed_shares / realized.quantity)
    washed = Realized(quantity=washed_shares, proceeds=basis - loss, cost_basis=basis)
    rest = Realized(
        quantity=realized.quantity - washed_shares,
        proceeds=realized.proceeds - washed.proceeds,
        cost_basis=realized.cost_basis - basis,
    )
    return washed, rest


# ---------------------------------------------------------------------------------------------- wash sales


def wash_group(ticker: str, tracks_index: str) -> str:
    """Funds tracking the same index are substantially identical; a fund with no index listed only to itself."""
    return f"index:{tracks_index}" if tracks_index else f"ticker:{ticker}"


def in_wash_window(sold_on: date, acquired_on: date) -> bool:
    return abs((acquired_on - sold_on).days) <= WASH_SALE_WINDOW_DAYS


@dataclass(frozen=True)
class LossSale:
    """Loss shares not yet matched to a replacement: ``key`` names the sale, ``lot`` the lot it sold from."""

    key: int
    lot: int
    group: str
    sold_on: date
    shares: Decimal


@dataclass(frozen=True)
class Purchase:
    """Shares bought (``key``: the lot) that may still replace washed shares: ``shares`` not yet used."""

    key: int
    group: str
    acquired_on: date
    shares: Decimal


@dataclass(frozen=True)
class WashMatch:
    sale: int
    purchase: int
    shares: Decimal


def wash_matches(sales: Iterable[LossSale], purchases: Iterable[Purchase]) -> list[WashMatch]:
    """Match loss shares to replacement shares of the same group bought within 30 days before or after.

    Sales are taken in date order (then key), and each takes the earliest purchases first (then key): replacement
    shares in the order they were acquired. A sale is never replaced by the lot it sold. Each match washes
    ``min(loss shares still unmatched, replacement shares still unused)``, so no side is ever used twice.
    """
    distinct: dict[int, Purchase] = {}
    for purchase in purchases:
        distinct.setdefault(purchase.key, purchase)
    unused = {key: p.shares for key, p in distinct.items()}
    ordered = sorted(distinct.values(), key=lambda p: (p.acquired_on, p.key))
    matches: list[WashMatch] = []
    for sale in sorted(sales, key=lambda s: (s.sold_on, s.key)):
        remaining = sale.shares
        for purchase in ordered:
            if remaining <= 0:
                break
            if purchase.group != sale.group or purchase.key == sale.lot:
                continue
            if not in_wash_window(sale.sold_on, purchase.acquired_on) or unused[purchase.key] <= 0:
                continue
            shares = min(remaining, unused[purchase.key])
            unused[purchase.key] -= shares
            remaining -= shares
            matches.append(WashMatch(sale=sale.key, purchase=purchase.key, shares=shares))
    return matches


def raised_cost_per_share(cost_per_share: Decimal, disallowed: Decimal, shares_held: Decimal) -> Decimal:
    """A replacement lot's cost per share once a disallowed loss is added to its basis (spread over its shares)."""
    if shares_held <= 0:
        raise ValueError("a lot that holds no shares cannot carry a basis adjustment")
    return per_share(cost_per_share + disallowed / shares_held)
