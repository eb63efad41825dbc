"""More portfolio objectives beside mean-variance (pure: numpy, scipy, cvxpy; no Django).

Every cvxpy problem here is written once with ``cp.Parameter``s, so it is canonicalized once (DPP)
and re-solved with new values, like ``MeanVarianceProblem``. All are long-only and fully invested,
with a per-asset upper bound that is itself a parameter; ``Sigma = L L'`` enters through ``L'``::

    minimum variance     minimize ||L'w||^2
    maximum Sharpe       minimize ||L'y||^2  s.t. (mu - r_f)'y = 1, sum(y) = kappa, 0 <= y <= kappa upper
                         then w = y / kappa (the homogenization of Cornuejols and Tutuncu)
    target volatility    maximize mu'w       s.t. ||L'w|| <= sigma_target

Two allocations need no solver: equal risk contribution (``risk_parity``, Newton's method on the
strictly convex log-barrier problem) and López de Prado's hierarchical risk parity
(``hierarchical_risk_parity``, scipy's hierarchical clustering).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import cvxpy as cp
import numpy as np
import numpy.typing as npt
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform

from portfolios.optimize import SOLVER, OptimizationError, Solution, clean_weights

FloatArray = npt.NDArray[np.float64]

BOUND_TOLERANCE = 1e-9
# Risk parity refuses a result whose risk contributions miss their budgets by more than this.
RISK_PARITY_TOLERANCE = 1e-6
# Newton stops below this decrement (about 1e-10 on the contributions); it backtracks above the next one.
_NEWTON_DECREMENT = 1e-20
_FULL_NEWTON_STEPS_BELOW = 1e-6
_NEWTON_MAX_ITERATIONS = 100

_INFEASIBLE = (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE)
_SOLVED = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)


# --- validation shared by every objective -------------------------------------------------------


def _format_sum(value: float) -> str:
    """Two decimals, or more when two would print a sum that misses one as "1.00"."""
    for decimals in range(2, 10):
        text = f"{value:.{decimals}f}"
        if float(text) != 1.0:
            return text
    return repr(value)


def check_bounds_feasible(
    upper: npt.ArrayLike,
    lower: npt.ArrayLike | None = None,
    names: Sequence[str] | None = None,
) -> None:
    """Refuse, before any solve, bounds under which no long-only fully invested portfolio exists.

    Every conflict is named in one message, so an operator fixes them all at once.
    """
    upper_array = np.asarray(upper, dtype=float)
    if upper_array.ndim != 1 or upper_array.size == 0:
        raise OptimizationError("Upper bounds must be a non-empty vector, one per asset.")
    n = upper_array.size
    lower_array = np.zeros(n) if lower is None else np.asarray(lower, dtype=float)
    if lower_array.shape != (n,):
        raise OptimizationError(f"Got {lower_array.size} lower bounds for {n} assets.")
    labels = list(names) if names is not None else [f"asset {i}" for i in range(n)]
    if len(labels) != n:
        raise OptimizationError(f"Got {len(labels)} names for {n} assets.")

    problems: list[str] = []
    for label, low, high in zip(labels, lower_array, upper_array, strict=True):
        if not np.isfinite(high) or not np.isfinite(low):
            problems.append(f"{label} bounds must be finite numbers (minimum {low:g}, maximum {high:g})")
        elif high < 0:
            problems.append(f"{label} maximum {high:g} is negative")
        elif low < 0:
            problems.append(f"{label} minimum {low:g} is negative (portfolios are long-only)")
        elif low > high + BOUND_TOLERANCE:
            problems.append(f"{label} minimum {low:g} above its maximum {high:g}")
    if np.all(np.isfinite(upper_array)) and np.all(np.isfinite(lower_array)):
        if upper_array.sum() < 1 - BOUND_TOLERANCE:
            problems.append(f"per-asset maxima sum to {_format_sum(float(upper_array.sum()))} < 1")
        if lower_array.sum() > 1 + BOUND_TOLERANCE:
            problems.append(f"per-asset minima sum to {_format_sum(float(lower_array.sum()))} > 1")
    if problems:
        raise OptimizationError(
            "No fully invested long-only portfolio satisfies the bounds: " + "; ".join(problems) + "."
        )


def _cholesky_transpose(sigma: FloatArray, n_assets: int) -> FloatArray:
    if sigma.shape != (n_assets, n_assets):
        raise OptimizationError(f"Covariance matrix is {sigma.shape}, expected ({n_assets}, {n_assets}).")
    if not np.all(np.isfinite(sigma)) or not np.allclose(sigma, sigma.T, rtol=0.0, atol=1e-12):
        raise OptimizationError("Covariance matrix must be finite and symmetric.")
    try:
        return np.asarray(np.linalg.cholesky(sigma).T, dtype=float)
    except np.linalg.LinAlgError as exc:
        raise OptimizationError("Covariance matrix is not positive definite.") from exc


def _check_vector(values: FloatArray, n_assets: int, what: str) -> None:
    if values.shape != (n_assets,) or not np.all(np.isfinite(values)):
        raise OptimizationError(f"{what} must be {n_assets} finite numbers, got shape {values.shape}.")


def _solution(weights: FloatArray, mu: FloatArray, sigma: FloatArray, status: str, seconds: float) -> Solution:
    return Solution(
        weights=weights,
        expected_return=float(mu @ weights),
        volatility=float(np.sqrt(weights @ sigma @ weights)),
        status=status,
        solve_seconds=seconds,
    )


def _require_dpp(problem: cp.Problem, name: str) -> None:
    if not problem.is_dpp():  # would silently re-canonicalize on every solve
        raise OptimizationError(f"The {name} problem is not DPP.")


# --- compiled cvxpy problems --------------------------------------------------------------------


class MinimumVarianceProblem:
    """Long-only minimum variance under per-asset upper bounds, compiled once for ``n`` assets."""

    def __init__(self, n_assets: int) -> None:
        self.n_assets = n_assets
        self.weights = cp.Variable(n_assets, name="w")
        self.chol_t = cp.Parameter((n_assets, n_assets), name="L_transpose")
        self.upper = cp.Parameter(n_assets, nonneg=True, name="upper")
        objective = cp.Minimize(cp.sum_squares(self.chol_t @ self.weights))
        constraints = [cp.sum(self.weights) == 1, self.weights >= 0, self.weights <= self.upper]
        self.problem = cp.Problem(objective, constraints)
        _require_dpp(self.problem, "minimum-variance")

    def solve(self, mu: FloatArray, sigma: FloatArray, upper: FloatArray) -> Solution:
        """``mu`` does not move the weights; it only reports the portfolio's expected return."""
        _check_vector(mu, self.n_assets, "Expected returns")
        _check_vector(upper, self.n_assets, "Upper bounds")
        check_bounds_feasible(upper)
        self.chol_t.value = _cholesky_transpose(sigma, self.n_assets)
        self.upper.value = upper
        started = time.perf_counter()
        self.problem.solve(solver=SOLVER)
        elapsed = time.perf_counter() - started
        if self.problem.status not in _SOLVED or self.weights.value is None:
            raise OptimizationError(f"Minimum variance: solver {SOLVER} ended with status {self.problem.status}.")
        weights = clean_weights(np.asarray(self.weights.value, dtype=float), upper)
        return _solution(weights, mu, sigma, str(self.problem.status), elapsed)


