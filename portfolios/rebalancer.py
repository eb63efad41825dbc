"""Drift check and tax-aware trade generation for many accounts at once (pure: numpy, no Django).

``rebalance_plan(universe, targets, book, policy, today)`` takes flat arrays for a whole book (a million accounts
fit in memory) and returns a ``Plan``: per account a status, the reasons (a trigger bitmask), the drift report,
and the proposed trades with the tax lots each sell takes. There is no per-account Python loop: every step is a
numpy pass over all accounts, lots or positions (per-class arithmetic loops over the K classes, and the lot walk
over the at most L lots of one class of one account). ``exact_trades`` turns one account's planned trades into
exact ``Decimal`` trades, rounded as the broker books them; the pipeline calls it only for accounts that trade.
``portfolios.rebalancer_reference`` implements the same rules one account at a time; the tests hold the two to
equality.

Money here is float64 dollars (analytics); days are ``date.toordinal()`` integers. Exactness comes at the
boundary (``exact_trades``).

Inputs
------
``UniverseArrays`` (A funds, K classes): ``tickers`` [A], ``asset_class`` [A] (0..K-1), ``class_codes`` [K],
``wash_group`` [A] (equal ids: substantially identical funds, that is the same tracked index), ``substitute`` [A]
(the harvest substitute's index, in the same class, or -1), ``price`` [A] (today's close; nan: no price).

``TargetArrays`` (T targets, shared by many accounts): ``weights`` [T, K] class weights summing to 1,
``buy_asset`` [T, K] the fund that buys each class (-1: none, it must be of that class), ``allowed`` [T, A] the
funds the target may buy (its exclusions and the restricted list removed).

``BookArrays`` (N accounts, M lots): per account ``account_id``, ``owner`` (the investor: the wash-sale scope),
``taxable``, ``lot_method`` (``TAX_MIN`` 0, ``HIFO`` 1, ``FIFO`` 2), ``short_rate`` and ``long_rate`` (0 for
IRAs), ``cash``, ``withdrawal`` (still to pay out), ``target`` (row of TargetArrays, -1 none). Per lot, sorted by
account row and then by fund (``ORDER BY account, asset``; any order within a fund), quantities > 0:
``lot_account`` (row), ``lot_id``, ``lot_asset``, ``lot_quantity``, ``lot_basis`` (per share, wash-sale
adjustments included), ``lot_acquired`` (day), ``lot_long_from`` (first day a sale is long-term, from the
holding start with real calendar arithmetic). Wash-sale state per owner, as keys ``owner * G + wash_group``
(G = ``UniverseArrays.group_count``): ``loss_sold`` (the owner sold the group at a loss in a taxable account in
the last 30 days: buying it now washes that loss) and ``recent_buys`` (the owner bought the group in the last 30
days: selling it at a loss now is washed).

``EnginePolicy``: the ``RebalancingPolicy`` fields as floats plus ``cost_rate`` (``EnginePolicy.from_policy``).

The rules (the reference implements them identically)
-----------------------------------------------------
1. *Value and drift.* V = cash + sum(lot quantity x price); class value, weight w = value / V, the cash weight;
   t from the target; drift d = w - t; band b = min(band_absolute, band_relative x t). A class is out of band
   when |d| > b and |d| x V >= min_trade (dust never triggers). Total drift = (sum |d| + cash weight) / 2 (cash
   as a class with target 0). Per fund (``position_*``): holding weight minus the target weight of that fund
   (the class weight for the class's buy fund, else 0). Rebalancing acts on classes.
   Status first: ``NO_PRICE`` (a held fund has no price), ``EMPTY`` (V <= 0), ``NO_TARGET``; the others plan.
2. *Triggers.* ``DRIFT`` a class out of band; ``CASH`` cash minus pending withdrawal above both
   cash_threshold_amount and cash_threshold_weight x V; ``WITHDRAWAL`` the withdrawal exceeds the cash.
3. *Lot order* (shared with the broker's scalar rule): ``tax_min`` takes category 0 = loss lots (price < basis),
   1 = long-term gain lots (today >= long_from), 2 = short-term gain lots, each by highest basis, then oldest
   acquired, then lowest lot id; the engine alone moves a loss lot whose group the owner bought in the last 30
   days (``recent_buys``: the loss would be disallowed) to category 1. ``hifo``: highest basis, oldest, id.
   ``fifo``: oldest, id. A class sell walks the lots of all its funds in this order, "highest basis" read as
   the highest basis / price: within one fund exactly the broker's order, across funds the largest loss (or
   smallest gain) per dollar sold first.
4. *Harvest* (taxable accounts, first). Candidates: lots with price < basis, loss / basis >=
   harvest_loss_fraction and loss x quantity >= harvest_loss_minimum, whose fund has a substitute with a price,
   allowed by the target, in another wash group; neither the fund's group in the owner's ``loss_sold`` or
   ``recent_buys`` nor the substitute's group in ``loss_sold``. H1 = the groups of all candidates, per owner.
   A candidate is harvested unless its substitute's group is in H1 (the owner sells it at a loss today): the
   whole lot is sold (one trade per fund, dropped under min_trade), and the net proceeds, net of the buy's cost
   too, buy the substitute (one buy per substitute; the pair is dropped if the buy is under min_trade).
5. *Switch back.* A position in fund X, where X is the substitute of its class's buy fund B (so X is not B), B
   priced, allowed, in another group and not blocked (below), the class did not harvest in this plan, every lot
   of X acquired at least switch_back_days ago and, in a taxable account, X's total gain at most
   switch_back_max_gain (losses are fine; IRAs regardless), and no ``WITHDRAWAL`` (the withdrawal's walk sells X
   like any fund instead, and the switch back waits): sell all of X, buy B with the net proceeds (both
   purpose ``switch_back``; the pair needs both sides >= min_trade).
6. *Blocking and buy funds.* Phase 1: blocked groups B1 = ``loss_sold`` + H1 per owner. A class's buy fund is
   the target's buy fund if priced, allowed and not blocked, else its substitute if so, else none. Phase 2,
   after every sell is known: B2 = ``loss_sold`` + the group of every lot sold at a loss in any of the owner's
   taxable accounts in this plan (IRAs included as buyers: all the owner's accounts). A pair whose buy is in
   B2 is dropped whole (``NO_BUY_FUND``: its lots stay, this plan sells them no other way); a class buy
   is re-pointed with B2 and dropped (``NO_BUY_FUND``, the cash stays) if no fund is left or the fund is
   sold in the account in this plan. Both phases only remove purchases (and the sells of dropped pairs), so
   no purchase of a blocked group survives and loss sales never grow after B2 is taken: no iteration.
7. *Cash flows* (only with ``DRIFT``, ``CASH`` or ``WITHDRAWAL``). V' = V - withdrawal. If ``DRIFT`` or
   ``CASH`` and C = cash - withdrawal > 0: spend C / (1 + cost_rate) filling the shortfalls max(t V' - value,
   0) of the buyable classes in proportion, and any remainder in proportion to their targets; a class's
   cash buy under min_trade is not made (step 10 would drop it), its cash stays for step 8. If
   ``WITHDRAWAL``: raise G = (withdrawal - cash + CASH_MARGIN) / (1 - cost_rate) gross from the classes in
   excess of t V', in proportion to the excess (capped at each class's sellable value), any shortfall from the
   remaining sellable value in proportion. Sellable lots: not harvested, not switched back, not of a fund
   bought in this plan.
8. *Sell-to-rebalance* on the state after the flows (values x, cash c2, value V2), if a class is still out of
   band. With k = rebalance_to: sell each class above its band (and not bought in step 7) down to t + k b;
   buy each buyable class below its band (and not sold in step 7) up to t - k b; a trade under the rebalance
   minimum m = (min_trade + CASH_MARGIN) (1 + cost_rate) / (1 - cost_rate) (``rebalance_minimum``: a sell of
   m pays for a buy that clears min_trade after both costs and the roundings) is raised to m, but never past
   the target (at most |x - t V2|: the class is out of band by at least min_trade, so its trade clears
   min_trade; it ends between the rebalance point and the target, inside the band). If the proceeds plus max(c2,
   0) do not pay for the buys and their costs, sell more from the classes above their target in proportion to
   their excess (down to t at most), then from any class above t - k b in proportion to the room (down to
   t - k b at most), never buying and selling one class; then scale the buys to the cash.
   *Why this reaches the band when cash and costs allow.* Let U be the classes below t - b. If every class has
   sellable lots and every class in U a buy fund, the cash from selling every other class down to (t - k b)
   V2 is sum_{not U} (x - (t - k b) V2) + c2 = V2 - sum_U x - sum_{not U} (t - k b) V2 >= sum_U ((t - k b)
   V2 - x) (the targets sum to 1 and k b >= 0), which is what the buys need: so the buys are never scaled when
   the costs (cost_rate x turnover, plus flooring) fit in the unused slack. Then every sold class ends in
   [t - k b, t + k b] (step 1 sells to t + k b or, raised to the minimum, between it and t; the extra sells
   stop at t or t - k b), every bought class between t - k b and t, and the untouched classes were in band:
   all inside [t - b, t + b] since k <= 1.
9. *Short-term gains* (taxable). If the step-8 sells would realize a net short-term gain above
   short_term_gain_limit and no class is beyond hard_band_multiple x its band, step 8 is planned again
   without short-term gain lots (``SHORT_TERM_REDUCED``); if a buyable class would then stay out of band,
   step 8 is dropped (``SHORT_TERM_DEFERRED``; status ``DEFERRED`` unless other trades remain).
10. *Quantities.* Class sells walk the lots in order until the dollars are raised (the withdrawal's first,
   then step 8's on what remains). If step 8's walk of a class sells from two funds or more and one fund's
   part (its dollars summed in walk order) is under min_trade, that class's step-8 dollars are walked again
   over the lots of one fund only: the class's fund with the most value left after the withdrawal's walk
   (the lowest index on a tie), if it holds at least those dollars (else the split stays); step 9 judges the
   walk so made. Step 9's reduced walk is not so concentrated, nor the withdrawal's. A lot taken whole sells
   its exact quantity, a partial one is floored to 1e-6 shares; one sell trade per fund (purpose
   ``withdrawal`` if the withdrawal took from it, else ``rebalance``), dropped under min_trade (the withdrawal's
   and step 8's parts of one fund add up first). Buys: quantity = dollars / price floored to 1e-6, dropped under
   min_trade; class buys (``cash``, or ``rebalance`` if step 8 bought the class) are scaled so they never
   spend more than cash - withdrawal + the class sells' net proceeds. Costs: cost_rate x notional per trade.
   Realized gains per lot sale; estimated tax = short gains x short_rate + long gains x long_rate.

Outputs (``Plan``)
------------------
Per account [N]: ``status`` (``STATUS_*``), ``trigger`` (``TRIGGER_*`` bits), ``value``, ``weights`` [N, K],
``cash_weight``, ``drift`` [N, K], ``band`` [N, K], ``total_drift``, ``realized_short``, ``realized_long``,
``harvested_loss`` (losses realized, >= 0), ``estimated_tax`` (negative: tax saved), ``trade_start`` [N + 1].
Trades, grouped by account (sells first, then buys; ``TRADE_ORDER``): ``trade_account``, ``trade_asset``,
``trade_side`` (+1 buy, -1 sell), ``trade_quantity`` (> 0, on the 1e-6 grid), ``trade_amount`` (quantity x
price), ``trade_purpose`` (index into ``PURPOSES``, the strings of ``portfolios.models.TradePurpose``),
``trade_link`` (a harvest or switch-back sell: the index of the buy it pays for, else -1), ``sale_start``.
Lot sales, grouped by trade in the order they are taken: ``sale_trade``, ``sale_lot`` (index into the M lots),
``sale_lot_id``, ``sale_quantity``, ``sale_gain`` (dollars, negative: a loss), ``sale_long``. Positions (one per
held fund): ``position_account``, ``position_asset``, ``position_value``, ``position_drift`` (nan where the
account has no value or a fund has no price). Helpers: ``Plan.account_trades(row)``, ``Plan.trade_sales(j)``,
``Plan.count_by_status()``, ``Plan.count_by_trigger()``; ``cents(x)`` turns a float dollar figure (a gain, a
tax) into ``Decimal`` cents.

The exact boundary
------------------
``exact_trades(plan, row, tickers=, lots={lot id: Decimal shares}, holdings={ticker: Decimal shares},
cash=, prices={ticker: Decimal}, cost_rate=, min_trade=, reserve=)`` returns ``PlannedTrade`` records (a
``portfolios.rebalance.ProposedTrade`` with ``purpose``, ``lots`` = ``LotPick(lot_id, quantity)`` and the plan's
trade index), sells first. See its docstring for the guarantees; the pipeline calls it per trading account with
the account's current Decimal state, so a lot or a cash balance that moved since the arrays were read is
respected. It performs the Decimal steps of ``rebalancer_reference.exact_trades_reference`` (the boundary as first
written, its oracle: the tests hold the two equal, Decimal representation included) without their Python
overheads; the plan's columns it reads are turned into Python lists once per plan (``Plan.boundary_view``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from functools import cached_property

import numpy as np
import numpy.typing as npt

from .policy import RebalancingPolicy
from .rebalance import (
    CENT,
    ZERO,
    ProposedTrade,
    buy_cash_effect,
    floor_cents,
    floor_shares,
    trading_cost,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

TAX_MIN, HIFO, FIFO = 0, 1, 2
LOT_METHODS = ("tax_min", "hifo", "fifo")  # codes of portfolios.models.LotMethod, in this order

STATUS_EMPTY, STATUS_NO_TARGET, STATUS_NO_PRICE, STATUS_IN_BAND, STATUS_TRADE, STATUS_DEFERRED = range(6)
STATUSES = ("empty", "no_target", "no_price", "in_band", "trade", "deferred")  # IN_BAND: nothing to trade

TRIGGER_DRIFT = 1
TRIGGER_CASH = 2
TRIGGER_WITHDRAWAL = 4
TRIGGER_HARVEST = 8
TRIGGER_SWITCH_BACK = 16
TRIGGER_SHORT_TERM_REDUCED = 32
TRIGGER_SHORT_TERM_DEFERRED = 64
TRIGGER_NO_BUY_FUND = 128
TRIGGERS = {
    TRIGGER_DRIFT: "drift",
    TRIGGER_CASH: "cash",
    TRIGGER_WITHDRAWAL: "withdrawal",
    TRIGGER_HARVEST: "harvest",
    TRIGGER_SWITCH_BACK: "switch_back",
    TRIGGER_SHORT_TERM_REDUCED: "short_term_reduced",
    TRIGGER_SHORT_TERM_DEFERRED: "short_term_deferred",
    TRIGGER_NO_BUY_FUND: "no_buy_fund",
}

# The strings of portfolios.models.TradePurpose, in its order (replicated: this module knows no Django).
PURPOSES = ("rebalance", "cash", "harvest", "substitute", "switch_back", "withdrawal")
(
    PURPOSE_REBALANCE,
    PURPOSE_CASH,
    PURPOSE_HARVEST,
    PURPOSE_SUBSTITUTE,
    PURPOSE_SWITCH_BACK,
    PURPOSE_WITHDRAWAL,
) = range(6)
BUY, SELL = 1, -1
# Order of an account's trades: sells (harvest, switch back, class sells), then buys (substitute, switch back,
# class buys); within one code by fund. Each (account, code, fund) is one trade.
TRADE_ORDER: dict[tuple[int, int], int] = {
    (SELL, PURPOSE_HARVEST): 0,
    (SELL, PURPOSE_SWITCH_BACK): 1,
    (SELL, PURPOSE_WITHDRAWAL): 2,
    (SELL, PURPOSE_REBALANCE): 2,
    (BUY, PURPOSE_SUBSTITUTE): 3,
    (BUY, PURPOSE_SWITCH_BACK): 4,
    (BUY, PURPOSE_CASH): 5,
    (BUY, PURPOSE_REBALANCE): 5,
}
ORDER_CODES = 6

SHARE_STEP = 1e-6
# A withdrawal raises this much more than it needs: the exact boundary floors each sell's notional to the cent
# and rounds its cost up, and the quantities down to the share step.
CASH_MARGIN = 1.0


def rebalance_minimum(policy: EnginePolicy) -> float:
    """Rule 8's smallest class trade: a sell of it pays, after both trades' costs, for a buy of min_trade plus
    CASH_MARGIN (which absorbs the flooring to the share step and the boundary's cent rounding)."""
    return (policy.min_trade + CASH_MARGIN) * (1 + policy.cost_rate) / (1 - policy.cost_rate)


def floor_step(quantity: float) -> float:
    """Shares rounded down to the broker's 1e-6 step (a hair of slack so 3e-6 stays 3e-6)."""
    if not quantity > 0:
        return 0.0
    return math.floor(quantity * 1e6 + 1e-6) / 1e6


def _floor_step(quantity: FloatArray) -> FloatArray:
    floored: FloatArray = np.floor(quantity * 1e6 + 1e-6) / 1e6
    return np.where(quantity > 0, floored, 0.0)


# --- inputs --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UniverseArrays:
    tickers: Sequence[str]
    asset_class: IntArray
    class_codes: Sequence[str]
    wash_group: IntArray
    substitute: IntArray
    price: FloatArray

    @property
    def group_count(self) -> int:
        return int(self.wash_group.max()) + 1 if len(self.wash_group) else 1


@dataclass(frozen=True)
class TargetArrays:
    weights: FloatArray
    buy_asset: IntArray
    allowed: BoolArray


@dataclass(frozen=True)
class BookArrays:
    account_id: IntArray
    owner: IntArray
    taxable: BoolArray
    lot_method: npt.NDArray[np.int8]
    short_rate: FloatArray
    long_rate: FloatArray
    cash: FloatArray
    withdrawal: FloatArray
    target: IntArray
    lot_account: IntArray
    lot_id: IntArray
    lot_asset: IntArray
    lot_quantity: FloatArray
    lot_basis: FloatArray
    lot_acquired: IntArray
    lot_long_from: IntArray
    loss_sold: IntArray
    recent_buys: IntArray


@dataclass(frozen=True)
class EnginePolicy:
    band_absolute: float = 0.05
    band_relative: float = 0.25
    rebalance_to: float = 0.5
    min_trade: float = 50.0
    cash_threshold_amount: float = 100.0
    cash_threshold_weight: float = 0.01
    harvest_loss_fraction: float = 0.05
    harvest_loss_minimum: float = 100.0
    switch_back_days: int = 31
    switch_back_max_gain: float = 50.0
    short_term_gain_limit: float = 500.0
    hard_band_multiple: float = 2.0
    cost_rate: float = 0.0005

    @classmethod
    def from_policy(cls, policy: RebalancingPolicy, *, cost_rate: Decimal | float) -> EnginePolicy:
        return cls(
            band_absolute=float(policy.band_absolute),
            band_relative=float(policy.band_relative),
            rebalance_to=float(policy.rebalance_to),
            min_trade=float(policy.min_trade),
            cash_threshold_amount=float(policy.cash_threshold_amount),
            cash_threshold_weight=float(policy.cash_threshold_weight),
            harvest_loss_fraction=float(policy.harvest_loss_fraction),
            harvest_loss_minimum=float(policy.harvest_loss_minimum),
            switch_back_days=int(policy.switch_back_days),
            switch_back_max_gain=float(policy.switch_back_max_gain),
            short_term_gain_limit=float(policy.short_term_gain_limit),
            hard_band_multiple=float(policy.hard_band_multiple),
            cost_rate=float(cost_rate),
        )


def validate_inputs(
    universe: UniverseArrays, targets: TargetArrays, book: BookArrays, *, lot_order: bool = True
) -> None:
    """Refuse inputs the rules do not cover, naming the first problem (cheap vectorised checks)."""
    A = len(universe.tickers)
    K = len(universe.class_codes)
    N = len(book.account_id)
    M = len(book.lot_account)
    problems: list[str] = []
    if not all(len(a) == A for a in (universe.asset_class, universe.wash_group, universe.substitute, universe.price)):
        problems.append("universe arrays differ in length")
    elif A and (universe.asset_class.min() < 0 or universe.asset_class.max() >= K):
        problems.append("asset_class out of range")
    else:
        has_sub = universe.substitute >= 0
        if np.any(universe.substitute >= A) or np.any(
            universe.asset_class[universe.substitute[has_sub]] != universe.asset_class[has_sub]
        ):
            problems.append("a substitute must be a fund of the same class")
        priced = ~np.isnan(universe.price)
        if np.any(universe.price[priced] <= 0):
            problems.append("prices must be positive (nan: no price)")
    if targets.weights.ndim != 2 or targets.weights.shape[1] != K or targets.buy_asset.shape != targets.weights.shape:
        problems.append("target weights and buy_asset must be [T, K]")
    elif targets.weights.size and (
        np.any(targets.weights < 0) or np.any(np.abs(targets.weights.sum(axis=1) - 1) > 1e-6)
    ):
        problems.append("target weights must be >= 0 and sum to 1")
    elif targets.allowed.shape != (targets.weights.shape[0], A):
        problems.append("target allowed must be [T, A]")
    elif targets.buy_asset.size and (
        targets.buy_asset.max() >= A
        or np.any(
            universe.asset_class[targets.buy_asset[targets.buy_asset >= 0]] != np.nonzero(targets.buy_asset >= 0)[1]
        )
    ):
        problems.append("a target's buy fund must be a fund of its class")
    per_account = (book.owner, book.taxable, book.lot_method, book.short_rate, book.long_rate, book.cash)
    if not all(len(a) == N for a in (*per_account, book.withdrawal, book.target)):
        problems.append("account arrays differ in length")
    elif N and (np.any(book.cash < 0) or np.any(book.withdrawal < 0)):
        problems.append("cash and withdrawals must not be negative")
    elif N and (book.target.max() >= targets.weights.shape[0] or book.target.min() < -1):
        problems.append("target out of range")
    per_lot = (book.lot_id, book.lot_asset, book.lot_quantity, book.lot_basis, book.lot_acquired, book.lot_long_from)
    if not all(len(a) == M for a in per_lot):
        problems.append("lot arrays differ in length")
    elif M:
        if book.lot_account.min() < 0 or book.lot_account.max() >= N:
            problems.append("lot_account out of range")
        elif lot_order and not _lots_sorted(book.lot_account * max(A, 1) + book.lot_asset):
            problems.append(LOT_ORDER_PROBLEM)
        elif not np.all(book.lot_quantity > 0) or np.any(book.lot_basis < 0):
            problems.append("lot quantities must be positive and bases not negative")
    if problems:
        raise ValueError("; ".join(problems))


LOT_ORDER_PROBLEM = "lots must be sorted by account row, then fund"


def _lots_sorted(key: IntArray) -> bool:
    return not bool(np.any(key[1:] < key[:-1]))


# --- output --------------------------------------------------------------------------------------------


def _f(values: object) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


def _i(values: object) -> IntArray:
    return np.asarray(values, dtype=np.int64)


@dataclass(frozen=True)
class Plan:
    status: npt.NDArray[np.int8]
    trigger: npt.NDArray[np.int16]
    value: FloatArray
    weights: FloatArray
    cash_weight: FloatArray
    drift: FloatArray
    band: FloatArray
    total_drift: FloatArray
    trade_account: IntArray
    trade_asset: IntArray
    trade_side: npt.NDArray[np.int8]
    trade_quantity: FloatArray
    trade_amount: FloatArray
    trade_purpose: npt.NDArray[np.int8]
    trade_link: IntArray
    sale_trade: IntArray
    sale_lot: IntArray
    sale_lot_id: IntArray
    sale_quantity: FloatArray
    sale_gain: FloatArray
    sale_long: BoolArray
    realized_short: FloatArray
    realized_long: FloatArray
    harvested_loss: FloatArray
    estimated_tax: FloatArray
    trade_start: IntArray = field(default_factory=lambda: _i([0]))
    sale_start: IntArray = field(default_factory=lambda: _i([0]))
    position_account: IntArray = field(default_factory=lambda: _i([]))
    position_asset: IntArray = field(default_factory=lambda: _i([]))
    position_value: FloatArray = field(default_factory=lambda: _f([]))
    position_drift: FloatArray = field(default_factory=lambda: _f([]))

    @classmethod
    def build(cls, *, classes: int, **values: object) -> Plan:
        """A plan from plain sequences (the reference's output); offsets are derived."""
        n = len(values["status"])  # type: ignore[arg-type]
        ints = {"trade_account", "trade_asset", "trade_link", "sale_trade", "sale_lot", "sale_lot_id"}
        arrays: dict[str, np.ndarray] = {}
        for name, raw in values.items():
            if name in ints:
                arrays[name] = _i(raw)
            elif name == "status":
                arrays[name] = np.asarray(raw, dtype=np.int8)
            elif name == "trigger":
                arrays[name] = np.asarray(raw, dtype=np.int16)
            elif name in ("trade_side", "trade_purpose"):
                arrays[name] = np.asarray(raw, dtype=np.int8)
            elif name == "sale_long":
                arrays[name] = np.asarray(raw, dtype=np.bool_)
            else:
                arrays[name] = _f(raw)
        for name in ("weights", "drift", "band"):
            arrays[name] = arrays[name].reshape(n, classes)
        arrays["trade_start"] = _offsets(arrays["trade_account"], n)
        arrays["sale_start"] = _offsets(arrays["sale_trade"], len(arrays["trade_account"]))
        return cls(**arrays)

    @cached_property
    def boundary_view(self) -> BoundaryView:
        """The columns ``exact_trades`` reads, as Python lists (built on first use, once per plan): indexing a
        numpy array one element at a time costs more than the Decimal work it feeds."""
        return BoundaryView(
            trade_start=self.trade_start.tolist(),
            trade_asset=self.trade_asset.tolist(),
            trade_side=self.trade_side.tolist(),
            trade_quantity=self.trade_quantity.tolist(),
            trade_purpose=self.trade_purpose.tolist(),
            trade_link=self.trade_link.tolist(),
            sale_start=self.sale_start.tolist(),
            sale_lot_id=self.sale_lot_id.tolist(),
            sale_quantity=self.sale_quantity.tolist(),
            trade_micro=_grid_micro(self.trade_quantity),
            sale_micro=_grid_micro(self.sale_quantity),
        )

    def account_trades(self, row: int) -> range:
        return range(int(self.trade_start[row]), int(self.trade_start[row + 1]))

    def trade_sales(self, trade: int) -> range:
        return range(int(self.sale_start[trade]), int(self.sale_start[trade + 1]))

    def count_by_status(self) -> dict[str, int]:
        counts = np.bincount(self.status, minlength=len(STATUSES))
        return {name: int(counts[i]) for i, name in enumerate(STATUSES)}

    def count_by_trigger(self) -> dict[str, int]:
        return {name: int(np.count_nonzero(self.trigger & bit)) for bit, name in TRIGGERS.items()}


@dataclass(frozen=True, slots=True)
class BoundaryView:
    trade_start: list[int]
    trade_asset: list[int]
    trade_side: list[int]
    trade_quantity: list[float]
    trade_purpose: list[int]
    trade_link: list[int]
    sale_start: list[int]
    sale_lot_id: list[int]
    sale_quantity: list[float]
    trade_micro: list[int]  # the quantity in micro-shares if it is a float of the 1e-6 grid, else 0
    sale_micro: list[int]


def _offsets(sorted_owner: IntArray, count: int) -> IntArray:
    return np.searchsorted(sorted_owner, np.arange(count + 1)).astype(np.int64)


# --- engine helpers ------------------------------------------------------------------------------------


def _sums(keys: IntArray, weights: FloatArray, count: int) -> FloatArray:
    """Sum of ``weights`` per key, added in input order (a running sum from 0, as the reference adds)."""
    sums: FloatArray = np.bincount(keys, weights, minlength=count).astype(np.float64, copy=False)
    return sums


def _seqsum(columns: FloatArray) -> FloatArray:
    """Row sums of [n, K], added left to right (as the reference does; np.sum would pair them differently:
    a cumulative sum is sequential, and contiguous along the rows)."""
    if columns.shape[1] == 0:
        return np.zeros(columns.shape[0])
    total: FloatArray = np.cumsum(columns, axis=1)[:, -1]
    return total


def _member(keys: IntArray, sorted_keys: IntArray) -> BoolArray:
    if len(sorted_keys) == 0:
        return np.zeros(keys.shape, dtype=np.bool_)
    at = np.searchsorted(sorted_keys, keys)
    at[at == len(sorted_keys)] = 0
    found: BoolArray = sorted_keys[at] == keys
    return found


def _segments(starts: IntArray, lengths: IntArray) -> IntArray:
    """The indices start[i] .. start[i] + length[i] - 1 of every segment, concatenated."""
    total = int(lengths.sum())
    if total == 0:
        return _i([])
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    indices: IntArray = offsets + np.arange(total)
    return indices


def _group_starts(keys: IntArray) -> tuple[IntArray, IntArray]:
    """For sorted keys: (index of each run's first element, run number of every element)."""
    if len(keys) == 0:
        return _i([]), _i([])
    new = np.ones(len(keys), dtype=np.bool_)
    new[1:] = keys[1:] != keys[:-1]
    return np.flatnonzero(new), np.cumsum(new) - 1


def _walk(
    groups: IntArray, values: FloatArray, remaining: FloatArray, price: FloatArray, dollars: FloatArray
) -> tuple[FloatArray, BoolArray]:
    """Sell ``dollars[group]`` from lots already sorted by (group, walk order): (quantity sold, sold whole).

    A lot of value v, after lots worth ``before`` in its group, sells whole if dollars - before >= v, else
    (dollars - before) / price if positive. ``before`` is a running sum from 0 within each group, built rank by
    rank so that it is the same float the reference's loop adds up (a global cumsum would round differently).
    """
    n = len(groups)
    before = np.empty(n)
    if n:
        starts, run = _group_starts(groups)
        rank = np.arange(n) - starts[run]
        order = np.argsort(rank, kind="stable")
        counts = np.bincount(rank)
        running = np.zeros(len(starts))
        at = 0
        for count in counts:
            idx = order[at : at + count]
            at += count
            g = run[idx]
            before[idx] = running[g]
            running[g] = running[g] + values[idx]
    take = dollars - before
    whole = (values > 0) & (take >= values)
    partial = ~whole & (take > 0) & (values > 0)
    sold = np.where(whole, remaining, np.where(partial, take / np.where(partial, price, 1.0), 0.0))
    return sold, whole


@dataclass
class _Trades:
    """Trades under construction: parallel lists of arrays, concatenated at the end."""

    row: list[IntArray] = field(default_factory=list)
    asset: list[IntArray] = field(default_factory=list)
    side: list[IntArray] = field(default_factory=list)
    purpose: list[IntArray] = field(default_factory=list)
    quantity: list[FloatArray] = field(default_factory=list)
    amount: list[FloatArray] = field(default_factory=list)
    link_code: list[IntArray] = field(default_factory=list)  # order code * A + asset of the paired buy, or -1
    sale_trade: list[IntArray] = field(default_factory=list)  # index within the same batch
    sale_lot: list[IntArray] = field(default_factory=list)
    sale_quantity: list[FloatArray] = field(default_factory=list)
    count: int = 0

    def add(
        self,
        row: IntArray,
        asset: IntArray,
        side: int,
        purpose: IntArray,
        quantity: FloatArray,
        amount: FloatArray,
        link_code: IntArray,
        sale_trade: IntArray,
        sale_lot: IntArray,
        sale_quantity: FloatArray,
    ) -> None:
        self.row.append(row)
        self.asset.append(asset)
        self.side.append(np.full(len(row), side, dtype=np.int64))
        self.purpose.append(purpose)
        self.quantity.append(quantity)
        self.amount.append(amount)
        self.link_code.append(link_code)
        self.sale_trade.append(sale_trade + self.count)
        self.sale_lot.append(sale_lot)
        self.sale_quantity.append(sale_quantity)
        self.count += len(row)


def _cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)


