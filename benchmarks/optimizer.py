"""Benchmark: personal targets as the product solves them, against PyPortfolioOpt, and 100,000 accounts.

On the shipped data, in one process, with the inputs the product uses: the 16 model funds, the default
optimization policy's estimates (15 years, Black-Litterman equilibrium over a Ledoit-Wolf covariance, the cash
fund's trailing year as the risk-free rate: ``services/optimization.py: model_inputs``, repeated here without
Django), the policy's risk aversion per level, and its house constraints (35% per fund, the class limits, the
level's bond/cash floor) plus each investor's: random ESG screens, the account type (an IRA drops municipal
bonds), a marginal tax rate below the policy's threshold (no municipal bonds either), and now and then a fund on
the compliance restricted list. The constraints are built by ``house_constraints`` and ``exclusions_for``, as
``services/targets.py: account_constraints`` builds them.

(a) N personalized solves, each an investor at a random risk level. PyPortfolioOpt builds a new
    ``EfficientFrontier`` per investor, as its users do: weight bounds (the per-fund maximum, 0 for excluded
    funds), ``add_sector_constraints`` for the class limits and ``add_constraint`` for the bond/cash floor, then
    ``max_quadratic_utility``. We call ``PersonalTargetSolver.weights`` (the OSQP fast path) with the investor's
    ``Constraints``. Each side's preparation (PyPortfolioOpt's bounds and sector maps, our ``Constraints``) is made
    before the clock starts; everything after it (our bounds, checks, solve, cleaning) is timed. For equal
    accuracy PyPortfolioOpt runs Clarabel at tight tolerances (1e-12); at its defaults it is a little faster and
    misses the optimum by up to a few 1e-4 (printed for information).
(b) 100,000 synthetic accounts with 1,000 distinct investor constraint sets and a risk level each, through the
    product's path (the headline): what ``services/targets.py: personal_targets_build`` computes, without its
    database reads and writes. Per account, one ``Constraints`` and one signature hash per distinct (investor
    constraints, level), shared by its accounts; per distinct (signature, level), the model portfolio when the
    signature is the house's, else ``PersonalTargetSolver.solve(..., explain=True)``: the target, the
    constraints binding at it, and each one priced by relaxing it alone and solving again; then every account
    mapped to its target. A fresh solver: the run pays for every OSQP setup. Secondary lines: the weights alone
    through ``personal_targets_batch`` (one solve per distinct signature and level, nothing explained), and,
    for information, the same 100,000 accounts each with its own holdings and a transaction cost, so that every
    target is distinct and solved on its own.

Not a test: run it from the project root and read the numbers.

    .venv/bin/python benchmarks/optimizer.py
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pypfopt import EfficientFrontier  # after the path set-up, so the script runs from anywhere

from portfolios.estimation import TRADING_DAYS, history_window
from portfolios.estimators import estimate_inputs
from portfolios.personal import (
    CLASS_KIND,
    Constraints,
    InfeasibleConstraintsError,
    PersonalTarget,
    PersonalTargetSolver,
    diagnose,
    exclusions_for,
    house_constraints,
    personal_targets_batch,
)
from portfolios.policy import RISK_LEVELS, OptimizationPolicy
from portfolios.universe import ASSETS, ESG_FLAGS

SEED = 20261201
SOLVES = 400  # personalized solves in (a)
REPEATS = 2  # (a) is timed this many times per side; the fastest pass counts
ACCOUNTS = 100_000
SIGNATURES = 1_000  # distinct investor constraint sets in (b)
DATA = Path(__file__).resolve().parent.parent / "portfolios" / "data" / "etf_prices.csv.gz"
MODEL = sorted(t for t, _, _, in_model in ASSETS if in_model)
CLASSES = [{t: c for t, _, c, _ in ASSETS}[t] for t in MODEL]
N = len(MODEL)
POLICY = OptimizationPolicy()
TAX_CASES = ("taxable", "taxable, low bracket", "traditional_ira", "roth_ira")
TIGHT_CLARABEL = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "tol_ktratio": 1e-10}


def shipped_market() -> tuple[np.ndarray, np.ndarray, float]:
    """The policy's estimates on the shipped prices, as ``services.optimization.model_inputs`` makes them."""
    frame = pd.read_csv(DATA, parse_dates=["date"])
    wide = frame.pivot(index="date", columns="ticker", values="adj_close")[MODEL]
    window, _ = history_window(wide, years=POLICY.estimation_years, min_years=POLICY.min_history_years)
    cash = window[POLICY.risk_free_ticker]
    risk_free = float(cash.iloc[-1] / cash.iloc[-1 - TRADING_DAYS] - 1)
    estimated = estimate_inputs(
        window,
        returns_method=POLICY.returns_method,
        covariance_method=POLICY.covariance_method,
        market_weights=np.array([POLICY.benchmark.get(t, 0.0) for t in MODEL]),
        risk_aversion=POLICY.market_risk_aversion,
        risk_free=risk_free,
        tau=POLICY.tau,
        half_life_days=POLICY.half_life_days,
        min_years=min(POLICY.min_history_years, POLICY.estimation_years) * 0.99,
    )
    return estimated.mu, estimated.sigma, risk_free