class MaximumSharpeProblem:
    """The tangency portfolio under long-only upper bounds, by homogenization (w = y / kappa)."""

    def __init__(self, n_assets: int) -> None:
        self.n_assets = n_assets
        self.scaled = cp.Variable(n_assets, name="y")
        self.kappa = cp.Variable(name="kappa")
        self.excess = cp.Parameter(n_assets, name="mu_minus_rf")
        self.chol_t = cp.Parameter((n_assets, n_assets), name="L_transpose")
        self.upper = cp.Parameter(n_assets, nonneg=True, name="upper")
        objective = cp.Minimize(cp.sum_squares(self.chol_t @ self.scaled))
        constraints = [
            self.excess @ self.scaled == 1,
            cp.sum(self.scaled) == self.kappa,
            self.kappa >= 0,
            self.scaled >= 0,
            self.scaled <= cp.multiply(self.upper, self.kappa),
        ]
        self.problem = cp.Problem(objective, constraints)
        _require_dpp(self.problem, "maximum-Sharpe")

    def solve(self, mu: FloatArray, sigma: FloatArray, upper: FloatArray, risk_free_rate: float) -> Solution:
        _check_vector(mu, self.n_assets, "Expected returns")
        _check_vector(upper, self.n_assets, "Upper bounds")
        if not np.isfinite(risk_free_rate):
            raise OptimizationError("The risk-free rate must be a finite number.")
        excess = mu - risk_free_rate
        if np.all(excess <= 0):
            # The homogenized problem has no feasible point: no mix of these assets has a positive Sharpe ratio.
            raise OptimizationError(
                f"No asset earns more than the risk-free rate {risk_free_rate:.4%} (highest expected return "
                f"{mu.max():.4%}): the maximum Sharpe ratio is undefined. Lower the risk-free rate or use "
                "another objective, such as minimum variance."
            )
        check_bounds_feasible(upper)
        self.excess.value = excess
        self.chol_t.value = _cholesky_transpose(sigma, self.n_assets)
        self.upper.value = upper
        started = time.perf_counter()
        self.problem.solve(solver=SOLVER)
        if self.problem.status not in _SOLVED and self.problem.status not in _INFEASIBLE:
            # Clarabel can stall (user_limit) on badly scaled homogenized problems; the same QP is one
            # OSQP handles at tight tolerances.
            self.problem.solve(solver="OSQP", eps_abs=1e-9, eps_rel=1e-9, max_iter=200_000, polishing=True)
        elapsed = time.perf_counter() - started
        if self.problem.status in _INFEASIBLE:
            raise OptimizationError(
                f"No portfolio within the per-asset maxima earns more than the risk-free rate "
                f"{risk_free_rate:.4%} (solver {SOLVER}: {self.problem.status}): the bounds force too much "
                "into assets below it, so the maximum Sharpe ratio is undefined."
            )
        kappa = self.kappa.value
        if self.problem.status not in _SOLVED or self.scaled.value is None or kappa is None or float(kappa) <= 0:
            raise OptimizationError(f"Maximum Sharpe: solver {SOLVER} ended with status {self.problem.status}.")
        raw = np.asarray(self.scaled.value, dtype=float) / float(kappa)
        weights = clean_weights(raw, upper)
        return _solution(weights, mu, sigma, str(self.problem.status), elapsed)