class _Engine:
    def __init__(
        self, universe: UniverseArrays, targets: TargetArrays, book: BookArrays, policy: EnginePolicy, today: int
    ) -> None:
        validate_inputs(universe, targets, book, lot_order=False)  # run() checks the order on its own key
        self.policy = policy
        self.today = today
        self.A = len(universe.tickers)
        self.K = len(universe.class_codes)
        self.G = universe.group_count
        self.N = len(book.account_id)
        self.M = len(book.lot_account)
        self.price = np.asarray(universe.price, dtype=np.float64)
        self.cls = _i(universe.asset_class)
        self.grp = _i(universe.wash_group)
        self.sub = _i(universe.substitute)
        self.tw = np.asarray(targets.weights, dtype=np.float64)
        self.buy_asset = _i(targets.buy_asset)
        self.allowed = np.asarray(targets.allowed, dtype=np.bool_)
        self.book = book
        self.owner = _i(book.owner)
        self.target = _i(book.target)
        self.la = _i(book.lot_account)
        self.lasset = _i(book.lot_asset)
        self.lq = np.asarray(book.lot_quantity, dtype=np.float64)
        self.lb = np.asarray(book.lot_basis, dtype=np.float64)
        # Owner-wide wash-sale state as dense flags over (owner, group): owners renumbered 0..O-1.
        owners, self.owner_dense = np.unique(self.owner, return_inverse=True)
        self.owner_groups = len(owners) * self.G
        self.loss_sold = self.owner_flags(owners, _i(book.loss_sold))
        self.recent_buys = self.owner_flags(owners, _i(book.recent_buys))
        # Per target and class: the buy fund and its substitute, and whether each is priced and allowed.
        safe = np.maximum(self.buy_asset, 0)
        every_target = np.arange(len(self.buy_asset))[:, None]
        self.primary_ok = (
            (self.buy_asset >= 0) & ~np.isnan(self.price[safe]) & self.allowed[every_target, safe]
        )  # fmt: skip
        self.second_fund = np.where(self.buy_asset >= 0, self.sub[safe], -1)
        safe = np.maximum(self.second_fund, 0)
        self.second_ok = (self.second_fund >= 0) & ~np.isnan(self.price[safe]) & self.allowed[every_target, safe]
        self.trades = _Trades()
        self.timings: dict[str, float] = {}
        self.clock = time.perf_counter()

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.timings[phase] = self.timings.get(phase, 0.0) + now - self.clock
        self.clock = now

    def owner_flags(self, owners: IntArray, keys: IntArray) -> BoolArray:
        """Keys ``owner * G + group`` (owner ids as given) as flags over (dense owner, group)."""
        flags = np.zeros(self.owner_groups, dtype=np.bool_)
        owner, group = keys // self.G, keys % self.G
        at = np.minimum(np.searchsorted(owners, owner), max(len(owners) - 1, 0))
        known = (owners[at] == owner) if len(owners) else np.zeros(len(keys), dtype=np.bool_)
        flags[at[known] * self.G + group[known]] = True
        return flags

    def owner_key(self, rows: IntArray, assets: IntArray) -> IntArray:
        """Index into the (dense owner, group) flags."""
        key: IntArray = self.owner_dense[rows] * self.G + self.grp[assets]
        return key

    def fund_select(self, rows: IntArray, blocked: BoolArray) -> IntArray:
        """The buy fund of each class [len(rows), K] (rule 6), or -1.

        Price and target permission depend on the target only (precomputed per target); the wash-sale block
        is looked up only for the rows whose owner has any blocked group."""
        targets = self.target[rows]
        primary = self.buy_asset[targets]
        second = self.second_fund[targets]
        ok_primary = self.primary_ok[targets]
        ok_second = self.second_ok[targets]
        owners = self.owner_dense[rows]
        owner_blocked: BoolArray = np.any(blocked.reshape(-1, self.G), axis=1)
        hit = np.flatnonzero(owner_blocked[owners])
        if len(hit):
            base = owners[hit][:, None] * self.G
            ok_primary[hit] &= ~blocked[base + self.grp[np.maximum(primary[hit], 0)]]
            ok_second[hit] &= ~blocked[base + self.grp[np.maximum(second[hit], 0)]]
        fund: IntArray = np.where(ok_primary, primary, np.where(ok_second, second, -1))
        return fund

    def short_term_gain(self, lots: IntArray) -> BoolArray:
        stg: BoolArray = (self.today < _i(self.book.lot_long_from)[lots]) & (
            self.price[self.lasset[lots]] > self.lb[lots]
        )
        return stg

    # --- the passes ------------------------------------------------------------------------------------

    def run(self) -> Plan:
        p = self.policy
        book, N, K, A = self.book, self.N, self.K, self.A
        cash = np.asarray(book.cash, dtype=np.float64)
        withdrawal = np.asarray(book.withdrawal, dtype=np.float64)
        taxable = np.asarray(book.taxable, dtype=np.bool_)

        # 1. Positions, values, status.
        lot_price = self.price[self.lasset]
        lot_value = self.lq * lot_price
        lot_key = self.la * A + self.lasset
        if not _lots_sorted(lot_key):
            raise ValueError(LOT_ORDER_PROBLEM)
        pos_start, lot_pos = _group_starts(lot_key)
        del lot_key
        P = len(pos_start)
        pos_account = self.la[pos_start]
        pos_asset = self.lasset[pos_start]
        pos_value = _sums(lot_pos, lot_value, P)
        invested = _sums(pos_account, pos_value, N)
        value = cash + invested
        no_price = np.zeros(N, dtype=np.bool_)
        no_price[pos_account[np.isnan(self.price[pos_asset])]] = True
        empty = ~no_price & ~(value > 0)
        no_target = ~no_price & ~empty & (self.target < 0)
        planned = ~no_price & ~empty & ~no_target
        status = np.full(N, STATUS_IN_BAND, dtype=np.int8)
        status[no_price] = STATUS_NO_PRICE
        status[empty] = STATUS_EMPTY
        status[no_target] = STATUS_NO_TARGET
        trigger = np.zeros(N, dtype=np.int64)
        pos_class = self.cls[pos_asset]
        class_value = _sums(pos_account * K + pos_class, pos_value, N * K).reshape(N, K)
        weights = np.zeros((N, K))
        cash_weight = np.zeros(N)
        valued = ~no_price & ~empty
        np.divide(class_value, value[:, None], out=weights, where=valued[:, None])
        np.divide(cash, value, out=cash_weight, where=valued)
        drift = np.zeros((N, K))
        band = np.zeros((N, K))
        total_drift = np.zeros(N)
        rows = np.flatnonzero(planned)
        t_rows = self.tw[self.target[rows]]
        d_rows = weights[rows] - t_rows
        b_rows = np.minimum(p.band_absolute, p.band_relative * t_rows)
        drift[rows] = d_rows
        band[rows] = b_rows
        total_drift[rows] = (_seqsum(np.abs(d_rows)) + np.abs(cash_weight[rows])) / 2
        out = (np.abs(d_rows) > b_rows) & (np.abs(d_rows) * value[rows, None] >= p.min_trade)
        trigger[rows[out.any(axis=1)]] |= TRIGGER_DRIFT
        investable = cash - withdrawal
        cash_trigger = planned & (investable > p.cash_threshold_amount) & (investable > p.cash_threshold_weight * value)
        trigger[cash_trigger] |= TRIGGER_CASH
        trigger[planned & (withdrawal > cash)] |= TRIGGER_WITHDRAWAL
        self.planned = planned

        self.mark("values and drift")

        # Per-fund drift report.
        pos_target = np.zeros(P)
        pos_planned = planned[pos_account]
        pp = np.flatnonzero(pos_planned)
        pt = self.target[pos_account[pp]]
        is_buy = self.buy_asset[pt, pos_class[pp]] == pos_asset[pp]
        pos_target[pp] = np.where(is_buy, self.tw[pt, pos_class[pp]], 0.0)
        pos_valued = valued[pos_account]
        pos_value_safe = np.where(pos_valued, value[pos_account], 1.0)
        position_drift = np.where(pos_valued, pos_value / pos_value_safe - pos_target, np.nan)

        self.mark("per-fund drift")

        # 4. Harvest candidates and the owner's harvested groups H1.
        cand = np.flatnonzero(lot_price < self.lb)
        cand = cand[planned[self.la[cand]] & taxable[self.la[cand]]]
        ca = self.lasset[cand]
        crow = self.la[cand]
        cprice = lot_price[cand]
        cbasis = self.lb[cand]
        loss = cbasis - cprice
        csub = self.sub[ca]
        safe_sub = np.maximum(csub, 0)
        ok = (
            (loss / cbasis >= p.harvest_loss_fraction)
            & (loss * self.lq[cand] >= p.harvest_loss_minimum)
            & (csub >= 0)
            & ~np.isnan(self.price[safe_sub])
            & self.allowed[self.target[crow], safe_sub]
            & (self.grp[safe_sub] != self.grp[ca])
        )
        cand, ca, crow, csub = cand[ok], ca[ok], crow[ok], csub[ok]
        own_key = self.owner_key(crow, ca)
        sub_key = self.owner_key(crow, csub)
        ok = ~self.loss_sold[own_key] & ~self.recent_buys[own_key] & ~self.loss_sold[sub_key]
        cand, ca, crow, csub, own_key, sub_key = cand[ok], ca[ok], crow[ok], csub[ok], own_key[ok], sub_key[ok]
        h1 = np.zeros(self.owner_groups, dtype=np.bool_)
        h1[own_key] = True
        keep = ~h1[sub_key]
        hl, ha, hrow = cand[keep], ca[keep], crow[keep]
        blocked1 = self.loss_sold | h1

        excluded = np.zeros(self.M, dtype=np.bool_)  # lots sold whole by a pair
        bought = np.zeros(N * A, dtype=np.bool_)  # (row, fund) bought by a pair
        pair_buy_index: list[IntArray] = []  # their trade numbers in self.trades
        # Harvest sells: one per (row, fund).
        hs_start, hs_run = _group_starts(hrow * A + ha)
        hs_qty = _sums(hs_run, self.lq[hl], len(hs_start))
        hs_row, hs_asset = hrow[hs_start], ha[hs_start]
        hs_amount = hs_qty * self.price[hs_asset]
        hs_keep = hs_amount >= p.min_trade
        kept_sells = np.flatnonzero(hs_keep)
        hs_sub = self.sub[hs_asset]
        # Pairs by (row, substitute), sells in fund order within.
        pair_key = hs_row[kept_sells] * A + hs_sub[kept_sells]
        by_pair = kept_sells[np.argsort(pair_key, kind="stable")]
        pr_start, pr_run = _group_starts(hs_row[by_pair] * A + hs_sub[by_pair])
        cr = p.cost_rate
        net = _sums(pr_run, hs_amount[by_pair] * (1 - cr), len(pr_start))
        pb_row = hs_row[by_pair][pr_start]
        pb_asset = hs_sub[by_pair][pr_start]
        pb_price = self.price[pb_asset]
        pb_qty = _floor_step((net / (1 + cr)) / pb_price)
        pb_amount = pb_qty * pb_price
        pb_keep = (pb_qty > 0) & (pb_amount >= p.min_trade)
        sell_ok = np.zeros(len(hs_start), dtype=np.bool_)
        sell_ok[by_pair] = pb_keep[pr_run]
        lot_ok = sell_ok[hs_run]
        excluded[hl[lot_ok]] = True
        harvested_class = np.zeros(N * K, dtype=np.bool_)
        harvested_class[hs_row[sell_ok] * K + self.cls[hs_asset[sell_ok]]] = True
        ks = np.flatnonzero(sell_ok)
        sales = np.flatnonzero(lot_ok)
        remap = np.full(len(hs_start), -1)
        remap[ks] = np.arange(len(ks))
        sub_code = TRADE_ORDER[(BUY, PURPOSE_SUBSTITUTE)]
        self.trades.add(
            hs_row[ks],
            hs_asset[ks],
            SELL,
            np.full(len(ks), PURPOSE_HARVEST),
            hs_qty[ks],
            hs_amount[ks],
            sub_code * A + hs_sub[ks],
            remap[hs_run[sales]],
            hl[sales],
            self.lq[hl[sales]],
        )
        kb = np.flatnonzero(pb_keep)
        first = self.trades.count
        self.trades.add(
            pb_row[kb],
            pb_asset[kb],
            BUY,
            np.full(len(kb), PURPOSE_SUBSTITUTE),
            pb_qty[kb],
            pb_amount[kb],
            np.full(len(kb), -1),
            _i([]),
            _i([]),
            _f([]),
        )
        bought[pb_row[kb] * A + pb_asset[kb]] = True
        pair_buy_index.append(first + np.arange(len(kb)))

        self.mark("harvest")

        # 5. Switch back.
        is_sub = np.zeros(A, dtype=np.bool_)
        is_sub[self.sub[self.sub >= 0]] = True
        sp = np.flatnonzero(pos_planned & is_sub[pos_asset])
        s_row = pos_account[sp]
        s_asset = pos_asset[sp]
        s_class = pos_class[sp]
        s_target = self.target[s_row]
        prim = self.buy_asset[s_target, s_class]
        safe = np.maximum(prim, 0)
        ok = (
            (prim >= 0)
            & (prim != s_asset)
            & (self.sub[safe] == s_asset)
            & ~np.isnan(self.price[safe])
            & self.allowed[s_target, safe]
            & (self.grp[safe] != self.grp[s_asset])
        )
        sp, s_row, s_asset, s_class, prim = sp[ok], s_row[ok], s_asset[ok], s_class[ok], prim[ok]
        ok = ~blocked1[self.owner_key(s_row, prim)] & ~harvested_class[s_row * K + s_class]
        ok &= (trigger[s_row] & TRIGGER_WITHDRAWAL) == 0  # a pending withdrawal sells the substitute instead
        sp, s_row, s_asset, s_class, prim = sp[ok], s_row[ok], s_asset[ok], s_class[ok], prim[ok]
        lengths = np.where(sp + 1 < P, pos_start[np.minimum(sp + 1, P - 1)], self.M) - pos_start[sp]
        s_lots = _segments(pos_start[sp], lengths)
        s_run = np.repeat(np.arange(len(sp)), lengths)
        acquired = _i(book.lot_acquired)
        newest = np.full(len(sp), np.iinfo(np.int64).min)
        np.maximum.at(newest, s_run, acquired[s_lots])
        ok = newest <= self.today - p.switch_back_days
        gain = _sums(s_run, (lot_price[s_lots] - self.lb[s_lots]) * self.lq[s_lots], len(sp))
        ok &= ~taxable[s_row] | (gain <= p.switch_back_max_gain)
        s_qty = _sums(s_run, self.lq[s_lots], len(sp))
        s_amount = s_qty * self.price[s_asset]
        b_price = self.price[prim]
        b_qty = _floor_step((s_amount * (1 - cr) / (1 + cr)) / b_price)
        b_amount = b_qty * b_price
        ok &= (s_amount >= p.min_trade) & (b_qty > 0) & (b_amount >= p.min_trade)
        kept = np.flatnonzero(ok)
        lot_ok = ok[s_run]
        excluded[s_lots[lot_ok]] = True
        remap = np.full(len(sp), -1)
        remap[kept] = np.arange(len(kept))
        sw_code = TRADE_ORDER[(BUY, PURPOSE_SWITCH_BACK)]
        self.trades.add(
            s_row[kept],
            s_asset[kept],
            SELL,
            np.full(len(kept), PURPOSE_SWITCH_BACK),
            s_qty[kept],
            s_amount[kept],
            sw_code * A + prim[kept],
            remap[s_run[lot_ok]],
            s_lots[lot_ok],
            self.lq[s_lots[lot_ok]],
        )
        first = self.trades.count
        self.trades.add(
            s_row[kept],
            prim[kept],
            BUY,
            np.full(len(kept), PURPOSE_SWITCH_BACK),
            b_qty[kept],
            b_amount[kept],
            np.full(len(kept), -1),
            _i([]),
            _i([]),
            _f([]),
        )
        bought[s_row[kept] * A + prim[kept]] = True
        pair_buy_index.append(first + np.arange(len(kept)))

        self.mark("switch back")

        # 7-9. Cash flows, sell-to-rebalance, short-term gains: on the accounts with a flow trigger.
        flows = np.flatnonzero(planned & ((trigger & (TRIGGER_DRIFT | TRIGGER_CASH | TRIGGER_WITHDRAWAL)) != 0))
        buy_dollars, buy_rebalance = self.class_flows(
            flows, trigger, cash, withdrawal, value, class_value, blocked1, excluded, bought, lot_value
        )
        plan = self.finish(
            trigger, flows, buy_dollars, buy_rebalance, np.concatenate(pair_buy_index), cash, withdrawal, taxable
        )
        self.mark("blocks, buys, assembly")
        trades_per_row = np.diff(plan["trade_start"])
        status[planned & (trades_per_row > 0)] = STATUS_TRADE
        status[planned & (trades_per_row == 0) & ((trigger & TRIGGER_SHORT_TERM_DEFERRED) != 0)] = STATUS_DEFERRED
        return Plan(
            status=status,
            trigger=trigger.astype(np.int16),
            value=value,
            weights=weights,
            cash_weight=cash_weight,
            drift=drift,
            band=band,
            total_drift=total_drift,
            position_account=pos_account,
            position_asset=pos_asset,
            position_value=pos_value,
            position_drift=position_drift,
            **plan,
        )

    def rule7(
        self,
        x: FloatArray,
        c2: FloatArray,
        V2: FloatArray,
        t: FloatArray,
        b: FloatArray,
        buyable: BoolArray,
        buy6: FloatArray,
        sell6: FloatArray,
        sr: FloatArray,
    ) -> tuple[FloatArray, FloatArray, BoolArray, FloatArray]:
        """Sell-to-rebalance (rule 8) for rows at once: (class sells, class buys, a class lacked a buy fund, drift)."""
        p = self.policy
        ok = V2 > 0
        V2s = np.where(ok, V2, 1.0)[:, None]
        d2 = x / V2s - t
        out = ok[:, None] & (np.abs(d2) > b) & (np.abs(d2) * V2s >= p.min_trade)
        sell7 = np.zeros_like(x)
        buy7 = np.zeros_like(x)
        nobuy = np.zeros(len(x), dtype=np.bool_)
        # Rows with no class out of band trade nothing here: the arithmetic runs on the others only.
        rows = np.flatnonzero(out.any(axis=1))
        if len(rows):
            sell7[rows], buy7[rows], nobuy[rows] = self.rule7_rows(
                x[rows], c2[rows], V2s[rows], t[rows], b[rows], buyable[rows], buy6[rows], sr[rows], sell6[rows],
                d2[rows], out[rows],
            )  # fmt: skip
        return sell7, buy7, nobuy, d2

    def rule7_rows(
        self,
        x: FloatArray,
        c2: FloatArray,
        V2s: FloatArray,
        t: FloatArray,
        b: FloatArray,
        buyable: BoolArray,
        buy6: FloatArray,
        sr: FloatArray,
        sell6: FloatArray,
        d2: FloatArray,
        out: BoolArray,
    ) -> tuple[FloatArray, FloatArray, BoolArray]:
        p = self.policy
        cr, rk = p.cost_rate, p.rebalance_to
        mr = rebalance_minimum(p)
        hi = out & (d2 > 0) & (buy6 == 0)
        lo = out & (d2 < 0) & buyable & (sell6 == 0)
        nobuy = np.any(out & (d2 < 0) & ~buyable, axis=1)
        sell7 = np.where(hi, np.minimum(np.maximum(x - (t + rk * b) * V2s, np.minimum(mr, x - t * V2s)), sr), 0.0)
        need = np.where(lo, np.maximum((t - rk * b) * V2s - x, np.minimum(mr, t * V2s - x)), 0.0)
        SN = _seqsum(need)
        cash_left = np.maximum(c2, 0.0)
        avail = cash_left + _seqsum(sell7) * (1 - cr)
        short = SN * (1 + cr) > avail
        E = (SN * (1 + cr) - avail) / (1 - cr)
        cand = ~lo & (buy6 == 0)
        ex = np.where(cand, np.maximum(np.minimum((x - sell7) - t * V2s, sr - sell7), 0.0), 0.0)
        X = _seqsum(ex)
        stage_a = short & (X > 0)
        f = np.minimum(E / np.where(stage_a, X, 1.0), 1.0)
        take = ex * f[:, None]
        sell7 = np.where(stage_a[:, None], sell7 + take, sell7)
        E = np.where(stage_a, E - _seqsum(take), E)
        room = np.where(cand, np.maximum(np.minimum((x - sell7) - (t - rk * b) * V2s, sr - sell7), 0.0), 0.0)
        Rm = _seqsum(room)
        stage_b = short & (E > 0) & (Rm > 0)
        f = np.minimum(E / np.where(stage_b, Rm, 1.0), 1.0)
        sell7 = np.where(stage_b[:, None], sell7 + room * f[:, None], sell7)
        avail = cash_left + _seqsum(sell7) * (1 - cr)
        scaled = (SN > 0) & (SN * (1 + cr) > avail)
        scale = avail / np.where(scaled, SN * (1 + cr), 1.0)
        buy7 = np.where(scaled[:, None], need * scale[:, None], need)
        return sell7, buy7, nobuy

    def class_flows(
        self,
        flows: IntArray,
        trigger: IntArray,
        cash: FloatArray,
        withdrawal: FloatArray,
        value: FloatArray,
        class_value: FloatArray,
        blocked1: BoolArray,
        excluded: BoolArray,
        bought: BoolArray,
        lot_value: FloatArray,
    ) -> tuple[FloatArray, BoolArray]:
        """Rules 7-9 and the class sells; returns the class buys' dollars [F, K] and which are rebalance buys."""
        p = self.policy
        K, A, N = self.K, self.A, self.N
        cr, mt = p.cost_rate, p.min_trade
        nF = len(flows)
        fpos = np.full(N, -1, dtype=np.int64)
        fpos[flows] = np.arange(nF)
        lot_start = np.searchsorted(self.la, flows)
        lot_end = np.searchsorted(self.la, flows, side="right")
        fl = _segments(lot_start, lot_end - lot_start)
        fl = fl[~excluded[fl] & ~bought[self.la[fl] * A + self.lasset[fl]]]
        frow = fpos[self.la[fl]]
        fcls = self.cls[self.lasset[fl]]
        fgroup = frow * K + fcls
        sv = _sums(fgroup, lot_value[fl], nF * K).reshape(nF, K)
        self.mark("sellable lots of the flow accounts")
        t = self.tw[self.target[flows]]
        b = np.minimum(p.band_absolute, p.band_relative * t)
        cv = class_value[flows]
        c = cash[flows]
        w = withdrawal[flows]
        V = value[flows]
        trig = trigger[flows]
        buyable = self.fund_select(flows, blocked1) >= 0
        Vp = (V - w)[:, None]
        buy6 = np.zeros((nF, K))
        sell6 = np.zeros((nF, K))
        investing = ((trig & (TRIGGER_DRIFT | TRIGGER_CASH)) != 0) & (c - w > 0)
        gap = t * Vp - cv
        nobuy = investing & np.any(~buyable & (gap >= mt), axis=1)
        inv = np.flatnonzero(investing)
        if len(inv):
            spend = (c[inv] - w[inv]) / (1 + cr)
            short = np.where(buyable[inv], np.maximum(gap[inv], 0.0), 0.0)
            S = _seqsum(short)
            filled = spend <= S
            ratio = spend / np.where(filled, S, 1.0)
            rem = spend - S
            TB = _seqsum(np.where(buyable[inv], t[inv], 0.0))
            TBs = np.where(TB > 0, TB, 1.0)
            spread = np.where(buyable[inv], short + rem[:, None] * (t[inv] / TBs[:, None]), 0.0)
            buy6[inv] = np.where(filled[:, None], short * ratio[:, None], np.where((TB > 0)[:, None], spread, short))
            # A cash buy under the minimum is not made (rule 10 would drop it): the cash stays for rule 8.
            buy6 = np.where(buy6 < mt, 0.0, buy6)
        wd = np.flatnonzero(w > c)
        if len(wd):
            G = ((w[wd] - c[wd]) + CASH_MARGIN) / (1 - cr)
            ep = np.maximum(cv[wd] - t[wd] * Vp[wd], 0.0)
            E = _seqsum(ep)
            g1 = np.where((E > 0)[:, None], np.minimum(ep * (G / np.where(E > 0, E, 1.0))[:, None], sv[wd]), 0.0)
            U = G - _seqsum(g1)
            r = sv[wd] - g1
            Rr = _seqsum(r)
            second = (U > 0) & (Rr > 0)
            f = np.minimum(U / np.where(second, Rr, 1.0), 1.0)
            sell6[wd] = np.where(second[:, None], g1 + r * f[:, None], g1)
        c2 = ((c - w) + _seqsum(sell6) * (1 - cr)) - _seqsum(buy6) * (1 + cr)
        x = (cv + buy6) - sell6
        V2 = _seqsum(x) + c2
        sr = np.maximum(sv - sell6, 0.0)
        sell7, buy7, nobuy7, d2 = self.rule7(x, c2, V2, t, b, buyable, buy6, sell6, sr)
        trigger[flows[nobuy | nobuy7]] |= TRIGGER_NO_BUY_FUND
        self.mark("cash flows and rebalance (classes)")

        # Walk 1 (the withdrawal's sells) and walk 2 (rule 8's) over the lots of the classes that sell.
        selling = (sell6 + sell7).ravel()[fgroup] > 0
        has = np.flatnonzero(selling)
        perm = self.walk_perm(fl[has], frow[has])
        wpos = has[perm]  # positions in fl, in walk order
        wl = fl[wpos]
        wgroup = fgroup[wpos]
        wprice = self.price[self.lasset[wl]]
        wq = self.lq[wl]
        sold1, whole1 = _walk(wgroup, wq * wprice, wq, wprice, sell6.ravel()[wgroup])
        remaining = wq - sold1
        sold2, whole2 = _walk(wgroup, remaining * wprice, remaining, wprice, sell7.ravel()[wgroup])
        # A rule-8 class sell split over funds with a part under the minimum is taken from one fund instead.
        one = self.one_fund(wgroup, wl, frow[wpos], remaining * wprice, sold2 * wprice, sell7.ravel())
        if not np.all(one):
            sold2, whole2 = np.zeros(len(wl)), np.zeros(len(wl), dtype=np.bool_)
            e = np.flatnonzero(one)
            sold2[e], whole2[e] = _walk(
                wgroup[e], remaining[e] * wprice[e], remaining[e], wprice[e], sell7.ravel()[wgroup[e]]
            )
        sold1_fl = np.zeros(len(fl))
        sold1_fl[wpos] = sold1
        whole1_fl = np.zeros(len(fl), dtype=np.bool_)
        whole1_fl[wpos] = whole1
        sold2_fl = np.zeros(len(fl))
        sold2_fl[wpos] = sold2
        whole2_fl = np.zeros(len(fl), dtype=np.bool_)
        whole2_fl[wpos] = whole2

        # Rule 9: short-term gains of the rule-8 sells of taxable accounts.
        taxable = np.asarray(self.book.taxable, dtype=np.bool_)[flows]
        wrow = frow[wpos]
        short_lot = _i(self.book.lot_long_from)[wl] > self.today
        st_gain = _sums(wrow, np.where((sold2 > 0) & short_lot, (wprice - self.lb[wl]) * sold2, 0.0), nF)
        hard = np.any(np.abs(d2) > p.hard_band_multiple * b, axis=1)
        check = np.flatnonzero(taxable & np.any(sell7 > 0, axis=1) & (st_gain > p.short_term_gain_limit) & ~hard)
        if len(check):
            cpos = np.full(nF, -1, dtype=np.int64)
            cpos[check] = np.arange(len(check))
            in_check = cpos[frow] >= 0
            stg_fl = self.short_term_gain(fl)
            red = np.flatnonzero(in_check & ~stg_fl)
            rem_fl = self.lq[fl[red]] - sold1_fl[red]
            red_value = rem_fl * self.price[self.lasset[fl[red]]]
            sr_red = _sums(cpos[frow[red]] * K + fcls[red], red_value, len(check) * K).reshape(len(check), K)
            xs, c2s, V2s, ts, bs = x[check], c2[check], V2[check], t[check], b[check]
            sell7r, buy7r, _, _ = self.rule7(xs, c2s, V2s, ts, bs, buyable[check], buy6[check], sell6[check], sr_red)
            x3 = (xs - sell7r) + buy7r
            c3 = (c2s + _seqsum(sell7r) * (1 - cr)) - _seqsum(buy7r) * (1 + cr)
            V3 = _seqsum(x3) + c3
            V3s = np.where(V3 > 0, V3, 1.0)[:, None]
            d3 = x3 / V3s - ts
            still = (V3 > 0) & np.any(
                (np.abs(d3) > bs) & (np.abs(d3) * V3s >= mt) & ~((d3 < 0) & ~buyable[check]), axis=1
            )
            deferred = check[still]
            reduced = check[~still]
            trigger[flows[deferred]] |= TRIGGER_SHORT_TERM_DEFERRED
            trigger[flows[reduced]] |= TRIGGER_SHORT_TERM_REDUCED
            sell7[deferred] = 0.0
            buy7[deferred] = 0.0
            sell7[reduced] = sell7r[~still]
            buy7[reduced] = buy7r[~still]
            # Their rule-8 sells are walked again (reduced) or not at all (deferred).
            redo = in_check[:]
            sold2_fl[redo] = 0.0
            whole2_fl[redo] = False
            is_reduced = np.zeros(nF, dtype=np.bool_)
            is_reduced[reduced] = True
            again = np.flatnonzero(is_reduced[frow] & ~stg_fl & (sell7.ravel()[fgroup] > 0))
            perm2 = self.walk_perm(fl[again], frow[again])
            apos = again[perm2]
            al = fl[apos]
            aprice = self.price[self.lasset[al]]
            arem = self.lq[al] - sold1_fl[apos]
            s2, w2 = _walk(fgroup[apos], arem * aprice, arem, aprice, sell7.ravel()[fgroup[apos]])
            sold2_fl[apos] = s2
            whole2_fl[apos] = w2

        # Class sells: every lot either walk took from, in walk order, one trade per (account, fund).
        sold_any = np.flatnonzero((sold1_fl > 0) | (sold2_fl > 0))
        sold_any = sold_any[self.walk_perm(fl[sold_any], frow[sold_any])]
        lots = fl[sold_any]
        quantity = np.where(
            whole1_fl[sold_any] | whole2_fl[sold_any],
            self.lq[lots],
            _floor_step(sold1_fl[sold_any] + sold2_fl[sold_any]),
        )
        nz = quantity > 0
        sold_any, lots, quantity = sold_any[nz], lots[nz], quantity[nz]
        rows = flows[frow[sold_any]]
        assets = self.lasset[lots]
        by_fund = np.argsort(rows * A + assets, kind="stable")
        sold_any, lots, quantity, rows, assets = (
            sold_any[by_fund], lots[by_fund], quantity[by_fund], rows[by_fund], assets[by_fund]
        )  # fmt: skip
        starts, run = _group_starts(rows * A + assets)
        qty = _sums(run, quantity, len(starts))
        from_withdrawal = _sums(run, (sold1_fl[sold_any] > 0).astype(np.float64), len(starts)) > 0
        t_rows, t_assets = rows[starts], assets[starts]
        amount = qty * self.price[t_assets]
        keep = amount >= mt
        kept = np.flatnonzero(keep)
        remap = np.full(len(starts), -1)
        remap[kept] = np.arange(len(kept))
        sales = np.flatnonzero(keep[run])
        self.class_sell_first = self.trades.count
        self.trades.add(
            t_rows[kept],
            t_assets[kept],
            SELL,
            np.where(from_withdrawal[kept], PURPOSE_WITHDRAWAL, PURPOSE_REBALANCE),
            qty[kept],
            amount[kept],
            np.full(len(kept), -1),
            remap[run[sales]],
            lots[sales],
            quantity[sales],
        )
        self.class_sell_count = len(kept)
        self.mark("lot walks and class sells")
        return buy6 + buy7, buy7 > 0

    def one_fund(
        self, groups: IntArray, lots: IntArray, rows: IntArray, value: FloatArray, sold: FloatArray, dollars: FloatArray
    ) -> BoolArray:
        """Which walked lots (in walk order; ``groups`` = flow row x K + class) rule 8's walk may take from.

        A class whose walk sold from two funds or more, one of them under min_trade (each dollar figure summed
        per fund in walk order), sells only from its fund with the most ``value`` (the lowest index on a tie),
        if that fund holds at least the class's ``dollars``; every other class keeps all its lots.
        """
        A, K = self.A, self.K
        if len(lots) == 0:
            return np.ones(0, dtype=np.bool_)
        assets = self.lasset[lots]
        funds, inv = np.unique(rows * A + assets, return_inverse=True)
        inv = inv.ravel()
        held = _sums(inv, value, len(funds))
        part = _sums(inv, sold, len(funds))
        fund_group = (funds // A) * K + self.cls[funds % A]
        parts = np.bincount(fund_group, part > 0, minlength=len(dollars))
        small = np.bincount(fund_group, (part > 0) & (part < self.policy.min_trade), minlength=len(dollars))
        split = (parts >= 2) & (small > 0)
        best_first = np.lexsort((funds % A, -held, fund_group))
        first = np.ones(len(funds), dtype=np.bool_)
        first[1:] = fund_group[best_first][1:] != fund_group[best_first][:-1]
        best = np.full(len(dollars), -1, dtype=np.int64)
        best[fund_group[best_first][first]] = best_first[first]
        best_held = np.where(best >= 0, held[np.maximum(best, 0)], 0.0)
        concentrate = split & (best >= 0) & (best_held >= dollars)
        return ~concentrate[groups] | (inv == best[groups])

    def walk_perm(self, lots: IntArray, rows: IntArray) -> IntArray:
        """The permutation that puts ``lots`` (of flow rows ``rows``) in walk order."""
        book = self.book
        method = np.asarray(book.lot_method, dtype=np.int64)[self.la[lots]]
        assets = self.lasset[lots]
        basis = self.lb[lots]
        loss = self.price[assets] < basis
        washed = self.recent_buys[self.owner_key(self.la[lots], assets)]
        long = self.today >= _i(book.lot_long_from)[lots]
        category = np.where(loss & ~washed, 0, np.where(loss | long, 1, 2))
        category = np.where(method == TAX_MIN, category, 0)
        # Highest basis first, as a share of the price: the same order as the basis within one fund (what the
        # broker sells), and comparable across the funds of a class (the loss or gain per dollar sold).
        basis_key = np.where(method == FIFO, 0.0, -(basis / self.price[assets]))
        group = (rows * self.K + self.cls[assets]) * 3 + category
        lot_id = _i(book.lot_id)[lots]
        acquired = _i(book.lot_acquired)[lots]
        if len(lots) and lot_id.min() >= 0 and lot_id.max() < 2**40 and acquired.min() >= 0 and acquired.max() < 2**22:
            # (acquired, lot id) packed into one key: fewer lexsort passes, the same order.
            perm: IntArray = np.lexsort((acquired * 2**40 + lot_id, basis_key, group))
        else:
            perm = np.lexsort((lot_id, acquired, basis_key, group))
        return perm

    def finish(
        self,
        trigger: IntArray,
        flows: IntArray,
        buy_dollars: FloatArray,
        buy_rebalance: BoolArray,
        pair_buys: IntArray,
        cash: FloatArray,
        withdrawal: FloatArray,
        taxable: BoolArray,
    ) -> dict[str, np.ndarray]:
        """Phase 2 (blocking from every loss sale), the class buys, and the flat trade and sale arrays."""
        p = self.policy
        A, N, cr = self.A, self.N, p.cost_rate
        span = ORDER_CODES * A
        code_of = np.zeros((3, len(PURPOSES)), dtype=np.int64)
        for (trade_side, trade_purpose), code in TRADE_ORDER.items():
            code_of[trade_side + 1, trade_purpose] = code
        tr = self.trades
        row = _cat(tr.row, np.int64)
        asset = _cat(tr.asset, np.int64)
        side = _cat(tr.side, np.int64)
        purpose = _cat(tr.purpose, np.int64)
        link = _cat(tr.link_code, np.int64)
        s_trade = _cat(tr.sale_trade, np.int64)
        s_lot = _cat(tr.sale_lot, np.int64)
        s_qty = _cat(tr.sale_quantity, np.float64)
        s_row = row[s_trade]
        s_asset = asset[s_trade]
        s_gain = (self.price[s_asset] - self.lb[s_lot]) * s_qty
        loss_keys = self.owner_key(s_row, s_asset)[(s_gain < 0) & taxable[s_row]]
        blocked2 = self.loss_sold.copy()
        blocked2[loss_keys] = True
        keep = np.ones(len(row), dtype=np.bool_)
        full_key = row * span + code_of[side + 1, purpose] * A + asset
        dropped = pair_buys[blocked2[self.owner_key(row[pair_buys], asset[pair_buys])]]
        keep[dropped] = False
        trigger[row[dropped]] |= TRIGGER_NO_BUY_FUND
        keep[(link >= 0) & _member(row * span + link, np.sort(full_key[dropped]))] = False
        kept_pairs = pair_buys[keep[pair_buys]]
        trigger[row[kept_pairs[purpose[kept_pairs] == PURPOSE_SUBSTITUTE]]] |= TRIGGER_HARVEST
        trigger[row[kept_pairs[purpose[kept_pairs] == PURPOSE_SWITCH_BACK]]] |= TRIGGER_SWITCH_BACK
        sells = keep & (side == SELL)
        sold = np.zeros(N * A, dtype=np.bool_)
        sold[row[sells] * A + asset[sells]] = True

        # Class buys: re-pointed with the phase-2 blocks, scaled to the cash the class sells leave.
        class_sells = np.arange(self.class_sell_first, self.class_sell_first + self.class_sell_count)
        proceeds = _sums(row[class_sells], amount_of(tr)[class_sells] * (1 - cr), N)
        avail = (cash[flows] - withdrawal[flows]) + proceeds[flows]
        fund2 = self.fund_select(flows, blocked2)
        want = buy_dollars > 0
        invalid = want & ((fund2 < 0) | sold[flows[:, None] * A + np.maximum(fund2, 0)])
        trigger[flows[invalid.any(axis=1)]] |= TRIGGER_NO_BUY_FUND
        valid = want & ~invalid
        total = _seqsum(np.where(valid, buy_dollars, 0.0))
        over = total * (1 + cr) > avail
        cut = over & (avail > 0)
        scale = np.where(over, np.where(cut, avail / np.where(cut, total * (1 + cr), 1.0), 0.0), 1.0)
        r_idx, k_idx = np.nonzero(valid)
        fund = fund2[r_idx, k_idx]
        fprice = self.price[fund]
        bq = _floor_step((buy_dollars[r_idx, k_idx] * scale[r_idx]) / fprice)
        bamount = bq * fprice
        ok = (bq > 0) & (bamount >= p.min_trade)
        r_idx, k_idx, fund, bq, bamount = r_idx[ok], k_idx[ok], fund[ok], bq[ok], bamount[ok]
        tr.add(
            flows[r_idx],
            fund,
            BUY,
            np.where(buy_rebalance[r_idx, k_idx], PURPOSE_REBALANCE, PURPOSE_CASH),
            bq,
            bamount,
            np.full(len(fund), -1),
            _i([]),
            _i([]),
            _f([]),
        )
        keep = np.concatenate((keep, np.ones(len(fund), dtype=np.bool_)))
        row = _cat(tr.row, np.int64)
        asset = _cat(tr.asset, np.int64)
        side = _cat(tr.side, np.int64)
        purpose = _cat(tr.purpose, np.int64)
        link = _cat(tr.link_code, np.int64)
        quantity = _cat(tr.quantity, np.float64)
        amount = _cat(tr.amount, np.float64)
        full_key = row * span + code_of[side + 1, purpose] * A + asset

        # Final order: by account, then TRADE_ORDER code, then fund; sales follow their trades.
        idx = np.flatnonzero(keep)
        idx = idx[np.argsort(full_key[idx], kind="stable")]
        new_index = np.full(len(row), -1, dtype=np.int64)
        new_index[idx] = np.arange(len(idx))
        sorted_keys = full_key[idx]
        f_link = link[idx]
        has_link = f_link >= 0
        trade_link = np.full(len(idx), -1, dtype=np.int64)
        trade_link[has_link] = np.searchsorted(sorted_keys, row[idx][has_link] * span + f_link[has_link])
        s_new = new_index[s_trade]
        s_keep = np.flatnonzero(s_new >= 0)
        s_keep = s_keep[np.argsort(s_new[s_keep], kind="stable")]
        sale_trade = s_new[s_keep]
        sale_lot = s_lot[s_keep]
        sale_quantity = s_qty[s_keep]
        sale_gain = s_gain[s_keep]
        sale_long = self.today >= _i(self.book.lot_long_from)[sale_lot]
        trade_account = row[idx]
        sale_row = trade_account[sale_trade]
        realized_short = _sums(sale_row, np.where(sale_long, 0.0, sale_gain), N)
        realized_long = _sums(sale_row, np.where(sale_long, sale_gain, 0.0), N)
        harvested = _sums(sale_row, np.where(sale_gain < 0, -sale_gain, 0.0), N)
        book = self.book
        tax = realized_short * np.asarray(book.short_rate, dtype=np.float64) + realized_long * np.asarray(
            book.long_rate, dtype=np.float64
        )
        return {
            "trade_account": trade_account,
            "trade_asset": asset[idx],
            "trade_side": side[idx].astype(np.int8),
            "trade_quantity": quantity[idx],
            "trade_amount": amount[idx],
            "trade_purpose": purpose[idx].astype(np.int8),
            "trade_link": trade_link,
            "trade_start": _offsets(trade_account, N),
            "sale_trade": sale_trade,
            "sale_lot": sale_lot,
            "sale_lot_id": _i(book.lot_id)[sale_lot],
            "sale_quantity": sale_quantity,
            "sale_gain": sale_gain,
            "sale_long": sale_long,
            "sale_start": _offsets(sale_trade, len(idx)),
            "realized_short": realized_short,
            "realized_long": realized_long,
            "harvested_loss": harvested,
            "estimated_tax": tax,
        }


def amount_of(trades: _Trades) -> FloatArray:
    return _cat(trades.amount, np.float64)


def rebalance_plan(
    universe: UniverseArrays,
    targets: TargetArrays,
    book: BookArrays,
    policy: EnginePolicy,
    today: int,
    *,
    timings: dict[str, float] | None = None,
) -> Plan:
    """Drift, triggers and tax-aware trades for every account of ``book`` (see the module docstring).

    ``timings``, if given, receives the seconds spent in each phase (for the benchmark)."""
    engine = _Engine(universe, targets, book, policy, today)
    plan = engine.run()
    if timings is not None:
        timings.update(engine.timings)
    return plan


# --- the exact boundary --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LotPick:
    lot_id: int
    quantity: Decimal


@dataclass(frozen=True)
class PlannedTrade(ProposedTrade):
    """A ``ProposedTrade`` with its purpose (a ``TradePurpose`` string), the lots a sell takes (exact shares,
    summing to ``quantity``) and the index of the plan's trade it came from."""

    purpose: str = "rebalance"
    lots: tuple[LotPick, ...] = ()
    plan_trade: int = -1


def _fit_buy(quantity: Decimal, price: Decimal, cost_rate: Decimal, budget: Decimal) -> Decimal:
    """The largest quantity up to ``quantity`` whose booked notional plus cost (each rounded up to the cent)
    is at most ``budget``."""
    gross, cost = buy_cash_effect(quantity, price, cost_rate)
    if gross + cost <= budget:
        return quantity
    notional = floor_cents(budget / (1 + cost_rate)) if budget > 0 else ZERO
    while notional > 0 and notional + trading_cost(notional, cost_rate) > budget:
        notional -= CENT
    # quantity x price <= notional, so the booked notional (rounded up) is too, and so is its cost.
    return min(quantity, floor_shares(notional / price)) if notional > 0 else ZERO


def _shares(quantity: float) -> Decimal:
    """A planned float quantity as exact shares on the broker's grid (it is already floored to it)."""
    return floor_shares(Decimal(repr(float(quantity))))


def exact_trades(
    plan: Plan,
    row: int,
    *,
    tickers: Sequence[str],
    lots: Mapping[int, Decimal],
    holdings: Mapping[str, Decimal],
    cash: Decimal,
    prices: Mapping[str, Decimal],
    cost_rate: Decimal,
    min_trade: Decimal,
    reserve: Decimal = ZERO,
) -> list[PlannedTrade]:
    """One account's planned trades as exact trades, booked as the broker books them.

    ``lots`` maps lot id to the shares it still holds, ``holdings`` ticker to the shares held, ``reserve`` is
    cash that must stay (pending withdrawals). Sells come first, in plan order: each lot pick is the planned
    quantity on the 1e-6 grid (a lot the plan took whole: its exact quantity), never more than the lot or the
    fund still holds; a sell whose notional is under ``min_trade`` is dropped. A pair's buy (substitute,
    switch back) spends no more than its kept sells brought in, and is dropped with them. Then the buys, in
    plan order, scaled down together if they need more than cash - reserve, and each cut further to the
    largest quantity that keeps cash after it and its cost >= ``reserve``: exactly, with the broker's cent
    rounding (``buy_cash_effect``); a buy cut under ``min_trade`` is dropped. If the sells leave cash under
    the reserve, nothing is bought.

    The same Decimal operations as ``rebalancer_reference.exact_trades_reference`` (the tests hold the two
    equal, representation included), without its overheads: the plan is read from Python lists built once per
    plan, the inputs are not copied (what this account's sells take is kept aside), the planned float
    quantities reach the grid by integer arithmetic where that is provably what ``Decimal(repr(x))`` floored
    gives, and the results are built without the frozen dataclasses' per-field ``__setattr__``.
    """
    if cash < 0 or reserve < 0:
        raise ValueError("Cash and the reserve must not be negative.")
    view = plan.boundary_view
    start, stop = view.trade_start[row], view.trade_start[row + 1]
    result: list[PlannedTrade] = []
    if start == stop:
        return result
    trade_side, trade_asset = view.trade_side, view.trade_asset
    sale_start, sale_lot_id, sale_micro = view.sale_start, view.sale_lot_id, view.sale_micro
    lot_left: dict[int, Decimal] = {}  # what this account's kept sells left of the lots and funds they took
    held_left: dict[str, Decimal] = {}
    available = cash
    pair_proceeds: dict[int, Decimal] = {}
    buys: list[int] = []
    for j in range(start, stop):
        if trade_side[j] != SELL:
            buys.append(j)
            continue
        ticker = tickers[trade_asset[j]]
        price = prices[ticker]
        link = view.trade_link[j]
        if link >= 0:
            pair_proceeds.setdefault(link, ZERO)
        picks: list[LotPick] = []
        quantity = ZERO
        room = held_left[ticker] if ticker in held_left else holdings.get(ticker, ZERO)
        for s in range(sale_start[j], sale_start[j + 1]):
            lot_id = sale_lot_id[s]
            left = lot_left[lot_id] if lot_id in lot_left else lots.get(lot_id, ZERO)
            micro = sale_micro[s]
            if not micro:  # off the grid: the reference's own steps
                planned = view.sale_quantity[s]
                want = left if planned >= float(left) else min(_shares(planned), left)
            else:
                shares = Decimal(micro) * _MICRO  # == _shares(planned), exponent included (see _grid_micro)
                if shares >= left:  # then planned >= float(left): float() is monotonic, planned is shares' float
                    want = left
                elif left >= shares + _MICRO:  # then float(left) > planned: grid decimals have distinct floats
                    want = shares
                else:  # left is off the grid, less than a step above: the reference's float comparison decides
                    want = left if view.sale_quantity[s] >= float(left) else shares
            if room < want:
                want = room
            if want > ZERO:
                pick: LotPick = _new(LotPick)
                _set(pick, "__dict__", {"lot_id": lot_id, "quantity": want})
                picks.append(pick)
                quantity += want
                room -= want
        if quantity <= ZERO:
            continue
        gross = (quantity * price).quantize(CENT, ROUND_FLOOR)  # sell_cash_effect
        cost = (gross * cost_rate).quantize(CENT, ROUND_CEILING)
        if gross < min_trade:
            continue
        for pick in picks:
            taken = pick.lot_id
            lot_left[taken] = (lot_left[taken] if taken in lot_left else lots[taken]) - pick.quantity
        held_left[ticker] = (held_left[ticker] if ticker in held_left else holdings.get(ticker, ZERO)) - quantity
        available += gross - cost
        if link >= 0:
            pair_proceeds[link] += gross - cost
        result.append(
            _planned_trade(ticker, "sell", quantity, price, gross, cost, view.trade_purpose[j], tuple(picks), j)
        )
    if not buys:
        return result

    one_plus_cost = 1 + cost_rate
    trade_micro = view.trade_micro
    quantities: list[Decimal] = []
    buy_prices: list[Decimal] = []
    kept: list[int] = []
    need = ZERO
    for j in buys:
        if trade_side[j] != BUY:
            continue
        price = prices[tickers[trade_asset[j]]]
        micro = trade_micro[j]
        quantity = Decimal(micro) * _MICRO if micro else _shares(view.trade_quantity[j])
        if j in pair_proceeds:
            if pair_proceeds[j] <= ZERO:
                continue
            quantity = min(quantity, floor_shares(pair_proceeds[j] / (price * one_plus_cost)))
            # booked, notional and cost each round up a cent: the pair must not spend the account's own cash
            quantity = _fit_buy(quantity, price, cost_rate, pair_proceeds[j])
        kept.append(j)
        quantities.append(quantity)
        buy_prices.append(price)
        need += quantity * price * one_plus_cost
    if need > available - reserve:
        budget = available - reserve
        factor = budget / need if budget > ZERO else ZERO
        quantities = [floor_shares(quantity * factor) for quantity in quantities]
    for j, quantity, price in zip(kept, quantities, buy_prices, strict=True):
        budget = available - reserve
        gross = (quantity * price).quantize(CENT, ROUND_CEILING)  # buy_cash_effect
        cost = (gross * cost_rate).quantize(CENT, ROUND_CEILING)
        if gross + cost > budget:
            quantity = _fit_buy(quantity, price, cost_rate, budget)
            gross, cost = buy_cash_effect(quantity, price, cost_rate)
        if quantity <= ZERO or gross < min_trade:
            continue
        available -= gross + cost
        result.append(
            _planned_trade(tickers[trade_asset[j]], "buy", quantity, price, gross, cost, view.trade_purpose[j], (), j)
        )
    return result


_MICRO = Decimal("0.000001")


def _grid_micro(quantity: FloatArray) -> list[int]:
    """Per planned float quantity, n if it is the float nearest to n x 1e-6 for an integer 0 < n < 10**15, else
    0: then ``Decimal(n) * 1e-6`` is ``_shares(quantity)``, value and exponent.

    Why: n x 1e-6 has at most 15 significant digits, and two decimals of at most 15 digits never share a float,
    so the shortest string that reads back as the float (``repr``) is n x 1e-6 itself, and flooring it to the
    grid leaves it, with exponent -6 as ``quantize`` leaves it (``Decimal(n) * 1e-6`` has exponent 0 - 6).
    Only one integer can pass the check (n < 2**53: exact as a float; the division rounds correctly)."""
    positive = (quantity > 0) & (quantity < 1e9)
    micro = np.rint(np.where(positive, quantity, 0.0) * 1e6)
    on_grid = positive & (micro / 1e6 == quantity)
    grid: list[int] = np.where(on_grid, micro, 0.0).astype(np.int64).tolist()
    return grid


_new = object.__new__
_set = object.__setattr__


def _planned_trade(
    ticker: str,
    side: str,
    quantity: Decimal,
    price: Decimal,
    amount: Decimal,
    cost: Decimal,
    purpose: int,
    lots: tuple[LotPick, ...],
    plan_trade: int,
) -> PlannedTrade:
    """``PlannedTrade(...)`` at half the cost: a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``; the instance's dict can be set at once (there is no ``__post_init__`` to skip)."""
    trade: PlannedTrade = _new(PlannedTrade)
    _set(
        trade,
        "__dict__",
        {
            "ticker": ticker,
            "side": side,
            "quantity": quantity,
            "price": price,
            "amount": amount,
            "cost": cost,
            "purpose": PURPOSES[purpose],
            "lots": lots,
            "plan_trade": plan_trade,
        },
    )
    return trade


def cents(value: float) -> Decimal:
    """A float dollar figure of the plan (a gain, a tax) as Decimal cents, for display and storage."""
    return Decimal(repr(float(value))).quantize(CENT)
