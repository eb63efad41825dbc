"""Benchmark: drift check and tax-aware trade generation for 1,000,000 in-memory accounts.

A synthetic book (fixed seed) on the shipped universe (57 funds, 22 classes, the harvest pairs and tracked
indexes of ``portfolios/universe.py``): 1,000,000 accounts of 10 positions and about 30 lots each, 1,000
distinct targets (ten classes each, some funds excluded), 70% taxable (tax-minimizing lots) and 30% IRAs (FIFO,
no tax), owners with one to three accounts, prices drifted since purchase so that some accounts are out of
band, some hold harvestable losses, some sit on a deposit or owe a withdrawal, some hold a substitute bought
more than a month ago, and some owners have recent loss sales or purchases (wash-sale state).

The headline is the product's whole path from arrays to the trades it stores: ``rebalance_plan`` over the book,
then the exact Decimal boundary (``exact_trades``, what the pipeline turns each trading account's plan into) for
every account that trades. The boundary's Decimal inputs (lots, holdings, cash, the pending withdrawal as the
reserve, prices) are what the pipeline reads from the database: they are built outside the clock, in batches.
Building the book is not counted either. Both parts are printed, wall-clock and CPU seconds of this process (on
a shared machine the wall clock includes waiting for a core: the load average is printed), with the counts by
status and trigger and the peak memory. Finally the per-account reference (``reference_plan``, then the Decimal
boundary as first written, ``exact_trades_reference``) and the product's path run on the first 10,000 accounts
in the same process: the plans and the exact trades must agree, and the ratio of the reference's time per
account to the product path's time per account over the whole book is the speed-up. Not a test: run it and read
the numbers.

    .venv/bin/python benchmarks/rebalance.py [accounts]
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable
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
    PlannedTrade,
    TargetArrays,
    UniverseArrays,
    exact_trades,
    rebalance_plan,
)
from portfolios.rebalancer_reference import exact_trades_reference, reference_plan
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


BoundaryInput = tuple[int, dict[int, Decimal], dict[str, Decimal], Decimal, Decimal]


def boundary_inputs(plan: Plan, universe: UniverseArrays, book: BookArrays, rows: np.ndarray) -> list[BoundaryInput]:
    """Per trading account, what the pipeline reads from the database for it: (row, lot shares by lot id, shares by
    ticker, cash, the pending withdrawal as the reserve)."""
    starts = np.searchsorted(book.lot_account, rows)
    stops = np.searchsorted(book.lot_account, rows + 1)
    inputs = []
    for row, start, stop in zip(rows.tolist(), starts.tolist(), stops.tolist(), strict=True):
        lot_quantities: dict[int, Decimal] = {}
        holdings: dict[str, Decimal] = {}
        for lot_id, asset, quantity in zip(
            book.lot_id[start:stop].tolist(),
            book.lot_asset[start:stop].tolist(),
            book.lot_quantity[start:stop].tolist(),
            strict=True,
        ):
            shares = lot_quantities[lot_id] = Decimal(repr(quantity))
            ticker = universe.tickers[asset]
            holdings[ticker] = holdings.get(ticker, Decimal(0)) + shares
        cash = Decimal(repr(float(book.cash[row])))
        reserve = Decimal(repr(float(book.withdrawal[row])))
        inputs.append((row, lot_quantities, holdings, cash, reserve))
    return inputs


def run_boundary(
    boundary: Callable[..., list[PlannedTrade]],
    plan: Plan,
    universe: UniverseArrays,
    book: BookArrays,
    min_trade: Decimal,
    rows: np.ndarray,
) -> tuple[float, float, int, list[list[PlannedTrade]] | None]:
    """(wall seconds, CPU seconds, exact trades) of ``boundary`` over ``rows``, each batch's Decimal inputs built
    outside the clock; the trades themselves too when there are few rows (to compare two boundaries)."""
    prices = {t: Decimal(repr(float(p))) for t, p in zip(universe.tickers, universe.price, strict=True)}
    cost_rate = Decimal("0.0005")
    keep = len(rows) <= SAMPLE
    kept: list[list[PlannedTrade]] = []
    wall = cpu = 0.0
    trades = 0
    for batch in range(0, len(rows), BOUNDARY_BATCH):
        inputs = boundary_inputs(plan, universe, book, rows[batch : batch + BOUNDARY_BATCH])
        start, started_cpu = time.perf_counter(), time.process_time()
        for row, lot_quantities, holdings, cash, reserve in inputs:
            exact = boundary(
                plan,
                row,
                tickers=universe.tickers,
                lots=lot_quantities,
                holdings=holdings,
                cash=cash,
                prices=prices,
                cost_rate=cost_rate,
                min_trade=min_trade,
                reserve=reserve,
            )
            trades += len(exact)
            if keep:
                kept.append(exact)
        wall += time.perf_counter() - start
        cpu += time.process_time() - started_cpu
    return wall, cpu, trades, kept if keep else None


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def main() -> None:
    accounts = int(sys.argv[1]) if len(sys.argv) > 1 else ACCOUNTS
    print(f"machine: {load()}")
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
    start, started_cpu = time.perf_counter(), time.process_time()
    plan = rebalance_plan(universe, targets, book, policy, TODAY, timings=timings)
    plan_seconds = time.perf_counter() - start
    plan_cpu = time.process_time() - started_cpu
    print(
        f"rebalance_plan: {plan_seconds:.2f} s ({plan_cpu:.2f} s of CPU), {accounts / plan_seconds:,.0f} accounts/s, "
        f"{len(plan.trade_account):,} trades, {len(plan.sale_lot):,} lot sales"
    )
    print("  " + ", ".join(f"{phase} {spent:.2f} s" for phase, spent in timings.items()))
    print("by status: ", plan.count_by_status())
    print("by trigger:", plan.count_by_trigger())
    print(f"peak memory after the plan (max RSS, book included): {peak_gib():.2f} GiB")

    trading = np.flatnonzero(plan.status == STATUS_TRADE)
    boundary_seconds, boundary_cpu, exact_count, _ = run_boundary(
        exact_trades, plan, universe, book, rebalancing.min_trade, trading
    )
    print(
        f"exact boundary (exact_trades): {len(trading):,} trading accounts, {exact_count:,} exact trades in "
        f"{boundary_seconds:.2f} s ({boundary_cpu:.2f} s of CPU), "
        f"{boundary_seconds / max(len(trading), 1) * 1e6:.1f} us per account "
        f"({boundary_cpu / max(len(trading), 1) * 1e6:.1f} us of CPU)"
    )
    seconds = plan_seconds + boundary_seconds
    cpu_seconds = plan_cpu + boundary_cpu
    rate = accounts / seconds
    print(
        f"end to end (plan + exact boundary): {seconds:.2f} s ({cpu_seconds:.2f} s of CPU), {rate:,.0f} accounts/s; "
        f"peak memory {peak_gib():.2f} GiB; {load()}"
    )

    # The reference on a sample: the per-account oracle of the plan, then the Decimal boundary as first written.
    sample = first_accounts(book, min(SAMPLE, accounts))
    sample_accounts = len(sample.account_id)
    start = time.perf_counter()
    engine_sample = rebalance_plan(universe, targets, sample, policy, TODAY)
    engine_seconds = time.perf_counter() - start
    start = time.perf_counter()
    reference_sample = reference_plan(universe, targets, sample, policy, TODAY)
    reference_plan_seconds = time.perf_counter() - start
    sample_trading = np.flatnonzero(engine_sample.status == STATUS_TRADE)
    fast_seconds, _, _, fast_trades = run_boundary(
        exact_trades, engine_sample, universe, sample, rebalancing.min_trade, sample_trading
    )
    reference_boundary_seconds, _, _, reference_trades = run_boundary(
        exact_trades_reference, reference_sample, universe, sample, rebalancing.min_trade, sample_trading
    )
    reference_seconds = reference_plan_seconds + reference_boundary_seconds
    agree = plans_agree(engine_sample, reference_sample)
    exact_agree = fast_trades == reference_trades and repr(fast_trades) == repr(reference_trades)
    print(
        f"reference on {sample_accounts:,} accounts: {reference_seconds:.2f} s "
        f"({sample_accounts / reference_seconds:,.0f} accounts/s): reference_plan {reference_plan_seconds:.2f} s, "
        f"exact_trades_reference {reference_boundary_seconds:.2f} s for {len(sample_trading):,} trading accounts; "
        f"the product's path on the same accounts {engine_seconds + fast_seconds:.2f} s; plans agree: {agree}; "
        f"exact trades agree: {exact_agree}"
    )
    speedup = (reference_seconds / sample_accounts) / (seconds / accounts)
    scale = 1_000_000 / accounts
    print(
        f"BENCH rebalance_1m_accounts_seconds {seconds * scale:.2f} s target <20 "
        f"(plan {plan_seconds * scale:.2f} s + exact boundary {boundary_seconds * scale:.2f} s; "
        f"CPU {cpu_seconds * scale:.2f} s)"
    )
    print(f"BENCH rebalance_accounts_per_second {rate:.0f} accounts/s target >=50000")
    print(f"BENCH rebalance_speedup_vs_reference {speedup:.1f} x target >=10")


if __name__ == "__main__":
    main()