class TargetVolatilityProblem:
    """The highest expected return with volatility at most a target, long-only under upper bounds.

    A target below the bounded minimum-variance volatility is refused with both numbers; a target
    within solver precision of it returns the minimum-variance portfolio, the only feasible one.
    """

    def __init__(self, n_assets: int) -> None:
        self.n_assets = n_assets
        self.weights = cp.Variable(n_assets, name="w")
        self.mu = cp.Parameter(n_assets, name="mu")
        self.chol_t = cp.Parameter((n_assets, n_assets), name="L_transpose")
        self.upper = cp.Parameter(n_assets, nonneg=True, name="upper")
        self.target = cp.Parameter(nonneg=True, name="target_volatility")
        objective = cp.Maximize(self.mu @ self.weights)
        constraints = [
            cp.norm(self.chol_t @ self.weights, 2) <= self.target,
            cp.sum(self.weights) == 1,
            self.weights >= 0,
            self.weights <= self.upper,
        ]
        self.problem = cp.Problem(objective, constraints)
        _require_dpp(self.problem, "target-volatility")
        self.minimum_variance = MinimumVarianceProblem(n_assets)

    def solve(self, mu: FloatArray, sigma: FloatArray, upper: FloatArray, target_volatility: float) -> Solution:
        if not np.isfinite(target_volatility) or target_volatility <= 0:
            raise OptimizationError(f"Target volatility must be positive, got {target_volatility}.")
        started = time.perf_counter()
        floor = self.minimum_variance.solve(mu, sigma, upper)  # validates mu, sigma and the bounds
        if target_volatility < floor.volatility * (1 - 1e-6):
            reachable = math.ceil(floor.volatility * 1e6) / 1e6  # as printed, rounded up so it is accepted
            raise OptimizationError(
                f"Target volatility {target_volatility:.4%} is below the minimum-variance volatility "
                f"{floor.volatility:.4%} reachable within these bounds: no portfolio is that calm. "
                f"Raise the target to at least {reachable:.4%}."
            )
        if target_volatility <= floor.volatility * (1 + 1e-6):
            return floor
        self.mu.value = mu
        self.chol_t.value = self.minimum_variance.chol_t.value
        self.upper.value = upper
        self.target.value = target_volatility
        self.problem.solve(solver=SOLVER)
        elapsed = time.perf_counter() - started
        if self.problem.status not in _SOLVED or self.weights.value is None:
            raise OptimizationError(f"Target volatility: solver {SOLVER} ended with status {self.problem.status}.")
        weights = clean_weights(np.asarray(self.weights.value, dtype=float), upper)
        return _solution(weights, mu, sigma, str(self.problem.status), elapsed)


