"""Benchmark: personal targets against PyPortfolioOpt, and 100,000 accounts through the batch.

On the shipped data (the 16 model funds, ten years, Ledoit-Wolf covariance, as in the tests), in one process:

(a) N personalized solves, each an investor with random ESG screens, a random per-asset cap, sometimes a
    maximum position, a restricted fund or a tax-advantaged account, at a random risk level. PyPortfolioOpt
    builds a new ``EfficientFrontier`` per investor, as its users do, and calls ``max_quadratic_utility``;
    we call ``PersonalTargetSolver.weights`` (the OSQP fast path) with the investor's ``Constraints``. Both
    get the same inputs; each side's preparation of them (PyPortfolioOpt's list of bounds, our
    ``Constraints``) is made before the clock starts, and everything after it (our bounds, checks, solve,
    cleaning) is timed. For equal accuracy PyPortfolioOpt runs Clarabel at tight tolerances (1e-12); at its
    defaults it is a little faster and misses the optimum by up to a few 1e-4 (printed for information).
(b) 100,000 synthetic accounts with 1,000 distinct constraint signatures and a risk level each (so up to
    10,000 distinct solves), each account its own ``Constraints`` object, through ``personal_targets_batch``.
    For information, the same 100,000 accounts each with its own holdings and a transaction cost, so that
    every target is distinct and solved on its own.

Not a test: run it from the project root and read the numbers.

    .venv/bin/python benchmarks/optimizer.py
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pypfopt import EfficientFrontier  # after the path set-up, so the script runs from anywhere

from portfolios.estimation import estimate, estimation_window
from portfolios.optimize import risk_aversion_for_level
from portfolios.personal import (
    Constraints,
    InfeasibleConstraintsError,
    PersonalTargetSolver,
    class_bounds,
    exclusions_for,
    personal_targets_batch,
)
from portfolios.universe import ASSETS, ESG_FLAGS

SEED = 20260801
SOLVES = 400  # personalized solves in (a)
REPEATS = 2  # (a) is timed this many times per side; the fastest pass counts
ACCOUNTS = 100_000
SIGNATURES = 1_000
DATA = Path(__file__).resolve().parent.parent / "portfolios" / "data" / "etf_prices.csv.gz"
MODEL = sorted(t for t, _, _, in_model in ASSETS if in_model)
CLASSES = [{t: c for t, _, c, _ in ASSETS}[t] for t in MODEL]
N = len(MODEL)
TIGHT_CLARABEL = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "tol_ktratio": 1e-10}


def shipped_market() -> tuple[np.ndarray, np.ndarray]:
    frame = pd.read_csv(DATA, parse_dates=["date"])
    wide = frame.pivot(index="date", columns="ticker", values="adj_close")[MODEL]
    estimates = estimate(estimation_window(wide, years=10))
    return estimates.expected_returns, estimates.covariance


def random_investor(rng: np.random.Generator, *, rich: bool) -> Constraints:
    """ESG screens, a per-asset cap, and sometimes a maximum position, a restricted fund, an IRA.

    ``rich`` adds what PyPortfolioOpt's plain bounds cannot express: class bounds, a bond/cash minimum.
    """
    groups = None
    bond_cash_minimum = 0.0
    if rich and rng.random() < 0.3:
        groups = class_bounds(CLASSES, {"equity": (0.0, float(rng.uniform(0.3, 0.9))), "gold": (0.0, 0.1)})
    if rich and rng.random() < 0.2:
        bond_cash_minimum = float(rng.uniform(0.1, 0.3))
    return Constraints(
        upper=np.full(N, float(rng.uniform(0.15, 0.5))),
        exclusions=exclusions_for(
            MODEL,
            esg_exclusions=[flag for flag in sorted(ESG_FLAGS) if rng.random() < 0.25],
            restricted=[t for t in MODEL if rng.random() < 0.03],
        ),
        max_position=float(rng.uniform(0.1, 0.4)) if rng.random() < 0.3 else None,
        account_type=str(rng.choice(["taxable", "taxable", "traditional_ira", "roth_ira"])),
        class_bounds=groups,
        bond_cash_minimum=bond_cash_minimum,
    )


def copy_of(constraints: Constraints, **changes: object) -> Constraints:
    """An equal Constraints in a new object, as building each account's constraints would give."""
    values = {f.name: getattr(constraints, f.name) for f in fields(Constraints)}
    return Constraints(**{**values, **changes})  # type: ignore[arg-type]


