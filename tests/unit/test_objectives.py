"""Portfolio objectives: agreement with PyPortfolioOpt on the shipped data, closed forms, and clear refusals.

PyPortfolioOpt is the reference, set up to solve the same problem as ours:
- the same mu, Sigma and bounds: ``EfficientFrontier(mu, S, weight_bounds=(0, 0.35), solver="CLARABEL")``.
  Left to its default (``solver=None``) cvxpy hands its QPs to OSQP, whose looser default tolerances move
  weights by about 1e-5 (1.2e-5 on minimum variance); with Clarabel, our solver, they agree to about 1e-7.
- no regularization to switch off: its L2 term (``gamma``) exists only if ``add_objective(L2_reg)`` is
  called, which the reference never does.
- it writes Sigma as ``quad_form(w, S)`` and the utility unscaled; we write ``||L'w||^2`` and divide the
  utility by the risk aversion (DPP). Same minimizers; only solver noise differs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pypfopt import EfficientFrontier
from pypfopt import exceptions as pypfopt_exceptions
from pypfopt.hierarchical_portfolio import HRPOpt

from portfolios.estimation import estimate, estimation_window
from portfolios.objectives import (
    MaximumSharpeProblem,
    MinimumVarianceProblem,
    TargetVolatilityProblem,
    check_bounds_feasible,
    hierarchical_risk_parity,
    risk_contributions,
    risk_parity,
)
from portfolios.optimize import (
    MeanVarianceProblem,
    OptimizationError,
    minimum_variance_closed_form,
    risk_aversion_for_level,
)
from portfolios.universe import ASSETS
from tests.market import DATA

MODEL = sorted(t for t, _, _, in_model in ASSETS if in_model)
UPPER = 0.35
AGREEMENT = 1e-4  # max abs weight difference against PyPortfolioOpt


@dataclass(frozen=True)
class Market:
    mu: np.ndarray
    sigma: np.ndarray
    returns: pd.DataFrame  # daily simple returns of the same window, for HRP


@functools.cache
def market() -> Market:
    """Ten years of the model funds: annualized mean daily simple returns, Ledoit-Wolf covariance x 252."""
    frame = pd.read_csv(DATA, parse_dates=["date"])
    wide = frame.pivot(index="date", columns="ticker", values="adj_close")[MODEL]
    window = estimation_window(wide, years=10)
    estimates = estimate(window)
    return Market(estimates.expected_returns, estimates.covariance, window.pct_change().iloc[1:])


@functools.cache
def problems(n: int) -> tuple[MinimumVarianceProblem, MaximumSharpeProblem, TargetVolatilityProblem]:
    """Compiled once per size and re-solved with new values, as the services will."""
    return MinimumVarianceProblem(n), MaximumSharpeProblem(n), TargetVolatilityProblem(n)


def upper() -> np.ndarray:
    return np.full(len(MODEL), UPPER)


def reference() -> EfficientFrontier:
    m = market()
    return EfficientFrontier(m.mu, m.sigma, weight_bounds=(0, UPPER), solver="CLARABEL")


def as_array(weights: dict[str, float] | dict[int, float]) -> np.ndarray:
    return np.array(list(weights.values()))


def test_the_model_universe_is_the_sixteen_funds() -> None:
    assert set(MODEL) == {
        *("VTI", "IJR", "VEA", "VWO", "VNQ", "AGG", "SHY", "IEF"),
        *("TLT", "TIP", "LQD", "HYG", "MUB", "GLD", "DBC", "BIL"),
    }


# --- agreement with PyPortfolioOpt --------------------------------------------------------------


@pytest.mark.parametrize("level", [1, 4, 7, 10])
def test_mean_variance_matches_pypfopt_max_quadratic_utility(level: int) -> None:
    m = market()
    delta = risk_aversion_for_level(level)
    ours = MeanVarianceProblem(len(MODEL)).solve(m.mu, m.sigma, delta, upper())
    theirs = as_array(reference().max_quadratic_utility(risk_aversion=delta))
    assert np.abs(ours.weights - theirs).max() < AGREEMENT


def test_minimum_variance_matches_pypfopt_min_volatility() -> None:
    m = market()
    ours = problems(len(MODEL))[0].solve(m.mu, m.sigma, upper())
    theirs = as_array(reference().min_volatility())
    assert np.abs(ours.weights - theirs).max() < AGREEMENT
    assert ours.weights.max() == pytest.approx(UPPER)  # BIL, the calmest fund, sits at its cap


@pytest.mark.parametrize("risk_free_rate", [0.0, 0.02, 0.04])
def test_maximum_sharpe_matches_pypfopt_max_sharpe(risk_free_rate: float) -> None:
    m = market()
    ours = problems(len(MODEL))[1].solve(m.mu, m.sigma, upper(), risk_free_rate)
    theirs = as_array(reference().max_sharpe(risk_free_rate=risk_free_rate))
    assert np.abs(ours.weights - theirs).max() < AGREEMENT
    sharpe = (ours.expected_return - risk_free_rate) / ours.volatility
    for level in (1, 5, 10):  # no frontier portfolio beats the tangency portfolio
        other = MeanVarianceProblem(len(MODEL)).solve(m.mu, m.sigma, risk_aversion_for_level(level), upper())
        assert (other.expected_return - risk_free_rate) / other.volatility <= sharpe + 1e-6


@pytest.mark.parametrize("target", [0.04, 0.08, 0.12])
def test_target_volatility_matches_pypfopt_efficient_risk(target: float) -> None:
    m = market()
    ours = problems(len(MODEL))[2].solve(m.mu, m.sigma, upper(), target)
    theirs = as_array(reference().efficient_risk(target))
    assert np.abs(ours.weights - theirs).max() < AGREEMENT
    assert ours.volatility == pytest.approx(target, rel=1e-5)  # the constraint binds below the riskiest mix


def test_resolving_a_compiled_problem_with_new_values_gives_what_a_fresh_one_gives() -> None:
    m = market()
    compiled = MaximumSharpeProblem(len(MODEL))
    compiled.solve(m.mu, m.sigma, upper(), 0.0)
    resolved = compiled.solve(m.mu * 0.9, m.sigma * 1.1, np.full(len(MODEL), 0.25), 0.01)
    fresh = MaximumSharpeProblem(len(MODEL)).solve(m.mu * 0.9, m.sigma * 1.1, np.full(len(MODEL), 0.25), 0.01)
    np.testing.assert_allclose(resolved.weights, fresh.weights, atol=1e-9)
    for problem in (*problems(3), compiled):
        assert problem.problem.is_dpp()


# --- closed forms -------------------------------------------------------------------------------


def test_unconstrained_minimum_variance_with_loose_bounds_matches_the_closed_form() -> None:
    # Shorts allowed: a test-local problem with bounds (-10, 10) that never bind on the model funds.
    sigma = market().sigma
    n = len(MODEL)
    weights = cp.Variable(n)
    chol_t = np.linalg.cholesky(sigma).T
    problem = cp.Problem(cp.Minimize(cp.sum_squares(chol_t @ weights)), [cp.sum(weights) == 1, cp.abs(weights) <= 10])
    problem.solve(solver="CLARABEL")
    expected = minimum_variance_closed_form(sigma)
    assert (expected < 0).any()  # the long-only problem would differ: the test is about the shorts
    np.testing.assert_allclose(weights.value, expected, atol=1e-6)


def test_long_only_minimum_variance_equals_the_closed_form_when_that_is_already_long_only() -> None:
    sigma = np.array([[0.04, 0.006, 0.002], [0.006, 0.09, 0.01], [0.002, 0.01, 0.0225]])
    expected = minimum_variance_closed_form(sigma)
    assert (expected > 0).all()
    solution = problems(3)[0].solve(np.zeros(3), sigma, np.ones(3))
    np.testing.assert_allclose(solution.weights, expected, atol=1e-6)


# --- risk parity and hierarchical risk parity ---------------------------------------------------


def test_risk_parity_equalizes_risk_contributions_on_the_model_funds() -> None:
    sigma = market().sigma
    weights = risk_parity(sigma)
    assert weights.sum() == pytest.approx(1.0, abs=1e-12) and (weights > 0).all()
    np.testing.assert_allclose(risk_contributions(weights, sigma), 1 / len(MODEL), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(risk_parity(sigma), weights)  # deterministic


def test_risk_parity_of_two_assets_is_inverse_volatility_whatever_the_correlation() -> None:
    for rho in (-0.6, 0.0, 0.9):
        sigma = np.array([[0.04, rho * 0.2 * 0.05], [rho * 0.2 * 0.05, 0.0025]])
        np.testing.assert_allclose(risk_parity(sigma), [0.2, 0.8], atol=1e-12)  # 1/0.2 : 1/0.05


def test_risk_budgets_are_met_and_agree_with_the_cvxpy_log_barrier() -> None:
    sigma = market().sigma
    budgets = np.linspace(1, 4, len(MODEL))
    weights = risk_parity(sigma, budgets)
    np.testing.assert_allclose(risk_contributions(weights, sigma), budgets / budgets.sum(), rtol=0, atol=1e-6)
    # The same convex program with cvxpy (exponential cone), scaled to the correlation matrix. Clarabel's
    # default tolerances leave its contributions about 8e-6 off their budgets, short of the 1e-6 Newton
    # reaches (to ~1e-16), hence Newton in the module and the looser agreement here.
    vols = np.sqrt(np.diag(sigma))
    chol_t = np.linalg.cholesky(sigma / np.outer(vols, vols)).T
    x = cp.Variable(len(MODEL), pos=True)
    cp.Problem(cp.Minimize(0.5 * cp.sum_squares(chol_t @ x) - budgets / budgets.sum() @ cp.log(x))).solve(
        solver="CLARABEL"
    )
    barrier = x.value / vols
    np.testing.assert_allclose(weights, barrier / barrier.sum(), atol=1e-4)


def test_risk_parity_refuses_a_covariance_that_is_not_positive_definite() -> None:
    with pytest.raises(OptimizationError, match="not positive definite"):
        risk_parity(np.array([[1.0, 2.0], [2.0, 1.0]]))


def test_hierarchical_risk_parity_matches_pypfopt_hrp() -> None:
    # Same conventions as PyPortfolioOpt (and López de Prado's code): single linkage on sqrt((1 - rho) / 2),
    # leaves in dendrogram order, the ordered list halved at each step, the sample covariance of the returns.
    returns = market().returns
    ours = hierarchical_risk_parity(returns.to_numpy())
    theirs = HRPOpt(returns).optimize()
    np.testing.assert_allclose(ours, [theirs[t] for t in MODEL], rtol=0, atol=1e-12)
    assert (ours > 0).all() and ours.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(hierarchical_risk_parity(returns.to_numpy()), ours)  # deterministic


def test_hierarchical_risk_parity_from_a_covariance_matches_pypfopt_hrp() -> None:
    sigma = market().sigma
    ours = hierarchical_risk_parity(covariance=sigma)
    theirs = HRPOpt(cov_matrix=pd.DataFrame(sigma, index=MODEL, columns=MODEL)).optimize()
    np.testing.assert_allclose(ours, [theirs[t] for t in MODEL], rtol=0, atol=1e-12)


def test_hierarchical_risk_parity_refuses_ambiguous_or_degenerate_input() -> None:
    with pytest.raises(OptimizationError, match="either returns or a covariance"):
        hierarchical_risk_parity()
    with pytest.raises(OptimizationError, match="positive variance"):
        hierarchical_risk_parity(covariance=np.diag([0.04, 0.0]))
    with pytest.raises(OptimizationError, match="missing"):
        hierarchical_risk_parity(np.array([[0.01, np.nan], [0.02, 0.01], [0.0, 0.01]]))


# --- refusals -----------------------------------------------------------------------------------


def test_maximum_sharpe_refuses_when_no_asset_beats_the_risk_free_rate_and_says_why() -> None:
    m = market()
    mu = m.mu - m.mu.max() - 0.01  # every fund 1% below a zero risk-free rate
    problem = MaximumSharpeProblem(len(MODEL))
    with pytest.raises(OptimizationError, match=r"No asset earns more than the risk-free rate 0\.0000%") as ours:
        problem.solve(mu, m.sigma, upper(), 0.0)
    assert "highest expected return -1.0000%" in str(ours.value)
    assert problem.problem.status is None  # refused before any solve
    # PyPortfolioOpt refuses as well, without the rate or the best return.
    with pytest.raises(ValueError, match="at least one of the assets must have an expected return exceeding"):
        EfficientFrontier(mu, m.sigma, weight_bounds=(0, UPPER), solver="CLARABEL").max_sharpe(risk_free_rate=0.0)


def test_maximum_sharpe_refuses_when_the_bounds_leave_no_portfolio_above_the_risk_free_rate() -> None:
    # One fund beats 5% but may hold only 20%; the rest must go to funds earning 1%.
    mu, sigma, caps = np.array([0.10, 0.01, 0.01]), np.diag([0.04, 0.01, 0.02]), np.array([0.2, 1.0, 1.0])
    with pytest.raises(OptimizationError, match="No portfolio within the per-asset maxima earns more than the risk"):
        problems(3)[1].solve(mu, sigma, caps, 0.05)
    bounds = [(0, 0.2), (0, 1), (0, 1)]
    with pytest.raises(pypfopt_exceptions.OptimizationError, match="infeasible"):  # the bare solver status
        EfficientFrontier(mu, sigma, weight_bounds=bounds, solver="CLARABEL").max_sharpe(risk_free_rate=0.05)


def test_target_volatility_below_the_minimum_is_refused_with_both_numbers() -> None:
    m = market()
    minimum, _, target = problems(len(MODEL))
    floor = minimum.solve(m.mu, m.sigma, upper()).volatility
    assert floor == pytest.approx(0.0186, abs=1e-4)
    with pytest.raises(OptimizationError, match=r"Target volatility 1\.5000% is below the minimum") as refused:
        target.solve(m.mu, m.sigma, upper(), 0.015)
    assert f"minimum-variance volatility {floor:.4%} reachable within these bounds" in str(refused.value)
    suggested = float(str(refused.value).rsplit("at least ", 1)[1].rstrip("%.")) / 100
    assert target.solve(m.mu, m.sigma, upper(), suggested).volatility <= suggested + 1e-7  # the advice works
    # PyPortfolioOpt checks against the unconstrained minimum (1.22% here) and then reports a bare status.
    with pytest.raises(pypfopt_exceptions.OptimizationError, match="infeasible"):
        reference().efficient_risk(0.015)


def test_target_volatility_at_the_minimum_returns_the_minimum_variance_portfolio() -> None:
    m = market()
    minimum, _, target = problems(len(MODEL))
    floor = minimum.solve(m.mu, m.sigma, upper())
    at_floor = target.solve(m.mu, m.sigma, upper(), floor.volatility)
    np.testing.assert_array_equal(at_floor.weights, floor.weights)


def test_check_bounds_feasible_names_every_conflict() -> None:
    with pytest.raises(OptimizationError, match=r"per-asset maxima sum to 0\.80 < 1"):
        check_bounds_feasible(np.full(4, 0.2))
    with pytest.raises(OptimizationError, match=r"per-asset maxima sum to 0\.9999 < 1"):
        check_bounds_feasible([0.5, 0.4999])
    with pytest.raises(OptimizationError) as conflicts:
        check_bounds_feasible([0.35, 0.35, -0.1], lower=[0.5, 0.0, 0.0], names=["VTI", "AGG", "BIL"])
    assert "VTI minimum 0.5 above its maximum 0.35" in str(conflicts.value)
    assert "BIL maximum -0.1 is negative" in str(conflicts.value)
    assert "per-asset maxima sum to 0.60 < 1" in str(conflicts.value)
    with pytest.raises(OptimizationError, match=r"per-asset minima sum to 1\.20 > 1"):
        check_bounds_feasible([1.0, 1.0], lower=[0.6, 0.6], names=["VTI", "AGG"])
    with pytest.raises(OptimizationError, match=r"asset 1 minimum -0\.2 is negative"):
        check_bounds_feasible([1.0, 1.0], lower=[0.0, -0.2])
    with pytest.raises(OptimizationError, match="Got 1 names for 2 assets"):
        check_bounds_feasible([1.0, 1.0], names=["VTI"])
    check_bounds_feasible([0.5, 0.5], lower=[0.5, 0.5])  # exactly one portfolio: feasible


def test_every_problem_refuses_bounds_that_cannot_sum_to_one_before_solving() -> None:
    sigma, mu, caps = np.eye(3) * 0.04, np.full(3, 0.05), np.full(3, 0.3)
    fresh = (MinimumVarianceProblem(3), MaximumSharpeProblem(3), TargetVolatilityProblem(3))
    for attempt in (
        lambda: fresh[0].solve(mu, sigma, caps),
        lambda: fresh[1].solve(mu, sigma, caps, 0.0),
        lambda: fresh[2].solve(mu, sigma, caps, 0.2),
    ):
        with pytest.raises(OptimizationError, match=r"maxima sum to 0\.90 < 1"):
            attempt()
    assert all(p.problem.status is None for p in fresh)
    assert fresh[2].minimum_variance.problem.status is None


def test_a_covariance_that_is_not_positive_definite_is_refused_by_every_problem() -> None:
    sigma, mu, caps = np.array([[1.0, 2.0], [2.0, 1.0]]), np.full(2, 0.05), np.ones(2)
    minimum, sharpe, target = problems(2)
    for attempt in (
        lambda: minimum.solve(mu, sigma, caps),
        lambda: sharpe.solve(mu, sigma, caps, 0.0),
        lambda: target.solve(mu, sigma, caps, 0.2),
    ):
        with pytest.raises(OptimizationError, match="not positive definite"):
            attempt()


# --- random problems ----------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=2, max_value=8), st.integers(min_value=0, max_value=2**31 - 1))
@example(n=4, seed=61164)  # Clarabel stalls on this one (user_limit): the OSQP retry must solve it
def test_random_problems_give_fully_invested_weights_within_bounds_for_every_objective(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(n, n)) * rng.uniform(0.01, 0.3, size=n)[:, None]
    sigma = factors @ factors.T / n + np.diag(rng.uniform(1e-5, 0.01, size=n))
    mu = rng.normal(0.05, 0.05, size=n)
    caps = np.full(n, max(1.0 / n + 0.1, 0.3))
    risk_free_rate = float(mu.min()) - 0.01  # every asset beats it: maximum Sharpe is defined
    minimum, sharpe, target = problems(n)

    floor = minimum.solve(mu, sigma, caps)
    tangency = sharpe.solve(mu, sigma, caps, risk_free_rate)
    aimed = target.solve(mu, sigma, caps, floor.volatility * float(rng.uniform(1.0, 3.0)))
    for solution in (floor, tangency, aimed):
        assert solution.weights.sum() == pytest.approx(1.0, abs=1e-9)
        assert (solution.weights >= 0).all() and (solution.weights <= caps + 1e-9).all()
    assert floor.volatility <= tangency.volatility + 1e-6 and floor.volatility <= aimed.volatility + 1e-6
    assert aimed.expected_return >= floor.expected_return - 1e-6
    assert (tangency.expected_return - risk_free_rate) / tangency.volatility >= (
        floor.expected_return - risk_free_rate
    ) / floor.volatility - 1e-6

    for weights in (risk_parity(sigma), hierarchical_risk_parity(covariance=sigma)):
        assert weights.sum() == pytest.approx(1.0, abs=1e-12)
        assert (weights > 0).all()
    np.testing.assert_allclose(risk_contributions(risk_parity(sigma), sigma), 1 / n, rtol=0, atol=1e-6)