# --- allocations without a cvxpy problem --------------------------------------------------------


def risk_contributions(weights: FloatArray, sigma: FloatArray) -> FloatArray:
    """Each asset's share of portfolio variance, w_i (Sigma w)_i / w'Sigma w; they sum to one."""
    marginal = sigma @ weights
    return np.asarray(weights * marginal / (weights @ marginal), dtype=float)


def risk_parity(sigma: FloatArray, budgets: FloatArray | None = None) -> FloatArray:
    """Long-only, fully invested weights whose risk contributions equal ``budgets`` (equal by default).

    Minimizes the strictly convex 1/2 x'Cx - sum b_i log x_i on the correlation matrix C, whose minimizer
    satisfies x_i (C x)_i = b_i; the contributions are scale-free, so w = D^-1 x / sum(D^-1 x) with D the
    volatilities. Working on C keeps Newton well conditioned when volatilities span 0.5% to 30%.
    """
    sigma = np.asarray(sigma, dtype=float)
    n = sigma.shape[0]
    _cholesky_transpose(sigma, n)  # square, symmetric, positive definite
    if budgets is None:
        target = np.full(n, 1.0 / n)
    else:
        target = np.asarray(budgets, dtype=float)
        _check_vector(target, n, "Risk budgets")
        if np.any(target <= 0):
            raise OptimizationError("Risk budgets must all be positive.")
        target = target / target.sum()
    vols = np.sqrt(np.diag(sigma))
    corr = sigma / np.outer(vols, vols)

    x = np.sqrt(target)  # the solution when assets are uncorrelated
    previous_decrement = np.inf
    for _ in range(_NEWTON_MAX_ITERATIONS):
        cx = corr @ x
        gradient = cx - target / x
        step = np.linalg.solve(corr + np.diag(target / x**2), -gradient)
        decrement = float(-gradient @ step)
        stalled = decrement < 1e-12 and decrement >= previous_decrement  # at rounding: no more to gain
        if decrement < _NEWTON_DECREMENT or stalled:
            break
        previous_decrement = decrement
        negative = step < 0  # stay inside x > 0
        t = min(1.0, 0.99 * float(np.min(-x[negative] / step[negative]))) if negative.any() else 1.0
        if decrement > _FULL_NEWTON_STEPS_BELOW:
            # Far from the optimum: backtrack on the objective (Armijo). Near it, full steps converge
            # quadratically, and the objective's decrease is below its rounding, so no test could accept them.
            value = 0.5 * x @ cx - target @ np.log(x)
            while t > 1e-12:
                candidate = x + t * step
                if 0.5 * candidate @ corr @ candidate - target @ np.log(candidate) <= value - 0.25 * t * decrement:
                    break
                t *= 0.5
        x = x + t * step

    weights = x / vols
    weights = weights / weights.sum()
    contributions = risk_contributions(weights, sigma)
    worst = float(np.max(np.abs(contributions - target)))
    if worst > RISK_PARITY_TOLERANCE:
        raise OptimizationError(f"Risk parity did not converge: a risk contribution is {worst:.2e} off its budget.")
    return np.asarray(weights, dtype=float)


