"""The rebalancing engine's rules, one account at a time, in plain Python (pure: no Django, no numpy loops).

This is the oracle the tests hold ``portfolios.rebalancer.rebalance_plan`` to: the same rules (see the module
docstring of ``portfolios.rebalancer``), written as a direct loop over each account's lots and classes. It does
the same float operations in the same order as the vectorised engine (sums are running sums in a stated order),
so the two agree exactly, not merely to a tolerance; the benchmark times it on a sample for the speed-up.

``exact_trades_reference`` is the exact Decimal boundary as first written (one Decimal operation per step, the
plan read element by element): the oracle of the fast ``portfolios.rebalancer.exact_trades``.

Owner-wide wash-sale state is the only thing shared between accounts; it is gathered between three passes:
A (values, triggers, harvest candidates), B (everything that sells) and C (everything that buys).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from .rebalance import ZERO, buy_cash_effect, floor_shares, sell_cash_effect
from .rebalancer import (
    BUY,
    CASH_MARGIN,
    FIFO,
    HIFO,
    PURPOSE_CASH,
    PURPOSE_HARVEST,
    PURPOSE_REBALANCE,
    PURPOSE_SUBSTITUTE,
    PURPOSE_SWITCH_BACK,
    PURPOSE_WITHDRAWAL,
    PURPOSES,
    SELL,
    STATUS_DEFERRED,
    STATUS_EMPTY,
    STATUS_IN_BAND,
    STATUS_NO_PRICE,
    STATUS_NO_TARGET,
    STATUS_TRADE,
    TRADE_ORDER,
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
    PlannedTrade,
    TargetArrays,
    UniverseArrays,
    _fit_buy,
    _shares,
    floor_step,
    rebalance_minimum,
    validate_inputs,
)


def _seqsum(values: list[float]) -> float:
    total = 0.0
    for value in values:
        total = total + value
    return total


@dataclass
class _Sale:
    lot: int
    quantity: float
    gain: float
    long: bool


@dataclass
class _Trade:
    asset: int
    side: int
    purpose: int
    quantity: float
    amount: float
    sales: list[_Sale] = field(default_factory=list)
    link_key: int = -1  # for a pair's sells: the order code * A + asset of its buy
    order_code: int = 0


@dataclass
class _Account:
    row: int
    owner: int
    taxable: bool
    method: int
    cash: float
    withdrawal: float
    target: int
    lots: list[int]
    status: int = STATUS_IN_BAND
    trigger: int = 0
    value: float = 0.0
    weights: list[float] = field(default_factory=list)
    cash_weight: float = 0.0
    drift: list[float] = field(default_factory=list)
    band: list[float] = field(default_factory=list)
    total_drift: float = 0.0
    class_value: list[float] = field(default_factory=list)
    positions: dict[int, list[int]] = field(default_factory=dict)
    position_value: dict[int, float] = field(default_factory=dict)
    harvest_candidates: list[int] = field(default_factory=list)
    trades: list[_Trade] = field(default_factory=list)
    class_buy_dollars: list[float] = field(default_factory=list)
    class_buy_rebalance: list[bool] = field(default_factory=list)
    class_sell_trades: list[_Trade] = field(default_factory=list)


class _Reference:
    def __init__(
        self,
        universe: UniverseArrays,
        targets: TargetArrays,
        book: BookArrays,
        policy: EnginePolicy,
        today: int,
    ) -> None:
        validate_inputs(universe, targets, book)
        self.policy = policy
        self.today = today
        self.asset_class: list[int] = universe.asset_class.tolist()
        self.group: list[int] = universe.wash_group.tolist()
        self.substitute: list[int] = universe.substitute.tolist()
        self.price: list[float] = universe.price.astype(np.float64).tolist()
        self.A = len(self.price)
        self.K = len(universe.class_codes)
        self.G = universe.group_count
        self.weights: list[list[float]] = targets.weights.astype(np.float64).tolist()
        self.buy_asset: list[list[int]] = targets.buy_asset.tolist()
        self.allowed: list[list[bool]] = targets.allowed.tolist()
        self.lot_account: list[int] = book.lot_account.tolist()
        self.lot_id: list[int] = book.lot_id.tolist()
        self.lot_asset: list[int] = book.lot_asset.tolist()
        self.lot_quantity: list[float] = book.lot_quantity.astype(np.float64).tolist()
        self.lot_basis: list[float] = book.lot_basis.astype(np.float64).tolist()
        self.lot_acquired: list[int] = book.lot_acquired.tolist()
        self.lot_long_from: list[int] = book.lot_long_from.tolist()
        self.loss_sold = set(book.loss_sold.tolist())
        self.recent_buys = set(book.recent_buys.tolist())
        n = len(book.account_id)
        lots_of: list[list[int]] = [[] for _ in range(n)]
        for m, row in enumerate(self.lot_account):
            lots_of[row].append(m)
        self.accounts = [
            _Account(
                row=i,
                owner=int(book.owner[i]),
                taxable=bool(book.taxable[i]),
                method=int(book.lot_method[i]),
                cash=float(book.cash[i]),
                withdrawal=float(book.withdrawal[i]),
                target=int(book.target[i]),
                lots=lots_of[i],
            )
            for i in range(n)
        ]
        self.short_rate: list[float] = book.short_rate.astype(np.float64).tolist()
        self.long_rate: list[float] = book.long_rate.astype(np.float64).tolist()

    # --- helpers -----------------------------------------------------------------------------------------

    def key(self, owner: int, asset: int) -> int:
        return owner * self.G + self.group[asset]

    def valid_buy(self, account: _Account, asset: int, blocked: set[int]) -> bool:
        return (
            not math.isnan(self.price[asset])
            and self.allowed[account.target][asset]
            and self.key(account.owner, asset) not in blocked
        )

    def buy_fund(self, account: _Account, k: int, blocked: set[int]) -> int:
        primary = self.buy_asset[account.target][k]
        if primary < 0:
            return -1
        if self.valid_buy(account, primary, blocked):
            return primary
        substitute = self.substitute[primary]
        if substitute >= 0 and self.valid_buy(account, substitute, blocked):
            return substitute
        return -1

    def short_term_gain_lot(self, m: int) -> bool:
        return self.today < self.lot_long_from[m] and self.price[self.lot_asset[m]] > self.lot_basis[m]

    def walk_key(self, account: _Account, m: int) -> tuple[int, float, int, int]:
        price = self.price[self.lot_asset[m]]
        basis = self.lot_basis[m]
        if account.method == FIFO:
            return (0, 0.0, self.lot_acquired[m], self.lot_id[m])
        if account.method == HIFO:
            return (0, -(basis / price), self.lot_acquired[m], self.lot_id[m])
        loss = price < basis
        if loss and self.key(account.owner, self.lot_asset[m]) not in self.recent_buys:
            category = 0
        elif loss or self.today >= self.lot_long_from[m]:
            category = 1
        else:
            category = 2
        return (category, -(basis / price), self.lot_acquired[m], self.lot_id[m])

    # --- pass A: values, triggers, harvest candidates ---------------------------------------------------

    def pass_a(self, account: _Account) -> None:
        policy, K = self.policy, self.K
        for m in account.lots:
            account.positions.setdefault(self.lot_asset[m], []).append(m)
        for asset, lots in account.positions.items():
            total = 0.0
            for m in lots:
                total = total + self.lot_quantity[m] * self.price[asset]
            account.position_value[asset] = total
        invested = 0.0
        class_value = [0.0] * K
        for asset in sorted(account.positions):
            invested = invested + account.position_value[asset]
            k = self.asset_class[asset]
            class_value[k] = class_value[k] + account.position_value[asset]
        account.class_value = class_value
        value = account.cash + invested
        account.value = value
        account.weights = [0.0] * K
        account.drift = [0.0] * K
        account.band = [0.0] * K
        no_price = any(math.isnan(self.price[a]) for a in account.positions)
        if no_price:
            account.status = STATUS_NO_PRICE
            return
        if not value > 0:
            account.status = STATUS_EMPTY
            return
        account.weights = [class_value[k] / value for k in range(K)]
        account.cash_weight = account.cash / value
        if account.target < 0:
            account.status = STATUS_NO_TARGET
            return
        t = self.weights[account.target]
        account.drift = [account.weights[k] - t[k] for k in range(K)]
        account.band = [min(policy.band_absolute, policy.band_relative * t[k]) for k in range(K)]
        account.total_drift = (_seqsum([abs(d) for d in account.drift]) + abs(account.cash_weight)) / 2
        if any(
            abs(account.drift[k]) > account.band[k] and abs(account.drift[k]) * value >= policy.min_trade
            for k in range(K)
        ):
            account.trigger |= TRIGGER_DRIFT
        investable = account.cash - account.withdrawal
        if investable > policy.cash_threshold_amount and investable > policy.cash_threshold_weight * value:
            account.trigger |= TRIGGER_CASH
        if account.withdrawal > account.cash:
            account.trigger |= TRIGGER_WITHDRAWAL
        if account.taxable:
            for m in account.lots:
                if self.harvest_candidate(account, m):
                    account.harvest_candidates.append(m)

    def harvest_candidate(self, account: _Account, m: int) -> bool:
        policy = self.policy
        asset = self.lot_asset[m]
        price = self.price[asset]
        basis = self.lot_basis[m]
        if not price < basis:
            return False
        loss = basis - price
        if not (
            loss / basis >= policy.harvest_loss_fraction and loss * self.lot_quantity[m] >= policy.harvest_loss_minimum
        ):
            return False
        substitute = self.substitute[asset]
        if substitute < 0 or math.isnan(self.price[substitute]) or not self.allowed[account.target][substitute]:
            return False
        if self.group[substitute] == self.group[asset]:
            return False
        own = self.key(account.owner, asset)
        return (
            own not in self.loss_sold
            and own not in self.recent_buys
            and self.key(account.owner, substitute) not in self.loss_sold
        )

    # --- pass B: everything that sells ------------------------------------------------------------------

    def pass_b(self, account: _Account, candidate_groups: set[int]) -> None:
        policy, cr = self.policy, self.policy.cost_rate
        mt = policy.min_trade
        blocked = self.loss_sold | candidate_groups
        # Rule 4, harvest: whole lots whose substitute is not itself being harvested by this owner today.
        harvest_lots: dict[int, list[int]] = {}
        for m in account.harvest_candidates:
            asset = self.lot_asset[m]
            if self.key(account.owner, self.substitute[asset]) not in candidate_groups:
                harvest_lots.setdefault(asset, []).append(m)
        sells_by_substitute: dict[int, list[_Trade]] = {}
        for asset in sorted(harvest_lots):
            quantity = 0.0
            for m in harvest_lots[asset]:
                quantity = quantity + self.lot_quantity[m]
            trade = _Trade(asset, -1, PURPOSE_HARVEST, quantity, quantity * self.price[asset])
            if trade.amount < mt:
                continue
            trade.sales = [self.sale(m, self.lot_quantity[m]) for m in harvest_lots[asset]]
            sells_by_substitute.setdefault(self.substitute[asset], []).append(trade)
        harvested_classes: set[int] = set()
        bought: set[int] = set()
        sold_whole: set[int] = set()
        for substitute in sorted(sells_by_substitute):
            sells = sells_by_substitute[substitute]
            net = 0.0
            for trade in sells:
                net = net + trade.amount * (1 - cr)
            buy = self.buy_trade(substitute, net / (1 + cr), PURPOSE_SUBSTITUTE)
            if buy is None:
                continue
            for trade in sells:
                trade.link_key = TRADE_ORDER[(1, PURPOSE_SUBSTITUTE)] * self.A + substitute
                account.trades.append(trade)
                harvested_classes.add(self.asset_class[trade.asset])
                sold_whole.update(sale.lot for sale in trade.sales)
            account.trades.append(buy)
            bought.add(substitute)
        # Rule 5: switch back from a substitute to the class's buy fund.
        for asset in sorted(account.positions):
            k = self.asset_class[asset]
            primary = self.buy_asset[account.target][k]
            if primary < 0 or primary == asset or self.substitute[primary] != asset:
                continue
            if math.isnan(self.price[primary]) or not self.allowed[account.target][primary]:
                continue
            if self.group[primary] == self.group[asset] or self.key(account.owner, primary) in blocked:
                continue
            if k in harvested_classes:
                continue
            if account.trigger & TRIGGER_WITHDRAWAL:
                continue  # a pending withdrawal sells the substitute instead
            lots = account.positions[asset]
            if max(self.lot_acquired[m] for m in lots) > self.today - policy.switch_back_days:
                continue
            if account.taxable:
                gain = 0.0
                for m in lots:
                    gain = gain + (self.price[asset] - self.lot_basis[m]) * self.lot_quantity[m]
                if gain > policy.switch_back_max_gain:
                    continue
            quantity = 0.0
            for m in lots:
                quantity = quantity + self.lot_quantity[m]
            sell = _Trade(asset, -1, PURPOSE_SWITCH_BACK, quantity, quantity * self.price[asset])
            if sell.amount < mt:
                continue
            buy = self.buy_trade(primary, sell.amount * (1 - cr) / (1 + cr), PURPOSE_SWITCH_BACK)
            if buy is None:
                continue
            sell.sales = [self.sale(m, self.lot_quantity[m]) for m in lots]
            sell.link_key = TRADE_ORDER[(1, PURPOSE_SWITCH_BACK)] * self.A + primary
            account.trades += [sell, buy]
            sold_whole.update(lots)
            bought.add(primary)
        self.class_flows(account, blocked, sold_whole, bought)

    def sale(self, m: int, quantity: float) -> _Sale:
        price = self.price[self.lot_asset[m]]
        return _Sale(m, quantity, (price - self.lot_basis[m]) * quantity, self.today >= self.lot_long_from[m])

    def buy_trade(self, asset: int, dollars: float, purpose: int) -> _Trade | None:
        price = self.price[asset]
        quantity = floor_step(dollars / price)
        amount = quantity * price
        if quantity <= 0 or amount < self.policy.min_trade:
            return None
        trade = _Trade(asset, 1, purpose, quantity, amount)
        trade.order_code = TRADE_ORDER[(1, purpose)]
        return trade

    def class_flows(self, account: _Account, blocked: set[int], sold_whole: set[int], bought: set[int]) -> None:
        policy, K, cr = self.policy, self.K, self.policy.cost_rate
        mt = policy.min_trade
        account.class_buy_dollars = [0.0] * K
        account.class_buy_rebalance = [False] * K
        if not account.trigger & (TRIGGER_DRIFT | TRIGGER_CASH | TRIGGER_WITHDRAWAL):
            return
        t = self.weights[account.target]
        b = account.band
        cv = account.class_value
        c, w, V = account.cash, account.withdrawal, account.value
        sellable = [m for m in account.lots if m not in sold_whole and self.lot_asset[m] not in bought]
        sellable_set = set(sellable)
        sv = [0.0] * K
        for m in sellable:
            k = self.asset_class[self.lot_asset[m]]
            sv[k] = sv[k] + self.lot_quantity[m] * self.price[self.lot_asset[m]]
        buyable = [self.buy_fund(account, k, blocked) >= 0 for k in range(K)]
        Vp = V - w
        buy6 = [0.0] * K
        sell6 = [0.0] * K
        # Rule 7: new cash fills the buyable classes' shortfalls, then follows the targets.
        if account.trigger & (TRIGGER_DRIFT | TRIGGER_CASH) and c - w > 0:
            spend = (c - w) / (1 + cr)
            if any(not buyable[k] and t[k] * Vp - cv[k] >= mt for k in range(K)):
                account.trigger |= TRIGGER_NO_BUY_FUND
            short = [max(t[k] * Vp - cv[k], 0.0) if buyable[k] else 0.0 for k in range(K)]
            S = _seqsum(short)
            if spend <= S:
                ratio = spend / S
                buy6 = [short[k] * ratio for k in range(K)]
            else:
                rem = spend - S
                TB = _seqsum([t[k] if buyable[k] else 0.0 for k in range(K)])
                buy6 = [short[k] + rem * (t[k] / TB) if buyable[k] else 0.0 for k in range(K)] if TB > 0 else short
            # A cash buy under the minimum is not made (rule 10 would drop it): the cash stays for rule 8.
            buy6 = [0.0 if buy6[k] < mt else buy6[k] for k in range(K)]
        # Rule 7: a withdrawal sells the classes over their post-withdrawal target, in proportion.
        if w > c:
            G = ((w - c) + CASH_MARGIN) / (1 - cr)
            ep = [max(cv[k] - t[k] * Vp, 0.0) for k in range(K)]
            E = _seqsum(ep)
            g1 = [min(ep[k] * (G / E), sv[k]) for k in range(K)] if E > 0 else [0.0] * K
            U = G - _seqsum(g1)
            sell6 = g1
            if U > 0:
                r = [sv[k] - g1[k] for k in range(K)]
                Rr = _seqsum(r)
                if Rr > 0:
                    f = min(U / Rr, 1.0)
                    sell6 = [g1[k] + r[k] * f for k in range(K)]
        c2 = ((c - w) + _seqsum(sell6) * (1 - cr)) - _seqsum(buy6) * (1 + cr)
        x = [(cv[k] + buy6[k]) - sell6[k] for k in range(K)]
        V2 = _seqsum(x) + c2
        sr = [max(sv[k] - sell6[k], 0.0) for k in range(K)]
        # Rule 8 on the state after the flows.
        sell7, buy7, nobuy, d2 = self.rule7(x, c2, V2, t, b, buyable, buy6, sell6, sr)
        if nobuy:
            account.trigger |= TRIGGER_NO_BUY_FUND
        # Walk 1: the withdrawal's sells, lots in the account's order within each class.
        order = sorted(sellable, key=lambda m: (self.asset_class[self.lot_asset[m]], *self.walk_key(account, m)))
        sold1, whole1 = self.walk(order, sell6, {m: self.lot_quantity[m] for m in order}, set(order))
        remaining = {m: self.lot_quantity[m] - sold1.get(m, 0.0) for m in order}
        sold2, whole2 = self.walk(order, sell7, remaining, set(order))
        # A rule-8 class sell split over funds with a part under the minimum is taken from one fund instead.
        eligible = self.one_fund(order, remaining, sold2, sell7)
        if len(eligible) < len(order):
            sold2, whole2 = self.walk(order, sell7, remaining, eligible)
        # Rule 9: too many short-term gains reduce the rule-8 sells, or defer them.
        if account.taxable and any(s > 0 for s in sell7):
            st_gain = 0.0
            for m in order:
                if m in sold2 and self.today < self.lot_long_from[m]:
                    st_gain = st_gain + (self.price[self.lot_asset[m]] - self.lot_basis[m]) * sold2[m]
            hard = any(abs(d2[k]) > policy.hard_band_multiple * b[k] for k in range(K))
            if st_gain > policy.short_term_gain_limit and not hard:
                sr_red = [0.0] * K
                for m in account.lots:
                    if m in sellable_set and not self.short_term_gain_lot(m):
                        k = self.asset_class[self.lot_asset[m]]
                        sr_red[k] = sr_red[k] + remaining[m] * self.price[self.lot_asset[m]]
                sell7r, buy7r, _, _ = self.rule7(x, c2, V2, t, b, buyable, buy6, sell6, sr_red)
                x3 = [(x[k] - sell7r[k]) + buy7r[k] for k in range(K)]
                c3 = (c2 + _seqsum(sell7r) * (1 - cr)) - _seqsum(buy7r) * (1 + cr)
                V3 = _seqsum(x3) + c3
                still = False
                if V3 > 0:
                    for k in range(K):
                        d3 = x3[k] / V3 - t[k]
                        if abs(d3) > b[k] and abs(d3) * V3 >= mt and not (d3 < 0 and not buyable[k]):
                            still = True
                if still:
                    account.trigger |= TRIGGER_SHORT_TERM_DEFERRED
                    sell7 = [0.0] * K
                    buy7 = [0.0] * K
                    sold2, whole2 = {}, set()
                else:
                    account.trigger |= TRIGGER_SHORT_TERM_REDUCED
                    sell7, buy7 = sell7r, buy7r
                    eligible = {m for m in order if not self.short_term_gain_lot(m)}
                    sold2, whole2 = self.walk(order, sell7, remaining, eligible)
        # Class sells: one trade per fund, its lots in walk order; a lot's two walks add up.
        by_asset: dict[int, list[_Sale]] = {}
        withdrawal_assets: set[int] = set()
        for m in order:
            q1 = sold1.get(m, 0.0)
            q2 = sold2.get(m, 0.0)
            whole = m in whole1 or m in whole2
            quantity = self.lot_quantity[m] if whole else floor_step(q1 + q2)
            if quantity <= 0:
                continue
            asset = self.lot_asset[m]
            by_asset.setdefault(asset, []).append(self.sale(m, quantity))
            if q1 > 0:
                withdrawal_assets.add(asset)
        for asset in sorted(by_asset):
            quantity = 0.0
            for sale in by_asset[asset]:
                quantity = quantity + sale.quantity
            purpose = PURPOSE_WITHDRAWAL if asset in withdrawal_assets else PURPOSE_REBALANCE
            trade = _Trade(asset, -1, purpose, quantity, quantity * self.price[asset], by_asset[asset])
            if trade.amount >= mt:
                account.class_sell_trades.append(trade)
        account.class_buy_dollars = [buy6[k] + buy7[k] for k in range(K)]
        account.class_buy_rebalance = [buy7[k] > 0 for k in range(K)]

    def rule7(
        self,
        x: list[float],
        c2: float,
        V2: float,
        t: list[float],
        b: list[float],
        buyable: list[bool],
        buy6: list[float],
        sell6: list[float],
        sr: list[float],
    ) -> tuple[list[float], list[float], bool, list[float]]:
        """Sell-to-rebalance after the cash flows: (class sells, class buys, a class lacked a buy fund, drift)."""
        policy, K, cr = self.policy, self.K, self.policy.cost_rate
        mt, rk = policy.min_trade, policy.rebalance_to
        mr = rebalance_minimum(policy)
        zeros = [0.0] * K
        if not V2 > 0:
            return zeros, zeros, False, zeros
        d2 = [x[k] / V2 - t[k] for k in range(K)]
        out = [abs(d2[k]) > b[k] and abs(d2[k]) * V2 >= mt for k in range(K)]
        if not any(out):
            return zeros, zeros, False, d2
        hi = [out[k] and d2[k] > 0 and buy6[k] == 0 for k in range(K)]
        lo = [out[k] and d2[k] < 0 and buyable[k] and sell6[k] == 0 for k in range(K)]
        nobuy = any(out[k] and d2[k] < 0 and not buyable[k] for k in range(K))
        sell7 = [
            min(max(x[k] - (t[k] + rk * b[k]) * V2, min(mr, x[k] - t[k] * V2)), sr[k]) if hi[k] else 0.0
            for k in range(K)
        ]
        need = [max((t[k] - rk * b[k]) * V2 - x[k], min(mr, t[k] * V2 - x[k])) if lo[k] else 0.0 for k in range(K)]
        SN = _seqsum(need)
        avail = max(c2, 0.0) + _seqsum(sell7) * (1 - cr)
        if SN * (1 + cr) > avail:
            E = (SN * (1 + cr) - avail) / (1 - cr)
            cand = [not lo[k] and buy6[k] == 0 for k in range(K)]
            ex = [max(min((x[k] - sell7[k]) - t[k] * V2, sr[k] - sell7[k]), 0.0) if cand[k] else 0.0 for k in range(K)]
            X = _seqsum(ex)
            if X > 0:
                f = min(E / X, 1.0)
                take = [ex[k] * f for k in range(K)]
                sell7 = [sell7[k] + take[k] for k in range(K)]
                E = E - _seqsum(take)
            if E > 0:
                room = [
                    max(min((x[k] - sell7[k]) - (t[k] - rk * b[k]) * V2, sr[k] - sell7[k]), 0.0) if cand[k] else 0.0
                    for k in range(K)
                ]
                Rm = _seqsum(room)
                if Rm > 0:
                    f = min(E / Rm, 1.0)
                    sell7 = [sell7[k] + room[k] * f for k in range(K)]
            avail = max(c2, 0.0) + _seqsum(sell7) * (1 - cr)
        buy7 = need
        if SN > 0 and SN * (1 + cr) > avail:
            scale = avail / (SN * (1 + cr))
            buy7 = [need[k] * scale for k in range(K)]
        return sell7, buy7, nobuy, d2

    def walk(
        self, order: list[int], dollars: list[float], remaining: dict[int, float], eligible: set[int]
    ) -> tuple[dict[int, float], set[int]]:
        """Sell ``dollars[k]`` of each class from its lots in ``order``: (quantity sold per lot, lots sold whole)."""
        sold: dict[int, float] = {}
        whole: set[int] = set()
        cumulative: dict[int, float] = {}
        for m in order:
            if m not in eligible:
                continue
            asset = self.lot_asset[m]
            k = self.asset_class[asset]
            price = self.price[asset]
            before = cumulative.get(k, 0.0)
            v = remaining[m] * price
            cumulative[k] = before + v
            take = dollars[k] - before
            if v > 0 and take >= v:
                sold[m] = remaining[m]
                whole.add(m)
            elif take > 0 and v > 0:
                sold[m] = take / price
        return sold, whole

    def one_fund(
        self, order: list[int], remaining: dict[int, float], sold: dict[int, float], dollars: list[float]
    ) -> set[int]:
        """The lots of ``order`` rule 8's walk may take from: a class whose walk sold from two funds or more, one
        of them under min_trade, only those of its fund with the most value left (the lowest index on a tie), if
        that fund holds at least the class's dollars."""
        held: dict[int, float] = {}
        part: dict[int, float] = {}
        for m in order:
            asset = self.lot_asset[m]
            price = self.price[asset]
            held[asset] = held.get(asset, 0.0) + remaining[m] * price
            part[asset] = part.get(asset, 0.0) + sold.get(m, 0.0) * price
        best: dict[int, int] = {}
        for k in range(self.K):
            funds = sorted((a for a in held if self.asset_class[a] == k), key=lambda a: (-held[a], a))
            parts = [a for a in funds if part[a] > 0]
            small = any(part[a] < self.policy.min_trade for a in parts)
            if len(parts) >= 2 and small and held[funds[0]] >= dollars[k]:
                best[k] = funds[0]
        return {
            m
            for m in order
            if self.asset_class[self.lot_asset[m]] not in best
            or self.lot_asset[m] == best[self.asset_class[self.lot_asset[m]]]
        }

    # --- pass C: everything that buys -------------------------------------------------------------------

    def pass_c(self, account: _Account, blocked: set[int]) -> None:
        K, cr = self.K, self.policy.cost_rate
        kept: list[_Trade] = []
        pairs: dict[int, list[_Trade]] = {}
        for trade in account.trades:
            if trade.side < 0:
                pairs.setdefault(trade.link_key, []).append(trade)
        for trade in account.trades:
            if trade.side > 0:
                key = trade.order_code * self.A + trade.asset
                if self.key(account.owner, trade.asset) in blocked:
                    account.trigger |= TRIGGER_NO_BUY_FUND
                    continue
                kept += pairs[key]
                kept.append(trade)
                account.trigger |= TRIGGER_HARVEST if trade.purpose == PURPOSE_SUBSTITUTE else TRIGGER_SWITCH_BACK
        kept += account.class_sell_trades
        sold_assets = {trade.asset for trade in kept if trade.side < 0}
        avail = (account.cash - account.withdrawal) + _seqsum(
            [trade.amount * (1 - cr) for trade in account.class_sell_trades]
        )
        funds = [-1] * K
        total = 0.0
        for k in range(K):
            if account.class_buy_dollars[k] > 0:
                fund = self.buy_fund(account, k, blocked)
                if fund < 0 or fund in sold_assets:
                    account.trigger |= TRIGGER_NO_BUY_FUND
                    continue
                funds[k] = fund
                total = total + account.class_buy_dollars[k]
        scale = 1.0
        if total * (1 + cr) > avail:
            scale = avail / (total * (1 + cr)) if avail > 0 else 0.0
        for k in range(K):
            if funds[k] < 0:
                continue
            purpose = PURPOSE_REBALANCE if account.class_buy_rebalance[k] else PURPOSE_CASH
            buy = self.buy_trade(funds[k], account.class_buy_dollars[k] * scale, purpose)
            if buy is not None:
                kept.append(buy)
        for trade in kept:
            trade.order_code = TRADE_ORDER[(trade.side, trade.purpose)]
        kept.sort(key=lambda trade: trade.order_code * self.A + trade.asset)
        account.trades = kept
        if kept:
            account.status = STATUS_TRADE
        elif account.trigger & TRIGGER_SHORT_TERM_DEFERRED:
            account.status = STATUS_DEFERRED

    def run(self) -> Plan:
        K = self.K
        for account in self.accounts:
            self.pass_a(account)
        planned = [a for a in self.accounts if a.status == STATUS_IN_BAND]
        candidate_groups = {self.key(a.owner, self.lot_asset[m]) for a in planned for m in a.harvest_candidates}
        for account in planned:
            self.pass_b(account, candidate_groups)
        blocked = set(self.loss_sold)
        for account in planned:
            if not account.taxable:
                continue
            for trade in account.trades + account.class_sell_trades:
                if trade.side < 0:
                    for sale in trade.sales:
                        if sale.gain < 0:
                            blocked.add(self.key(account.owner, self.lot_asset[sale.lot]))
        for account in planned:
            self.pass_c(account, blocked)
        return self.assemble(K)

    def assemble(self, K: int) -> Plan:
        n = len(self.accounts)
        trade_rows: list[tuple[int, _Trade]] = [(a.row, t) for a in self.accounts for t in a.trades]
        index_of: dict[tuple[int, int], int] = {}
        for j, (row, trade) in enumerate(trade_rows):
            index_of[(row, trade.order_code * self.A + trade.asset)] = j
        sale_trade: list[int] = []
        sale_lot: list[int] = []
        sale_quantity: list[float] = []
        sale_gain: list[float] = []
        sale_long: list[bool] = []
        realized_short = [0.0] * n
        realized_long = [0.0] * n
        harvested = [0.0] * n
        for j, (row, trade) in enumerate(trade_rows):
            for sale in trade.sales:
                sale_trade.append(j)
                sale_lot.append(sale.lot)
                sale_quantity.append(sale.quantity)
                sale_gain.append(sale.gain)
                sale_long.append(sale.long)
                if sale.long:
                    realized_long[row] = realized_long[row] + sale.gain
                else:
                    realized_short[row] = realized_short[row] + sale.gain
                if sale.gain < 0:
                    harvested[row] = harvested[row] - sale.gain
        tax = [realized_short[i] * self.short_rate[i] + realized_long[i] * self.long_rate[i] for i in range(n)]
        return Plan.build(
            status=[a.status for a in self.accounts],
            trigger=[a.trigger for a in self.accounts],
            value=[a.value for a in self.accounts],
            weights=[a.weights for a in self.accounts],
            cash_weight=[a.cash_weight for a in self.accounts],
            drift=[a.drift for a in self.accounts],
            band=[a.band for a in self.accounts],
            total_drift=[a.total_drift for a in self.accounts],
            classes=K,
            trade_account=[row for row, _ in trade_rows],
            trade_asset=[t.asset for _, t in trade_rows],
            trade_side=[t.side for _, t in trade_rows],
            trade_quantity=[t.quantity for _, t in trade_rows],
            trade_amount=[t.amount for _, t in trade_rows],
            trade_purpose=[t.purpose for _, t in trade_rows],
            trade_link=[index_of[(row, t.link_key)] if t.link_key >= 0 else -1 for row, t in trade_rows],
            sale_trade=sale_trade,
            sale_lot=sale_lot,
            sale_lot_id=[self.lot_id[m] for m in sale_lot],
            sale_quantity=sale_quantity,
            sale_gain=sale_gain,
            sale_long=sale_long,
            realized_short=realized_short,
            realized_long=realized_long,
            harvested_loss=harvested,
            estimated_tax=tax,
        )


