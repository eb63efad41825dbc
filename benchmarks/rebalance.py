"""Benchmark: drift check and tax-aware trade generation for 1,000,000 in-memory accounts.

A synthetic book (fixed seed) on the shipped universe (57 funds, 22 classes, the harvest pairs and tracked
indexes of ``portfolios/universe.py``): 1,000,000 accounts of 10 positions and about 30 lots each, 1,000
distinct targets (ten classes each, some funds excluded), 70% taxable (tax-minimizing lots) and 30% IRAs (FIFO,
no tax), owners with one to three accounts, prices drifted since purchase so that some accounts are out of
band, some hold harvestable losses, some sit on a deposit or owe a withdrawal, some hold a substitute bought
more than a month ago, and some owners have recent loss sales or purchases (wash-sale state).

Times ``rebalance_plan`` over the whole book (building the book is not counted), prints accounts per second and
the counts by status and trigger, then times the exact Decimal boundary (``exact_trades``) for every account
that trades (its Decimal inputs built outside the clock), and finally runs the per-account reference
(``portfolios.rebalancer_reference``) and the engine on the first 10,000 accounts in the same process: checks
that they agree and prints the ratio. Not a test: run it and read the numbers.

    .venv/bin/python benchmarks/rebalance.py [accounts]
"""

from __future__ import annotations

import resource
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portfolios.policy import RebalancingPolicy  # after the path set-up, so the script runs from anywhere
from portfolios.rebalancer import (
    FIFO,
    STATUS_TRADE,
    TAX_MIN,
    BookArrays,
    EnginePolicy,
    Plan,
    TargetArrays,
    UniverseArrays,
    exact_trades,
    rebalance_plan,
)
from portfolios.rebalancer_reference import reference_plan
from portfolios.universe import ASSET_CLASSES, ASSETS, SUBSTITUTES, TRACKED_INDEX

SEED = 20260801
ACCOUNTS = 1_000_000
TARGETS = 1_000
CLASSES_PER_TARGET = 10
SAMPLE = 10_000
BOUNDARY_BATCH = 20_000
TODAY = 740_000  # a date ordinal (2027-01-04)


def synthetic_universe(rng: np.random.Generator) -> UniverseArrays:
    tickers = [t for t, *_ in ASSETS]
    codes = [c for c, *_ in ASSET_CLASSES]
    class_index = {c: i for i, c in enumerate(codes)}
    asset_class = np.array([class_index[c] for _, _, c, _ in ASSETS], dtype=np.int64)
    indexes = sorted(set(TRACKED_INDEX.values()))
    wash_group = np.array([indexes.index(TRACKED_INDEX[t]) for t in tickers], dtype=np.int64)
    position = {t: i for i, t in enumerate(tickers)}
    substitute = np.full(len(tickers), -1, dtype=np.int64)
    for primary, secondary in SUBSTITUTES.items():
        substitute[position[primary]] = position[secondary]
    price = np.round(rng.uniform(20, 400, size=len(tickers)), 2)
    return UniverseArrays(tickers, asset_class, codes, wash_group, substitute, price)


def synthetic_targets(rng: np.random.Generator, universe: UniverseArrays) -> TargetArrays:
    model = [i for i, (_, _, _, in_model) in enumerate(ASSETS) if in_model]  # one model fund per class
    K = len(universe.class_codes)
    A = len(universe.tickers)
    weights = np.zeros((TARGETS, K))
    buy_asset = np.full((TARGETS, K), -1, dtype=np.int64)
    allowed = rng.random((TARGETS, A)) > 0.03  # ESG exclusions and the restricted list
    for t in range(TARGETS):
        funds = rng.choice(model, size=CLASSES_PER_TARGET, replace=False)
        classes = universe.asset_class[funds]
        weights[t, classes] = np.round(rng.dirichlet(np.full(CLASSES_PER_TARGET, 2.0)), 6)
        allowed[t, funds] = True
        buy_asset[t, classes] = funds
    weights[:, 0] += 1 - weights.sum(axis=1)  # exact sums (class 0 is in no target at 0 weight after this)
    weights = np.maximum(weights, 0)
    weights /= weights.sum(axis=1, keepdims=True)
    return TargetArrays(weights, buy_asset, allowed)


