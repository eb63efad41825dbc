"""Long-only mean-variance optimization with cvxpy (pure: no Django).

The problem is written once with ``cp.Parameter``s so it is canonicalized once
(DPP) and re-solved for each risk level with new parameter values::

    maximize   (mu / gamma)' w  -  1/2 || L' w ||^2      (Sigma = L L')
    subject to sum(w) = 1,  0 <= w <= upper

which has the same solution as maximizing ``mu'w - gamma/2 w'Sigma w``: dividing
the utility by ``gamma`` keeps every parameter product DPP-compliant.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

SOLVER = "CLARABEL"
MIN_REPORTED_WEIGHT = 1e-5


class OptimizationError(ValueError):
    pass


def risk_aversion_for_level(level: int) -> float:
    """Geometric from 64 at level 1 (near minimum variance) to 1 at level 10 (near maximum return).

    Each level divides the risk aversion by 64 ** (1/9), about 1.59. Documented in docs/portfolio.md.
    """
    if not 1 <= level <= 10:
        raise OptimizationError(f"Risk level must be 1-10, got {level}.")
    return round(float(64.0 ** ((10 - level) / 9)), 9)


@dataclass(frozen=True)
class Solution:
    weights: np.ndarray
    expected_return: float
    volatility: float
    status: str
    solve_seconds: float


def check_feasible(upper: np.ndarray) -> None:
    if np.any(upper < 0):
        raise OptimizationError("Upper bounds must not be negative.")
    if upper.sum() < 1 - 1e-9:
        raise OptimizationError(
            f"Per-asset upper bounds sum to {upper.sum():.4f} < 1: no fully invested long-only portfolio exists."
        )


class MeanVarianceProblem:
    """A compiled mean-variance problem for ``n`` assets, re-solved with new parameter values."""

    def __init__(self, n_assets: int) -> None:
        self.n_assets = n_assets
        self.weights = cp.Variable(n_assets, name="w")
        self.scaled_mu = cp.Parameter(n_assets, name="mu_over_gamma")
        self.chol_t = cp.Parameter((n_assets, n_assets), name="L_transpose")
        self.upper = cp.Parameter(n_assets, nonneg=True, name="upper")
        objective = cp.Maximize(self.scaled_mu @ self.weights - 0.5 * cp.sum_squares(self.chol_t @ self.weights))
        constraints = [cp.sum(self.weights) == 1, self.weights >= 0, self.weights <= self.upper]
        self.problem = cp.Problem(objective, constraints)
        if not self.problem.is_dpp():  # would silently re-canonicalize on every solve
            raise OptimizationError("The mean-variance problem is not DPP.")

    def solve(self, mu: np.ndarray, sigma: np.ndarray, risk_aversion: float, upper: np.ndarray) -> Solution:
        if risk_aversion <= 0:
            raise OptimizationError("Risk aversion must be positive.")
        check_feasible(upper)
        try:
            chol = np.linalg.cholesky(sigma)
        except np.linalg.LinAlgError as exc:
            raise OptimizationError("Covariance matrix is not positive definite.") from exc
        self.scaled_mu.value = mu / risk_aversion
        self.chol_t.value = chol.T
        self.upper.value = upper
        started = time.perf_counter()
        self.problem.solve(solver=SOLVER)
        elapsed = time.perf_counter() - started
        if self.problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or self.weights.value is None:
            raise OptimizationError(f"Solver {SOLVER} ended with status {self.problem.status}.")
        weights = clean_weights(np.asarray(self.weights.value), upper)
        return Solution(
            weights=weights,
            expected_return=float(mu @ weights),
            volatility=float(np.sqrt(weights @ sigma @ weights)),
            status=str(self.problem.status),
            solve_seconds=elapsed,
        )


def clean_weights(raw: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Clip solver noise (tiny negatives, 1e-9 dust) and restore a sum of one without breaking a bound.

    The mass removed is given back to the assets with room below their bound, in proportion to that room.
    """
    weights = np.clip(raw, 0.0, upper)
    weights[weights < MIN_REPORTED_WEIGHT] = 0.0
    missing = 1.0 - weights.sum()
    room = np.where(weights > 0, upper - weights, 0.0)
    if missing > 0 and room.sum() > 0:
        weights = weights + room * min(1.0, missing / room.sum())
    elif missing < 0:
        weights = weights * (1.0 / weights.sum())
    return weights


def minimum_variance_closed_form(sigma: np.ndarray) -> np.ndarray:
    """Unconstrained (shorts allowed) minimum variance: w = S^-1 1 / 1' S^-1 1."""
    ones = np.ones(sigma.shape[0])
    x = np.linalg.solve(sigma, ones)
    return np.asarray(x / x.sum())