HOUSE = {level: house_constraints(POLICY, CLASSES, level) for level in RISK_LEVELS}


def investor_constraints(screens: tuple[str, ...], tax: str, restricted: tuple[str, ...], level: int) -> Constraints:
    """One account's constraints, as ``services.targets.account_constraints`` builds them."""
    low_bracket = tax == "taxable, low bracket"
    return replace(
        HOUSE[level],
        exclusions=exclusions_for(MODEL, esg_exclusions=screens, restricted=restricted),
        account_type="taxable" if low_bracket else tax,
        municipal_rate_floor=POLICY.municipal_min_tax_rate if low_bracket else None,
    )


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def signature_hash(constraints: Constraints) -> str:
    """As ``services.targets.signature_hash`` (the key a stored target is shared by)."""
    return hashlib.sha256(repr(constraints.signature()).encode()).hexdigest()


def product_targets(
    kinds: list[tuple[tuple[str, ...], str, tuple[str, ...]]],
    assignment: np.ndarray,
    account_levels: np.ndarray,
    mu: np.ndarray,
    sigma: np.ndarray,
) -> tuple[float, float, float, list[PersonalTarget | None], dict[tuple[str, int], PersonalTarget]]:
    """``personal_targets_build`` without the database, timed: (seconds in all, CPU seconds in all, seconds in the
    explained solves, each account's target (None: its level's model portfolio), the distinct explained targets)."""
    solver = PersonalTargetSolver(MODEL, CLASSES)  # nothing set up yet: the run pays for every setup
    house = {level: signature_hash(HOUSE[level]) for level in RISK_LEVELS}
    start, started_cpu = time.perf_counter(), time.process_time()
    cache: dict[tuple[int, int], tuple[Constraints, str]] = {}
    key_of: list[tuple[str, int]] = []
    constraints_of: dict[tuple[str, int], Constraints] = {}
    for i, level in zip(assignment.tolist(), account_levels.tolist(), strict=True):
        shared = cache.get((i, level))
        if shared is None:
            screens, tax, restricted = kinds[i]
            constraints = investor_constraints(screens, tax, restricted, level)
            shared = cache[(i, level)] = (constraints, signature_hash(constraints))
        key = (shared[1], level)
        key_of.append(key)
        constraints_of[key] = shared[0]
    solve_start = time.perf_counter()
    solved: dict[tuple[str, int], PersonalTarget] = {}
    for (signature, level), constraints in constraints_of.items():
        if signature != house[level]:
            solved[(signature, level)] = solver.solve(constraints, mu, sigma, POLICY.gamma(level), explain=True)
    solve_seconds = time.perf_counter() - solve_start
    targets = [solved.get(key) for key in key_of]
    return time.perf_counter() - start, time.process_time() - started_cpu, solve_seconds, targets, solved