def synthetic_book(
    rng: np.random.Generator, universe: UniverseArrays, targets: TargetArrays, accounts: int
) -> BookArrays:
    n = accounts
    target = rng.integers(0, TARGETS, size=n)
    owner = np.cumsum(rng.random(n) < 0.6)  # about 1.7 accounts per owner, adjacent
    taxable = rng.random(n) < 0.7
    method = np.where(taxable, TAX_MIN, FIFO).astype(np.int8)
    short_rate = np.where(taxable, rng.choice([0.22, 0.24, 0.32, 0.37], size=n), 0.0)
    long_rate = np.where(taxable, rng.choice([0.15, 0.2], size=n), 0.0)
    value = np.exp(rng.normal(np.log(60_000), 1.0, size=n))
    # Positions: the target's ten buy funds; 1% of them the substitute instead (an earlier harvest).
    held_class = np.argsort(-targets.weights[target], axis=1, kind="stable")[:, :CLASSES_PER_TARGET]
    fund = np.take_along_axis(targets.buy_asset[target], held_class, axis=1)
    weight = np.take_along_axis(targets.weights[target], held_class, axis=1)
    has_sub = universe.substitute[fund] >= 0
    use_sub = has_sub & (rng.random(fund.shape) < 0.01)
    fund = np.where(use_sub, universe.substitute[fund], fund)
    drift = np.exp(rng.normal(0, 0.05, size=fund.shape))  # market moves since the last rebalance
    drift *= np.where(rng.random((n, 1)) < 0.1, np.exp(rng.normal(0, 0.5, size=fund.shape)), 1.0)
    position_value = weight * value[:, None] * drift
    cash = np.round(value * rng.uniform(0.0, 0.008, size=n), 2)
    deposit = rng.random(n) < 0.08
    cash[deposit] += np.round(rng.uniform(500, 20_000, size=deposit.sum()), 2)
    withdrawal = np.where(rng.random(n) < 0.02, np.round(value * rng.uniform(0.02, 0.2, size=n), 2), 0.0)
    # Lots: 1 to 5 per position (3 on average), split evenly, bought at a basis the price has moved from.
    lots_per = rng.integers(1, 6, size=fund.shape)
    pos_account = np.repeat(np.arange(n), CLASSES_PER_TARGET)
    pos_fund = fund.ravel()
    order = np.lexsort((pos_fund, pos_account))  # lots sorted by account, then fund
    pos_account, pos_fund = pos_account[order], pos_fund[order]
    pos_lots = lots_per.ravel()[order]
    pos_value = position_value.ravel()[order]
    pos_sub = use_sub.ravel()[order]
    lot_account = np.repeat(pos_account, pos_lots)
    lot_asset = np.repeat(pos_fund, pos_lots)
    m = len(lot_account)
    price = universe.price[lot_asset]
    lot_value = np.repeat(pos_value / pos_lots, pos_lots)
    quantity = np.maximum(np.floor(lot_value / price * 1e6) / 1e6, 1e-6)
    # Each account's own history: most bought well below today's prices, some near a recent top.
    account_return = np.repeat(np.repeat(rng.normal(0.15, 0.12, size=n), CLASSES_PER_TARGET)[order], pos_lots)
    basis = np.round(price * np.exp(-account_return + rng.normal(0, 0.05, size=m)), 2)
    age = rng.integers(0, 1500, size=m)
    age = np.where(np.repeat(pos_sub, pos_lots), rng.integers(20, 120, size=m), age)  # substitutes: recent
    acquired = TODAY - age
    G = int(universe.wash_group.max()) + 1
    owners_with_state = rng.choice(owner, size=n // 50)
    loss_sold = owners_with_state * G + rng.integers(0, G, size=len(owners_with_state))
    recent_buys = owners_with_state * G + rng.integers(0, G, size=len(owners_with_state))
    return BookArrays(
        account_id=np.arange(1, n + 1, dtype=np.int64),
        owner=owner.astype(np.int64),
        taxable=taxable,
        lot_method=method,
        short_rate=short_rate,
        long_rate=long_rate,
        cash=cash,
        withdrawal=withdrawal,
        target=target.astype(np.int64),
        lot_account=lot_account.astype(np.int64),
        lot_id=np.arange(1, m + 1, dtype=np.int64),
        lot_asset=lot_asset.astype(np.int64),
        lot_quantity=quantity,
        lot_basis=basis,
        lot_acquired=acquired.astype(np.int64),
        lot_long_from=(acquired + 366).astype(np.int64),
        loss_sold=np.unique(loss_sold).astype(np.int64),
        recent_buys=np.unique(recent_buys).astype(np.int64),
    )


def first_accounts(book: BookArrays, count: int) -> BookArrays:
    lots = int(np.searchsorted(book.lot_account, count))
    fields = {name: getattr(book, name) for name in BookArrays.__dataclass_fields__}
    for name, values in fields.items():
        if name.startswith("lot_") and name != "lot_method":
            fields[name] = values[:lots]
        elif name not in ("loss_sold", "recent_buys"):
            fields[name] = values[:count]
    return BookArrays(**fields)


def plans_agree(a: Plan, b: Plan) -> bool:
    exact = ("status", "trigger", "trade_account", "trade_asset", "trade_side", "trade_purpose", "sale_lot")
    close = ("trade_quantity", "trade_amount", "sale_quantity", "sale_gain", "estimated_tax")
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in exact) and all(
        getattr(a, f).shape == getattr(b, f).shape and np.allclose(getattr(a, f), getattr(b, f), atol=1e-6)
        for f in close
    )


