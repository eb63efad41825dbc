"""Small random books for the rebalancing engine's tests (not a test module: no ``test_`` prefix).

Values are drawn from coarse grids (prices and bases in cents, round cash, few distinct weights) so that ties
between the engine's and the reference's decisions actually occur: both must break them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from portfolios.rebalancer import BookArrays, EnginePolicy, TargetArrays, UniverseArrays

TODAY = 739_000  # a date ordinal (2024-04-04)

# 4 classes, 2 funds each (primary, substitute) plus fund 8: a twin of fund 0 (same wash group, same class).
CLASS_OF = np.array([0, 0, 1, 1, 2, 2, 3, 3, 0])
TICKERS = ["P0", "S0", "P1", "S1", "P2", "S2", "P3", "S3", "T0"]
CLASS_CODES = ["c0", "c1", "c2", "c3"]


@dataclass(frozen=True)
class Case:
    universe: UniverseArrays
    targets: TargetArrays
    book: BookArrays
    policy: EnginePolicy
    today: int


def random_case(
    seed: int,
    *,
    accounts: int = 8,
    owners: int = 3,
    max_lots: int = 8,
    nan_price: bool = True,
    short_term: bool = False,
) -> Case:
    """A random book; ``short_term`` makes the short-term-gain rule bite (a low limit, a wide hard band, many
    lots of a few funds, half of them recent gains)."""
    rng = np.random.default_rng(seed)
    A = len(TICKERS)
    groups = np.array([0, 1, 2, 3, 4, 5, 6, 7, 0])
    if rng.random() < 0.3:
        groups[7] = 6  # a substitute that is substantially identical: never a harvest target
    substitute = np.array([1, -1, 3, -1, 5, -1, 7, -1, -1])
    if rng.random() < 0.5:
        substitute[1] = 0  # the substitute's own substitute is the primary
    price = rng.choice([10.0, 20.0, 25.5, 50.0, 100.0, 101.37, 250.0], size=A)
    if nan_price and rng.random() < 0.2:
        price[rng.integers(A)] = np.nan
    universe = UniverseArrays(
        tickers=TICKERS,
        asset_class=CLASS_OF.copy(),
        class_codes=CLASS_CODES,
        wash_group=groups,
        substitute=substitute,
        price=price,
    )
    T = 3
    raw = rng.choice([0, 0, 1, 2, 3, 5], size=(T, 4)).astype(np.float64)
    raw[raw.sum(axis=1) == 0, 0] = 1
    weights = raw / raw.sum(axis=1, keepdims=True)
    buy_asset = np.tile(np.array([0, 2, 4, 6]), (T, 1))
    swap = rng.random((T, 4)) < 0.15
    buy_asset[swap] += 1
    buy_asset[rng.random((T, 4)) < 0.05] = -1
    allowed = rng.random((T, A)) > 0.08
    targets = TargetArrays(weights=weights, buy_asset=buy_asset, allowed=allowed)

    n = accounts
    owner = rng.integers(0, owners, size=n)
    taxable = rng.random(n) < 0.7
    method = np.where(taxable, rng.integers(0, 3, size=n), 2).astype(np.int8)
    short_rate = np.where(taxable, rng.choice([0.24, 0.37], size=n), 0.0)
    long_rate = np.where(taxable, rng.choice([0.15, 0.2], size=n), 0.0)
    cash = rng.choice([0.0, 0.0, 40.0, 150.0, 1000.0, 5000.0, 25000.0], size=n)
    withdrawal = np.where(rng.random(n) < 0.2, rng.choice([100.0, 2000.0, 8000.0], size=n), 0.0)
    target = rng.integers(-1, T, size=n)
    target = np.where(rng.random(n) < 0.9, rng.integers(0, T, size=n), -1)

    rows, assets, qty, basis, acquired = [], [], [], [], []
    for i in range(n):
        k = rng.integers(0, max_lots + 1)
        for _ in range(k):
            a = int(rng.choice([0, 2])) if short_term and rng.random() < 0.8 else int(rng.integers(0, A))
            p = price[a] if not np.isnan(price[a]) else 40.0
            rows.append(i)
            assets.append(a)
            qty.append(float(rng.choice([1.0, 2.5, 10.0, 33.333333, 80.0, 150.0, 0.000004])))
            basis.append(round(float(p * rng.choice([0.5, 0.8, 0.94, 0.96, 1.0, 1.1, 1.3, 2.0])), 2))
            ages = [40, 200, 900] if short_term else [0, 10, 29, 31, 40, 200, 365, 366, 367, 900]
            acquired.append(TODAY - int(rng.choice(ages)))
    order = np.lexsort((np.arange(len(rows)), np.array(assets, dtype=np.int64), np.array(rows, dtype=np.int64)))
    lot_account = np.array(rows, dtype=np.int64)[order]
    lot_asset = np.array(assets, dtype=np.int64)[order]
    lot_acquired = np.array(acquired, dtype=np.int64)[order]
    G = int(groups.max()) + 1
    all_keys = (np.arange(owners)[:, None] * G + np.arange(G)[None, :]).ravel()
    loss_sold = all_keys[rng.random(len(all_keys)) < 0.1]
    recent_buys = all_keys[rng.random(len(all_keys)) < 0.1]
    book = BookArrays(
        account_id=np.arange(100, 100 + n, dtype=np.int64),
        owner=owner.astype(np.int64),
        taxable=taxable,
        lot_method=method,
        short_rate=short_rate,
        long_rate=long_rate,
        cash=cash,
        withdrawal=withdrawal,
        target=target.astype(np.int64),
        lot_account=lot_account,
        lot_id=rng.permutation(len(rows)).astype(np.int64) + 1,
        lot_asset=lot_asset,
        lot_quantity=np.array(qty, dtype=np.float64)[order],
        lot_basis=np.array(basis, dtype=np.float64)[order],
        lot_acquired=lot_acquired,
        lot_long_from=lot_acquired + 366,
        loss_sold=loss_sold.astype(np.int64),
        recent_buys=recent_buys.astype(np.int64),
    )
    policy = EnginePolicy(
        band_absolute=float(rng.choice([0.02, 0.05, 0.1])),
        band_relative=float(rng.choice([0.1, 0.25, 1.0])),
        rebalance_to=float(rng.choice([0.0, 0.5, 1.0])),
        min_trade=float(rng.choice([0.0, 50.0, 500.0])),
        short_term_gain_limit=float(rng.choice([0.0, 500.0, 1e9])),
        hard_band_multiple=float(rng.choice([1.0, 2.0, 10.0])),
        switch_back_max_gain=float(rng.choice([0.0, 50.0, 1e6])),
    )
    if short_term:
        policy = replace(
            policy, short_term_gain_limit=float(rng.choice([0.0, 20.0])), hard_band_multiple=10.0, min_trade=10.0
        )
    return Case(universe, targets, book, policy, TODAY)