def random_investor(rng: np.random.Generator) -> tuple[tuple[str, ...], str, tuple[str, ...]]:
    screens = tuple(flag for flag in sorted(ESG_FLAGS) if rng.random() < 0.25)
    tax = str(rng.choice(TAX_CASES, p=[0.5, 0.2, 0.2, 0.1]))
    count = int(rng.choice([0, 1, 2], p=[0.6, 0.3, 0.1]))
    restricted = tuple(sorted(rng.choice(MODEL, size=count, replace=False).tolist()))
    return screens, tax, restricted


def pypfopt_frontier(mu: np.ndarray, sigma: np.ndarray, constraints: Constraints, upper: np.ndarray, options: dict):  # type: ignore[no-untyped-def, type-arg]
    """PyPortfolioOpt as its users write it: a new EfficientFrontier per investor, the same constraints."""
    frontier = EfficientFrontier(mu, sigma, weight_bounds=[(0.0, float(u)) for u in upper], **options)
    groups = constraints.class_bounds
    if groups is not None:  # the policy's limits are per class: one sector per fund
        frontier.add_sector_constraints(
            dict(enumerate(CLASSES)),
            sector_lower={g: float(low) for g, low in zip(groups.names, groups.lower, strict=True) if low > 0},
            sector_upper={g: float(high) for g, high in zip(groups.names, groups.upper, strict=True)},
        )
    if constraints.bond_cash_minimum > 0:
        bond_cash = np.array([CLASS_KIND[c] in ("bond", "cash") for c in CLASSES], dtype=float)
        floor = constraints.bond_cash_minimum
        frontier.add_constraint(lambda w, mask=bond_cash, floor=floor: mask @ w >= floor)
    return frontier


def pypfopt_pass(mu, sigma, prepared, gammas, options) -> tuple[float, np.ndarray]:  # type: ignore[no-untyped-def]
    weights = np.empty((len(prepared), N))
    start = time.perf_counter()
    for i, ((constraints, upper), gamma) in enumerate(zip(prepared, gammas, strict=True)):
        frontier = pypfopt_frontier(mu, sigma, constraints, upper, options)
        weights[i] = list(frontier.max_quadratic_utility(risk_aversion=gamma).values())
    return time.perf_counter() - start, weights


def ours_pass(
    solver: PersonalTargetSolver, mu: np.ndarray, sigma: np.ndarray, investors: list[Constraints], gammas: np.ndarray
) -> tuple[float, np.ndarray]:
    weights = np.empty((len(investors), N))
    start = time.perf_counter()
    for i, (constraints, gamma) in enumerate(zip(investors, gammas, strict=True)):
        weights[i] = solver.weights(constraints, mu, sigma, gamma)
    return time.perf_counter() - start, weights