def time_boundary(plan: Plan, universe: UniverseArrays, book: BookArrays, policy: RebalancingPolicy) -> float:
    """Seconds of ``exact_trades`` over every trading account, in batches whose Decimal inputs (what the pipeline
    reads from the database) are built outside the clock."""
    rows = np.flatnonzero(plan.status == STATUS_TRADE)
    prices = {t: Decimal(repr(float(p))) for t, p in zip(universe.tickers, universe.price, strict=True)}
    starts = np.searchsorted(book.lot_account, np.arange(len(book.account_id) + 1))
    cost_rate = Decimal("0.0005")
    elapsed = 0.0
    trades = 0
    for batch in range(0, len(rows), BOUNDARY_BATCH):
        inputs = []
        for row in rows[batch : batch + BOUNDARY_BATCH]:
            lots = range(starts[row], starts[row + 1])
            lot_quantities = {int(book.lot_id[m]): Decimal(repr(float(book.lot_quantity[m]))) for m in lots}
            holdings: dict[str, Decimal] = {}
            for m in lots:
                ticker = universe.tickers[int(book.lot_asset[m])]
                holdings[ticker] = holdings.get(ticker, Decimal(0)) + lot_quantities[int(book.lot_id[m])]
            cash = Decimal(repr(float(book.cash[row])))
            reserve = Decimal(repr(float(book.withdrawal[row])))
            inputs.append((int(row), lot_quantities, holdings, cash, reserve))
        start = time.perf_counter()
        for row, lot_quantities, holdings, cash, reserve in inputs:
            trades += len(
                exact_trades(
                    plan,
                    row,
                    tickers=universe.tickers,
                    lots=lot_quantities,
                    holdings=holdings,
                    cash=cash,
                    prices=prices,
                    cost_rate=cost_rate,
                    min_trade=policy.min_trade,
                    reserve=reserve,
                )
            )
        elapsed += time.perf_counter() - start
    print(
        f"exact boundary: {len(rows):,} trading accounts, {trades:,} exact trades in {elapsed:.2f} s "
        f"({elapsed / max(len(rows), 1) * 1e6:.0f} us per account)"
    )
    return elapsed


def main() -> None:
    accounts = int(sys.argv[1]) if len(sys.argv) > 1 else ACCOUNTS
    rng = np.random.default_rng(SEED)
    started = time.perf_counter()
    universe = synthetic_universe(rng)
    targets = synthetic_targets(rng, universe)
    book = synthetic_book(rng, universe, targets, accounts)
    print(
        f"synthetic book: {accounts:,} accounts, {len(book.lot_account):,} lots, {TARGETS:,} targets "
        f"(built in {time.perf_counter() - started:.1f} s)"
    )
    rebalancing = RebalancingPolicy()
    policy = EnginePolicy.from_policy(rebalancing, cost_rate=Decimal("0.0005"))

    timings: dict[str, float] = {}
    start, cpu = time.perf_counter(), time.process_time()
    plan = rebalance_plan(universe, targets, book, policy, TODAY, timings=timings)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu
    rate = accounts / seconds
    print(
        f"rebalance_plan: {seconds:.2f} s ({cpu_seconds:.2f} s of CPU), {rate:,.0f} accounts/s, "
        f"{len(plan.trade_account):,} trades, {len(plan.sale_lot):,} lot sales"
    )
    print("  " + ", ".join(f"{phase} {spent:.2f} s" for phase, spent in timings.items()))
    print("by status: ", plan.count_by_status())
    print("by trigger:", plan.count_by_trigger())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(f"peak memory (max RSS, book included): {peak:.2f} GiB")

    time_boundary(plan, universe, book, rebalancing)

    sample = first_accounts(book, min(SAMPLE, accounts))
    start = time.perf_counter()
    engine_sample = rebalance_plan(universe, targets, sample, policy, TODAY)
    engine_seconds = time.perf_counter() - start
    start = time.perf_counter()
    reference_sample = reference_plan(universe, targets, sample, policy, TODAY)
    reference_seconds = time.perf_counter() - start
    agree = plans_agree(engine_sample, reference_sample)
    print(
        f"reference on {len(sample.account_id):,} accounts: {reference_seconds:.2f} s "
        f"({len(sample.account_id) / reference_seconds:,.0f} accounts/s), engine {engine_seconds:.3f} s; "
        f"plans agree: {agree}"
    )
    speedup = (reference_seconds / len(sample.account_id)) / (seconds / accounts)
    print(f"BENCH rebalance_1m_accounts_seconds {seconds * 1_000_000 / accounts:.2f} s target <20")
    print(f"BENCH rebalance_accounts_per_second {rate:.0f} accounts/s target >=50000")
    print(f"BENCH rebalance_speedup_vs_reference {speedup:.1f} x target >=10")


if __name__ == "__main__":
    main()