def reference_plan(
    universe: UniverseArrays, targets: TargetArrays, book: BookArrays, policy: EnginePolicy, today: int
) -> Plan:
    """The plan ``rebalance_plan`` must return, computed one account at a time."""
    return _Reference(universe, targets, book, policy, today).run()


def exact_trades_reference(
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
    """``portfolios.rebalancer.exact_trades`` as first written, one Decimal operation at a time: the oracle the
    tests hold the fast boundary to (the same trades, field by field and Decimal for Decimal).

    One account's planned trades as exact trades, booked as the broker books them.

    ``lots`` maps lot id to the shares it still holds, ``holdings`` ticker to the shares held, ``reserve`` is
    cash that must stay (pending withdrawals). Sells come first, in plan order: each lot pick is the planned
    quantity on the 1e-6 grid (a lot the plan took whole: its exact quantity), never more than the lot or the
    fund still holds; a sell whose notional is under ``min_trade`` is dropped. A pair's buy (substitute,
    switch back) spends no more than its kept sells brought in, and is dropped with them. Then the buys, in
    plan order, scaled down together if they need more than cash - reserve, and each cut further to the
    largest quantity that keeps cash after it and its cost >= ``reserve``: exactly, with the broker's cent
    rounding (``buy_cash_effect``); a buy cut under ``min_trade`` is dropped. If the sells leave cash under
    the reserve, nothing is bought.
    """
    if cash < 0 or reserve < 0:
        raise ValueError("Cash and the reserve must not be negative.")
    lot_left = dict(lots)
    held_left = dict(holdings)
    available = cash
    result: list[PlannedTrade] = []
    pair_proceeds: dict[int, Decimal] = {}
    trades = plan.account_trades(row)
    for j in trades:
        if plan.trade_side[j] != SELL:
            continue
        ticker = tickers[int(plan.trade_asset[j])]
        price = prices[ticker]
        link = int(plan.trade_link[j])
        if link >= 0:
            pair_proceeds.setdefault(link, ZERO)
        picks: list[LotPick] = []
        room = held_left.get(ticker, ZERO)
        for s in plan.trade_sales(j):
            lot_id = int(plan.sale_lot_id[s])
            left = lot_left.get(lot_id, ZERO)
            planned = float(plan.sale_quantity[s])
            want = left if planned >= float(left) else min(_shares(planned), left)
            want = min(want, room)
            if want > 0:
                picks.append(LotPick(lot_id, want))
                room -= want
        quantity = sum((pick.quantity for pick in picks), ZERO)
        if quantity <= 0:
            continue
        gross, cost = sell_cash_effect(quantity, price, cost_rate)
        if gross < min_trade:
            continue
        for pick in picks:
            lot_left[pick.lot_id] = lot_left[pick.lot_id] - pick.quantity
        held_left[ticker] = held_left.get(ticker, ZERO) - quantity
        available += gross - cost
        if link >= 0:
            pair_proceeds[link] += gross - cost
        purpose = PURPOSES[int(plan.trade_purpose[j])]
        result.append(PlannedTrade(ticker, "sell", quantity, price, gross, cost, purpose, tuple(picks), j))

    wanted: dict[int, Decimal] = {}
    for j in trades:
        if plan.trade_side[j] != BUY:
            continue
        price = prices[tickers[int(plan.trade_asset[j])]]
        quantity = _shares(float(plan.trade_quantity[j]))
        if j in pair_proceeds:
            if pair_proceeds[j] <= 0:
                continue
            quantity = min(quantity, floor_shares(pair_proceeds[j] / (price * (1 + cost_rate))))
            quantity = _fit_buy(quantity, price, cost_rate, pair_proceeds[j])
        wanted[j] = quantity
    budget = available - reserve
    need = sum((q * prices[tickers[int(plan.trade_asset[j])]] * (1 + cost_rate) for j, q in wanted.items()), ZERO)
    if need > budget:
        factor = budget / need if budget > 0 else ZERO
        wanted = {j: floor_shares(q * factor) for j, q in wanted.items()}
    for j, quantity in wanted.items():
        ticker = tickers[int(plan.trade_asset[j])]
        price = prices[ticker]
        quantity = _fit_buy(quantity, price, cost_rate, available - reserve)
        gross, cost = buy_cash_effect(quantity, price, cost_rate)
        if quantity <= 0 or gross < min_trade:
            continue
        available -= gross + cost
        purpose = PURPOSES[int(plan.trade_purpose[j])]
        result.append(PlannedTrade(ticker, "buy", quantity, price, gross, cost, purpose, (), j))
    return result