def hierarchical_risk_parity(
    returns: FloatArray | None = None,
    *,
    covariance: FloatArray | None = None,
    linkage_method: str = "single",
) -> FloatArray:
    """López de Prado's hierarchical risk parity (2016), deterministic for given inputs.

    Pass daily ``returns`` (observations x assets; the sample covariance and correlation are used, as in
    PyPortfolioOpt's ``HRPOpt(returns)``) or a ``covariance`` (the correlation is derived from it). Assets are
    clustered by ``linkage_method`` on the distance sqrt((1 - rho) / 2), ordered quasi-diagonally (the
    dendrogram's leaves), and the ordered list is bisected recursively: each half receives weight inversely
    proportional to the variance of its own inverse-variance portfolio.

    The weights depend on the order of the assets when the dendrogram has equal distances or when a
    half-split cuts through a cluster, as in the original; callers should pass assets in a fixed order.
    """
    if (returns is None) == (covariance is None):
        raise OptimizationError("Pass either returns or a covariance matrix, not both or neither.")
    if returns is not None:
        observations = np.asarray(returns, dtype=float)
        if observations.ndim != 2 or observations.shape[0] < 3:
            raise OptimizationError("Returns must be a 2-D array with at least 3 observations per asset.")
        if not np.all(np.isfinite(observations)):
            raise OptimizationError("Returns contain missing or infinite values.")
        cov = np.atleast_2d(np.cov(observations, rowvar=False, ddof=1))
    else:
        cov = np.atleast_2d(np.asarray(covariance, dtype=float))
        if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
            raise OptimizationError(f"Covariance matrix must be square, got shape {cov.shape}.")
        if not np.all(np.isfinite(cov)) or not np.allclose(cov, cov.T, rtol=0.0, atol=1e-12):
            raise OptimizationError("Covariance matrix must be finite and symmetric.")
    variances = np.diag(cov)
    if np.any(variances <= 0):
        raise OptimizationError("Every asset needs a positive variance for hierarchical risk parity.")
    n = cov.shape[0]
    if n == 1:
        return np.ones(1)

    vols = np.sqrt(variances)
    corr = cov / np.outer(vols, vols)
    distance = np.sqrt(np.clip((1.0 - corr) / 2.0, 0.0, 1.0))
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), method=linkage_method)
    order = [int(i) for i in leaves_list(tree)]

    weights = np.ones(n)
    clusters = [order]
    while clusters:
        clusters = [part for c in clusters if len(c) > 1 for part in (c[: len(c) // 2], c[len(c) // 2 :])]
        for first, second in zip(clusters[::2], clusters[1::2], strict=True):
            first_variance = _inverse_variance_cluster_variance(cov, first)
            second_variance = _inverse_variance_cluster_variance(cov, second)
            alpha = 1.0 - first_variance / (first_variance + second_variance)
            weights[first] *= alpha
            weights[second] *= 1.0 - alpha
    return weights


def _inverse_variance_cluster_variance(cov: FloatArray, members: list[int]) -> float:
    block = cov[np.ix_(members, members)]
    inverse = 1.0 / np.diag(block)
    inverse /= inverse.sum()
    return float(inverse @ block @ inverse)