def main() -> None:
    warnings.filterwarnings("ignore", module="cvxpy")
    rng = np.random.default_rng(SEED)
    mu, sigma, risk_free = shipped_market()
    solver = PersonalTargetSolver(MODEL, CLASSES)
    print(f"machine: {load()}")
    print(
        f"Shipped data: {N} model funds, {POLICY.estimation_years} years, {POLICY.returns_method} over "
        f"{POLICY.covariance_method}, risk-free {risk_free:.2%}; house constraints of the default policy."
    )

    # (a) per personalized solve --------------------------------------------------------------------
    investors: list[Constraints] = []
    levels: list[int] = []
    while len(investors) < SOLVES:
        level = int(rng.integers(1, 11))
        candidate = investor_constraints(*random_investor(rng), level)
        if diagnose(candidate, MODEL, CLASSES):
            continue
        investors.append(candidate)
        levels.append(level)
    gammas = np.array([POLICY.gamma(level) for level in levels])
    prepared = [(c, solver.universe.bounds(c).upper) for c in investors]
    solver.weights(investors[0], mu, sigma, gammas[0])  # set up OSQP once, as a long-running worker would have
    tight = {"solver": "CLARABEL", "solver_options": TIGHT_CLARABEL}
    theirs_seconds, theirs = min(
        (pypfopt_pass(mu, sigma, prepared, gammas, tight) for _ in range(REPEATS)), key=lambda r: r[0]
    )
    ours_seconds, ours = min(
        (ours_pass(solver, mu, sigma, investors, gammas) for _ in range(REPEATS)), key=lambda r: r[0]
    )
    default_seconds, default = pypfopt_pass(mu, sigma, prepared, gammas, {})
    theirs_ms, ours_ms = theirs_seconds / SOLVES * 1e3, ours_seconds / SOLVES * 1e3
    speedup = theirs_ms / ours_ms
    max_diff = float(np.abs(ours - theirs).max())

    start = time.perf_counter()
    for constraints, gamma in zip(investors, gammas, strict=True):
        solver.solve(constraints, mu, sigma, gamma)
    with_binding_ms = (time.perf_counter() - start) / SOLVES * 1e3
    reference_seconds = 0.0
    reference_diff = 0.0
    for i, (constraints, gamma) in enumerate(zip(investors[:100], gammas[:100], strict=True)):
        start = time.perf_counter()
        reference = solver.weights(constraints, mu, sigma, gamma, method="clarabel")
        reference_seconds += time.perf_counter() - start
        reference_diff = max(reference_diff, float(np.abs(reference - ours[i]).max()))

    with_class = sum(c.class_bounds is not None for c in investors)
    with_floor = sum(c.bond_cash_minimum > 0 for c in investors)
    print(
        f"\n(a) {SOLVES} personalized solves at random levels: house constraints ({with_class} with class limits, "
        f"{with_floor} with a bond/cash floor), random ESG screens, IRAs, low brackets, restricted funds"
    )
    print(f"  PyPortfolioOpt, new EfficientFrontier per investor, Clarabel 1e-12: {theirs_ms:8.3f} ms per solve")
    print(f"  ours, OSQP set up once, updated in place and warm started:       {ours_ms:8.3f} ms per solve")
    print(f"  ratio: {speedup:.1f}x; largest weight difference: {max_diff:.2e}")
    print(
        f"  for information: PyPortfolioOpt at its defaults {default_seconds / SOLVES * 1e3:.3f} ms per solve, "
        f"largest weight difference {float(np.abs(ours - default).max()):.2e}"
    )
    print(f"  for information: ours with the binding constraints listed (solve) {with_binding_ms:.3f} ms per solve")
    print(
        f"  for information: ours through cvxpy + Clarabel compiled once {reference_seconds / 100 * 1e3:.3f} ms "
        f"per solve, largest weight difference from the fast path {reference_diff:.2e}"
    )

    # (b) 100,000 accounts ---------------------------------------------------------------------------
    templates: dict[tuple[tuple[str, ...], str, tuple[str, ...]], None] = {}
    while len(templates) < SIGNATURES:
        investor = random_investor(rng)
        if all(not diagnose(investor_constraints(*investor, level), MODEL, CLASSES) for level in RISK_LEVELS):
            templates[investor] = None
    kinds = list(templates)
    assignment = rng.integers(0, SIGNATURES, size=ACCOUNTS)
    account_levels = rng.integers(1, 11, size=ACCOUNTS)
    account_gammas = np.array([POLICY.gamma(level) for level in RISK_LEVELS])[account_levels - 1]
    start = time.perf_counter()
    shared: dict[tuple[int, int], Constraints] = {}  # as personal_targets_build: one object per (investor, level)
    accounts = []
    for i, level in zip(assignment.tolist(), account_levels.tolist(), strict=True):
        constraints = shared.get((i, level))
        if constraints is None:
            constraints = shared[(i, level)] = investor_constraints(*kinds[i], level)
        accounts.append(constraints)
    build_seconds = time.perf_counter() - start
    signatures = len({c.signature() for c in shared.values()})
    fresh = PersonalTargetSolver(MODEL, CLASSES)  # nothing set up yet: the batch pays for every setup
    start = time.perf_counter()
    try:
        targets = personal_targets_batch(accounts, mu, sigma, account_gammas, solver=fresh)
    except InfeasibleConstraintsError as exc:  # pragma: no cover - the templates were checked
        raise SystemExit(f"an account's constraints are infeasible: {exc}") from exc
    batch_seconds = time.perf_counter() - start
    sample = rng.choice(ACCOUNTS, size=200, replace=False)
    check = max(
        float(np.abs(targets[i] - solver.weights(accounts[i], mu, sigma, account_gammas[i])).max()) for i in sample
    )
    worst = 0.0
    for (i, level), constraints in list(shared.items())[:500]:
        row = targets[int(np.flatnonzero((assignment == i) & (account_levels == level))[0])]
        bounds = solver.universe.bounds(constraints)
        worst = max(worst, float(np.max(row - bounds.upper)), abs(float(row.sum()) - 1))
        if constraints.class_bounds is not None:
            worst = max(
                worst, float(np.max(constraints.class_bounds.membership @ row - constraints.class_bounds.upper))
            )
        mask = np.array([CLASS_KIND[c] in ("bond", "cash") for c in CLASSES])
        worst = max(worst, constraints.bond_cash_minimum - float(row[mask].sum()))

    print(
        f"\n(b) {ACCOUNTS:,} accounts, {SIGNATURES:,} investor constraint sets x risk levels 1-10 = {signatures:,} "
        "constraint signatures (the level's bond/cash floor is part of the signature)"
    )
    print(f"  building the shared Constraints (one per signature, as personal_targets_build): {build_seconds:.2f} s")
    print(f"  weights only, personal_targets_batch: {batch_seconds:.2f} s for {len(shared):,} distinct solves")
    print(f"  200 sampled rows against solving each account alone: largest difference {check:.1e}")
    print(f"  500 targets checked against their bounds, class limits, floor and budget: worst violation {worst:.1e}")

    product_seconds, product_cpu, explain_seconds, product, explained = product_targets(
        kinds, assignment, account_levels, mu, sigma
    )
    priced = sum(len(t.binding) for t in explained.values())
    house_accounts = sum(t is None for t in product)
    product_diff = max(float(np.abs(t.weights - targets[a]).max()) for a, t in enumerate(product) if t is not None)
    print(
        f"  the product's path (personal_targets_build without the database): {product_seconds:.2f} s "
        f"({product_cpu:.2f} s of CPU; {load()}), of which "
        f"{explain_seconds:.2f} s in {len(explained):,} solves with explain=True pricing {priced:,} binding "
        f"constraints ({priced / max(len(explained), 1):.1f} per target, each one more solve); "
        f"{house_accounts:,} accounts on the house signature get the model portfolio"
    )
    print(f"  its weights against personal_targets_batch's: largest difference {product_diff:.1e}")

    holdings = rng.dirichlet(np.ones(N) * 0.5, size=ACCOUNTS)
    distinct_accounts = [
        replace(c, current_weights=h, transaction_cost=0.002) for c, h in zip(accounts, holdings, strict=True)
    ]
    start = time.perf_counter()
    personal_targets_batch(distinct_accounts, mu, sigma, account_gammas, solver=PersonalTargetSolver(MODEL, CLASSES))
    all_distinct_seconds = time.perf_counter() - start
    print(
        f"  for information: the same accounts each with its own holdings and a 20 bp transaction cost, "
        f"every target distinct ({ACCOUNTS:,} solves): {all_distinct_seconds:.2f} s"
    )

    print(f"BENCH optimizer_speedup_vs_pypfopt {speedup:.1f} x target >=20")
    print(f"BENCH optimizer_max_weight_diff_vs_pypfopt {max_diff:.2e} abs target <=1e-4")
    print(f"BENCH personal_targets_100k_seconds {product_seconds:.2f} s target <60")
    print(f"BENCH personal_targets_100k_weights_only_seconds {batch_seconds:.2f} s")


if __name__ == "__main__":
    main()
