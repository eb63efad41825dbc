"""Optimizer: feasibility, bounds, the frontier's order, and agreement with closed forms."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from portfolios.estimation import EstimationError, estimate, estimation_window, snapshot_hash
from portfolios.optimize import (
    MeanVarianceProblem,
    OptimizationError,
    minimum_variance_closed_form,
    risk_aversion_for_level,
)
from portfolios.universe import ASSET_CLASSES, ASSETS
from tests.market import DATA

MODEL = sorted(t for t, _, _, in_model in ASSETS if in_model)
EQUITY_CLASSES = {code for code, _, kind, _ in ASSET_CLASSES if kind == "equity"}
CLASS_OF = {t: c for t, _, c, _ in ASSETS}


@pytest.fixture(scope="module")
def estimates():  # type: ignore[no-untyped-def]
    frame = pd.read_csv(DATA, parse_dates=["date"])
    wide = frame.pivot(index="date", columns="ticker", values="adj_close")[MODEL]
    return estimate(estimation_window(wide, years=15))


@pytest.fixture(scope="module")
def frontier(estimates):  # type: ignore[no-untyped-def]
    problem = MeanVarianceProblem(len(MODEL))
    upper = np.full(len(MODEL), 0.35)
    return [
        problem.solve(estimates.expected_returns, estimates.covariance, risk_aversion_for_level(level), upper)
        for level in range(1, 11)
    ]


def test_weights_sum_to_one_and_respect_bounds(frontier) -> None:  # type: ignore[no-untyped-def]
    for solution in frontier:
        assert solution.weights.sum() == pytest.approx(1.0, abs=1e-9)
        assert solution.weights.min() >= 0.0
        assert solution.weights.max() <= 0.35 + 1e-6


def test_equity_share_volatility_and_return_are_non_decreasing_with_level(frontier) -> None:  # type: ignore[no-untyped-def]
    equity = [sum(w for t, w in zip(MODEL, s.weights, strict=True) if CLASS_OF[t] in EQUITY_CLASSES) for s in frontier]
    vols = [s.volatility for s in frontier]
    returns = [s.expected_return for s in frontier]
    assert all(b >= a - 1e-6 for a, b in itertools.pairwise(equity)), equity
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(vols)), vols
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(returns)), returns
    assert equity[0] < 0.2 < 0.6 < equity[-1]


def test_risk_aversion_is_decreasing_and_bounded() -> None:
    values = [risk_aversion_for_level(level) for level in range(1, 11)]
    assert values[0] == pytest.approx(64.0) and values[-1] == pytest.approx(1.0)
    assert values == sorted(values, reverse=True)
    with pytest.raises(OptimizationError):
        risk_aversion_for_level(0)
    with pytest.raises(OptimizationError):
        risk_aversion_for_level(11)


def test_near_infinite_risk_aversion_with_loose_bounds_matches_closed_form_minimum_variance() -> None:
    # Three assets whose unconstrained minimum-variance weights are all positive:
    # then the long-only solution equals the closed form S^-1 1 / 1' S^-1 1.
    sigma = np.array([[0.04, 0.006, 0.002], [0.006, 0.09, 0.01], [0.002, 0.01, 0.0225]])
    expected = minimum_variance_closed_form(sigma)
    assert (expected > 0).all()
    problem = MeanVarianceProblem(3)
    solution = problem.solve(np.zeros(3), sigma, 1.0, np.ones(3))
    np.testing.assert_allclose(solution.weights, expected, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=2, max_value=8), st.integers(min_value=0, max_value=2**31 - 1))
def test_random_problems_solve_within_bounds(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(n, n))
    sigma = factors @ factors.T / n + np.eye(n) * 0.01
    mu = rng.normal(0.05, 0.05, size=n)
    upper = np.full(n, max(1.0 / n + 0.1, 0.3))
    solution = MeanVarianceProblem(n).solve(mu, sigma, float(rng.uniform(0.5, 50)), upper)
    assert solution.weights.sum() == pytest.approx(1.0, abs=1e-9)
    assert (solution.weights >= 0).all() and (solution.weights <= upper + 1e-6).all()


def test_bounds_that_cannot_sum_to_one_are_refused_before_solving() -> None:
    with pytest.raises(OptimizationError, match=r"sum to 0\.6000 < 1"):
        MeanVarianceProblem(3).solve(np.zeros(3), np.eye(3), 1.0, np.full(3, 0.2))


def test_non_positive_definite_covariance_is_refused() -> None:
    with pytest.raises(OptimizationError, match="not positive definite"):
        MeanVarianceProblem(2).solve(np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]), 1.0, np.ones(2))


def test_ledoit_wolf_covariance_is_positive_definite_and_annualized(estimates) -> None:  # type: ignore[no-untyped-def]
    eigenvalues = np.linalg.eigvalsh(estimates.covariance)
    assert eigenvalues.min() > 0
    vols = dict(zip(estimates.tickers, np.sqrt(np.diag(estimates.covariance)), strict=True))
    assert 0.12 < vols["VTI"] < 0.25  # US stocks: mid-to-high teens a year
    assert vols["BIL"] < 0.02  # T-bills barely move
    assert 0 < estimates.shrinkage < 1


def test_estimation_window_refuses_missing_history() -> None:
    dates = pd.bdate_range("2020-01-01", periods=600)
    wide = pd.DataFrame({"A": np.linspace(100, 120, 600), "B": np.linspace(50, 60, 600)}, index=dates)
    wide.iloc[:400, 1] = np.nan  # B starts late
    with pytest.raises(EstimationError, match="missing inside the 2-year window for: B"):
        estimation_window(wide, years=2)


def test_snapshot_hash_identifies_the_exact_prices() -> None:
    dates = pd.bdate_range("2024-01-01", periods=5)
    wide = pd.DataFrame({"A": [1.0, 2, 3, 4, 5], "B": [5.0, 4, 3, 2, 1]}, index=dates)
    assert snapshot_hash(wide) == snapshot_hash(wide[["B", "A"]])  # column order does not matter
    changed = wide.copy()
    changed.iloc[2, 0] = 3.000001
    assert snapshot_hash(changed) != snapshot_hash(wide)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=-1e-7, max_value=0.35, allow_nan=False), min_size=4, max_size=16),
)
def test_cleaned_and_decimal_weights_never_break_their_bound_and_sum_to_one(raw: list[float]) -> None:
    from decimal import Decimal

    from portfolios.optimize import clean_weights
    from portfolios.services.optimization import decimal_weights

    # Solver output: feasible up to its tolerance (tiny negatives, bounds and sum off by ~1e-7).
    weights = np.asarray(raw)
    upper = np.full(len(raw), max(0.35, 1.0 / len(raw) + 0.01))
    positive = weights.clip(0).sum()
    assume(positive > 0.5)
    weights = weights / positive
    assume((weights <= upper + 1e-7).all())
    cleaned = clean_weights(weights, upper)
    assert cleaned.sum() == pytest.approx(1.0, abs=1e-9)
    assert (cleaned <= upper + 1e-12).all() and (cleaned >= 0).all()
    decimals = decimal_weights(cleaned, float(upper[0]))
    assert sum(decimals) == Decimal(1)
    assert all(Decimal(0) <= d <= Decimal(repr(float(upper[0]))).quantize(Decimal("0.000001")) for d in decimals)