def feasible_investors(
    rng: np.random.Generator, count: int, *, rich: bool, solver: PersonalTargetSolver, mu: np.ndarray, sigma: np.ndarray
) -> list[Constraints]:
    """Investors whose constraints admit a portfolio (class bounds and a bond minimum can conflict)."""
    investors: list[Constraints] = []
    while len(investors) < count:
        candidate = random_investor(rng, rich=rich)
        try:
            solver.weights(candidate, mu, sigma, 1.0)  # feasibility does not depend on the risk level
        except InfeasibleConstraintsError:
            continue
        investors.append(candidate)
    return investors


def pypfopt_pass(mu: np.ndarray, sigma: np.ndarray, bounds: list, gammas: np.ndarray, options: dict) -> tuple:  # type: ignore[type-arg]
    weights = np.empty((len(bounds), N))
    start = time.perf_counter()
    for i, (weight_bounds, gamma) in enumerate(zip(bounds, gammas, strict=True)):
        frontier = EfficientFrontier(mu, sigma, weight_bounds=weight_bounds, **options)
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
    mu, sigma = shipped_market()
    solver = PersonalTargetSolver(MODEL, CLASSES)
    print(f"Shipped data: {N} model funds, ten years, Ledoit-Wolf covariance.")

    # (a) per personalized solve --------------------------------------------------------------------
    investors = feasible_investors(rng, SOLVES, rich=False, solver=solver, mu=mu, sigma=sigma)
    gammas = np.array([risk_aversion_for_level(int(level)) for level in rng.integers(1, 11, size=SOLVES)])
    bounds = [list(zip(c.lower_bounds, solver.universe.bounds(c).upper, strict=True)) for c in investors]
    solver.weights(investors[0], mu, sigma, gammas[0])  # set up OSQP once, as a long-running worker would have
    tight = {"solver": "CLARABEL", "solver_options": TIGHT_CLARABEL}
    theirs_seconds, theirs = min(
        (pypfopt_pass(mu, sigma, bounds, gammas, tight) for _ in range(REPEATS)), key=lambda r: r[0]
    )
    ours_seconds, ours = min(
        (ours_pass(solver, mu, sigma, investors, gammas) for _ in range(REPEATS)), key=lambda r: r[0]
    )
    default_seconds, default = pypfopt_pass(mu, sigma, bounds, gammas, {})
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

    print(f"\n(a) {SOLVES} personalized solves (random ESG screens, caps, maximum positions, IRAs, risk levels)")
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
    templates = feasible_investors(rng, SIGNATURES, rich=True, solver=solver, mu=mu, sigma=sigma)
    assert len({t.signature() for t in templates}) == SIGNATURES
    assignment = rng.integers(0, SIGNATURES, size=ACCOUNTS)
    levels = rng.integers(1, 11, size=ACCOUNTS)
    account_gammas = np.array([risk_aversion_for_level(level) for level in range(1, 11)])[levels - 1]
    start = time.perf_counter()
    accounts = [copy_of(templates[i]) for i in assignment.tolist()]  # one object per account
    build_seconds = time.perf_counter() - start
    distinct_solves = len(set(zip(assignment.tolist(), levels.tolist(), strict=True)))
    fresh = PersonalTargetSolver(MODEL, CLASSES)  # nothing set up yet: the batch pays for every setup
    start = time.perf_counter()
    targets = personal_targets_batch(accounts, mu, sigma, account_gammas, solver=fresh)
    batch_seconds = time.perf_counter() - start
    sample = rng.choice(ACCOUNTS, size=200, replace=False)
    check = max(
        float(np.abs(targets[i] - solver.weights(accounts[i], mu, sigma, account_gammas[i])).max()) for i in sample
    )

    print(f"\n(b) {ACCOUNTS:,} accounts, {SIGNATURES:,} constraint signatures, risk levels 1-10")
    print(f"  building one Constraints per account (not counted): {build_seconds:.2f} s")
    print(f"  personal_targets_batch: {batch_seconds:.2f} s for {distinct_solves:,} distinct solves")
    print(f"  200 sampled rows against solving each account alone: largest difference {check:.1e}")

    holdings = rng.dirichlet(np.ones(N) * 0.5, size=ACCOUNTS)
    distinct_accounts = [
        copy_of(templates[i], current_weights=h, transaction_cost=0.002)
        for i, h in zip(assignment.tolist(), holdings, strict=True)
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
    print(f"BENCH personal_targets_100k_seconds {batch_seconds:.2f} s target <60")


if __name__ == "__main__":
    main()
