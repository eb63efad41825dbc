"""Every portfolio objective under a personal target's constraints, for the advisors' what-if (pure: no Django).

The personal-target engine (``personal.py``) solves one objective, mean-variance utility. A what-if may ask
for another, under the same ``Constraints`` (per-fund maximum, exclusions, the tax rule, class bounds, the
bond/cash floor, the maximum position, and a transaction cost or turnover limit against current holdings):

- ``mean_variance``: the engine itself, at the level's risk aversion.
- ``min_variance``: the engine with ``mu = 0``. The level's risk aversion still prices a transaction cost
  against variance, as it does in the mean-variance problem; without one the weights do not depend on it.
- ``max_sharpe``: the tangency portfolio at a risk-free rate, homogenized (``y = kappa w``; Cornuejols and
  Tutuncu): every linear constraint ``a'w <= b`` becomes ``a'y <= b kappa``, the turnover budget too, and a
  transaction cost is charged against the excess return (``(mu - r_f)'y - c't = 1`` with ``t >= |y - kappa
  w0|``), so the ratio maximized is the Sharpe ratio net of trading costs.
- ``target_volatility``: the highest expected return (net of trading costs) with volatility at most a target;
  a target below the least volatility the constraints allow is refused with both numbers.
- ``risk_parity`` and ``hrp``: allocations by risk alone, long-only and fully invested, which take no other
  constraint: passing any is refused (``ObjectiveInputError``), never ignored.

The constrained problems are cvxpy problems with every number a ``cp.Parameter`` (DPP), compiled once per
constraint structure and re-solved for the relaxations that price each binding constraint: the constraint is
relaxed alone (``relaxed_constraints``) and the same objective solved again; its cost is the expected return
given up and the volatility added.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import cvxpy as cp
import numpy as np
import numpy.typing as npt

from portfolios.objectives import hierarchical_risk_parity, risk_parity
from portfolios.optimize import SOLVER, OptimizationError
from portfolios.personal import (
    CLARABEL_SETTINGS,
    BindingConstraint,
    ClassBounds,
    ConstraintCost,
    Constraints,
    InfeasibleConstraintsError,
    Method,
    PersonalTargetSolver,
    clean_within,
    diagnose,
)

FloatArray = npt.NDArray[np.float64]

OBJECTIVES: dict[str, str] = {
    "mean_variance": "Mean-variance utility at the level's risk aversion",
    "min_variance": "Minimum variance",
    "max_sharpe": "Maximum Sharpe ratio at the risk-free rate",
    "target_volatility": "Target volatility (the highest expected return at that volatility)",
    "risk_parity": "Risk parity (equal risk contributions)",
    "hrp": "Hierarchical risk parity",
}
# Allocations by risk alone: long-only and fully invested, nothing else.
BUDGET_ONLY_OBJECTIVES = frozenset({"risk_parity", "hrp"})
TAX_RULE_PREFIX = "the tax rule"  # the reason personal.py gives municipal bonds it excludes
_NO_CLASS_MAXIMUM = 1.0
_SOLVED = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
_INFEASIBLE = (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE)


class ObjectiveInputError(OptimizationError):
    """The objective is undefined for these inputs; ``field`` names the input to change."""

    def __init__(self, message: str, *, field: str = "objective") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ObjectiveTarget:
    objective: str
    weights: FloatArray
    expected_return: float
    volatility: float
    binding: tuple[BindingConstraint, ...]  # with costs when explained
    method: str  # the solver that produced the weights
    solve_seconds: float  # the solve and, when explained, the relaxations


def relaxed_constraints(constraints: Constraints, binding: BindingConstraint, tickers: Sequence[str]) -> Constraints:
    """``constraints`` without ``binding`` (one of those ``PersonalTargetSolver.binding`` lists), all else kept.

    The same relaxations the engine prices its own explanations with: an exclusion reason is dropped (a fund
    excluded for another reason stays excluded; the tax rule is dropped by making the account taxable at any
    rate), a per-fund maximum rises to the maximum position (or 1), a class bound or the bond/cash floor goes,
    the turnover limit or transaction cost goes.
    """
    kind = binding.kind
    if kind == "exclusion":
        if binding.name.startswith(TAX_RULE_PREFIX):
            return replace(constraints, account_type="taxable", municipal_rate_floor=None)
        exclusions: dict[str, tuple[str, ...]] = {}
        for ticker, reasons in constraints.exclusions.items():
            kept = tuple(r for r in reasons if r != binding.name)
            if kept:
                exclusions[ticker] = kept
        return replace(constraints, exclusions=exclusions)
    if kind == "max_position":
        return replace(constraints, max_position=None)
    index = {t: i for i, t in enumerate(tickers)}
    if kind == "asset_maximum":
        upper = constraints.upper.copy()
        upper[index[binding.name]] = 1.0
        return replace(constraints, upper=upper)
    if kind == "asset_minimum":
        lower = constraints.lower_bounds.copy()
        lower[index[binding.name]] = 0.0
        return replace(constraints, lower=lower)
    groups = constraints.class_bounds
    if kind in ("class_minimum", "class_maximum") and groups is not None:
        k = groups.names.index(binding.name)
        low, high = groups.lower.copy(), groups.upper.copy()
        if kind == "class_minimum":
            low[k] = 0.0
        else:
            high[k] = _NO_CLASS_MAXIMUM
        relaxed_groups = ClassBounds(names=groups.names, membership=groups.membership, lower=low, upper=high)
        return replace(constraints, class_bounds=relaxed_groups)
    if kind == "bond_cash_minimum":
        return replace(constraints, bond_cash_minimum=0.0)
    if kind == "turnover_limit":
        return replace(constraints, turnover_limit=None)
    if kind == "transaction_cost":
        return replace(constraints, transaction_cost=0.0)
    raise OptimizationError(f"Cannot relax a constraint of kind {kind!r}.")


# --- the problem data shared by the two conic problems ---------------------------------------------


class _Shape(NamedTuple):
    """Which constraints a problem has: one compiled problem per shape."""

    classes: int
    bond_minimum: bool
    cost: bool
    turnover: bool


@dataclass(frozen=True)
class _Data:
    lower: FloatArray
    upper: FloatArray
    membership: FloatArray | None
    class_lower: FloatArray | None
    class_upper: FloatArray | None
    bond_minimum: float
    current: FloatArray
    cost: FloatArray
    turnover_bound: float | None  # on sum |w - w0|: 2 x turnover limit + 1 - sum(w0)

    @property
    def structure(self) -> _Shape:
        return _Shape(
            classes=0 if self.membership is None else int(self.membership.shape[0]),
            bond_minimum=self.bond_minimum > 0,
            cost=bool(np.any(self.cost > 0)),
            turnover=self.turnover_bound is not None,
        )

    @property
    def trades(self) -> bool:
        return bool(np.any(self.cost > 0)) or self.turnover_bound is not None


class _ConicProblem:
    """The linear constraints of a personal target, as cvxpy parameters, around a variable ``x`` that is either
    the weights (``scale`` = 1) or the homogenized weights ``y = kappa w`` (``scale`` = kappa)."""

    def __init__(self, n: int, data: _Data, bond_mask: npt.NDArray[np.bool_], homogenized: bool) -> None:
        self.x = cp.Variable(n, name="y" if homogenized else "w")
        self.kappa = cp.Variable(nonneg=True, name="kappa") if homogenized else None
        scale: cp.Expression | float = self.kappa if self.kappa is not None else 1.0
        self.chol_t = cp.Parameter((n, n), name="L_transpose_over_sqrt_scale")
        self.lower = cp.Parameter(n, nonneg=True, name="lower")
        self.upper = cp.Parameter(n, nonneg=True, name="upper")
        self.constraints: list[cp.Constraint] = [
            cp.sum(self.x) == scale,
            self.x >= cp.multiply(self.lower, scale),
            self.x <= cp.multiply(self.upper, scale),
        ]
        shape = data.structure
        k = shape.classes
        self.classes: tuple[cp.Parameter, cp.Parameter, cp.Parameter] | None = None
        if k:
            membership = cp.Parameter((k, n), name="class_membership")
            class_lower = cp.Parameter(k, nonneg=True, name="class_lower")
            class_upper = cp.Parameter(k, nonneg=True, name="class_upper")
            shares = membership @ self.x
            self.constraints += [shares >= cp.multiply(class_lower, scale), shares <= cp.multiply(class_upper, scale)]
            self.classes = (membership, class_lower, class_upper)
        self.bond_minimum = cp.Parameter(nonneg=True, name="bond_cash_minimum") if shape.bond_minimum else None
        if self.bond_minimum is not None:
            self.constraints.append(bond_mask.astype(float) @ self.x >= self.bond_minimum * scale)
        self.current = cp.Parameter(n, nonneg=True, name="current_weights") if data.trades else None
        self.cost = cp.Parameter(n, nonneg=True, name="cost") if shape.cost else None
        self.turnover_bound = cp.Parameter(nonneg=True, name="turnover_bound") if shape.turnover else None
        self.traded: cp.Variable | None = None
        if self.current is not None:
            self.traded = cp.Variable(n, name="t")  # t >= |x - scale w0|
            held = cp.multiply(self.current, scale)
            self.constraints += [self.traded >= self.x - held, self.traded >= held - self.x]
            if self.turnover_bound is not None:
                self.constraints.append(cp.sum(self.traded) <= self.turnover_bound * scale)

    def trading_cost(self) -> cp.Expression | float:
        return 0.0 if self.cost is None or self.traded is None else self.cost @ self.traded

    def set(self, data: _Data, chol_t: FloatArray) -> None:
        self.chol_t.value = chol_t
        self.lower.value = data.lower
        self.upper.value = data.upper
        if self.classes is not None:
            self.classes[0].value = data.membership
            self.classes[1].value = data.class_lower
            self.classes[2].value = data.class_upper
        if self.bond_minimum is not None:
            self.bond_minimum.value = data.bond_minimum
        if self.current is not None:
            self.current.value = data.current
        if self.cost is not None:
            self.cost.value = data.cost
        if self.turnover_bound is not None and data.turnover_bound is not None:
            self.turnover_bound.value = max(data.turnover_bound, 0.0)


def _solve(problem: cp.Problem, *, quadratic: bool) -> str:
    """Clarabel at the engine's tight tolerances; a quadratic program it stalls on (a badly scaled homogenized
    one) goes to OSQP at tight tolerances, as in ``objectives.MaximumSharpeProblem``."""
    try:
        problem.solve(solver=SOLVER, **CLARABEL_SETTINGS)
    except cp.SolverError:
        if not quadratic:
            raise
    if quadratic and problem.status not in _SOLVED and problem.status not in _INFEASIBLE:
        problem.solve(solver="OSQP", eps_abs=1e-9, eps_rel=1e-9, max_iter=200_000, polishing=True)
    return str(problem.status)


class _MaximumSharpe:
    def __init__(self, n: int, data: _Data, bond_mask: npt.NDArray[np.bool_]) -> None:
        self.base = _ConicProblem(n, data, bond_mask, homogenized=True)
        self.excess = cp.Parameter(n, name="mu_minus_rf")
        constraints = [*self.base.constraints, self.excess @ self.base.x - self.base.trading_cost() == 1]
        self.problem = cp.Problem(cp.Minimize(cp.sum_squares(self.base.chol_t @ self.base.x)), constraints)
        if not self.problem.is_dpp():
            raise OptimizationError("The constrained maximum-Sharpe problem is not DPP.")

    def solve(self, data: _Data, chol_t: FloatArray, excess: FloatArray) -> tuple[FloatArray | None, str]:
        self.base.set(data, chol_t)
        self.excess.value = excess
        status = _solve(self.problem, quadratic=True)
        kappa = self.base.kappa.value if self.base.kappa is not None else None
        if status not in _SOLVED or self.base.x.value is None or kappa is None or float(kappa) <= 0:
            return None, status
        return np.asarray(self.base.x.value, dtype=np.float64) / float(kappa), status


class _TargetVolatility:
    def __init__(self, n: int, data: _Data, bond_mask: npt.NDArray[np.bool_]) -> None:
        self.base = _ConicProblem(n, data, bond_mask, homogenized=False)
        self.mu = cp.Parameter(n, name="mu")
        self.target = cp.Parameter(nonneg=True, name="target_volatility_over_sqrt_scale")
        constraints = [*self.base.constraints, cp.norm(self.base.chol_t @ self.base.x, 2) <= self.target]
        objective = cp.Maximize(self.mu @ self.base.x - self.base.trading_cost())
        self.problem = cp.Problem(objective, constraints)
        if not self.problem.is_dpp():
            raise OptimizationError("The constrained target-volatility problem is not DPP.")

    def solve(self, data: _Data, chol_t: FloatArray, mu: FloatArray, target: float) -> tuple[FloatArray | None, str]:
        self.base.set(data, chol_t)
        self.mu.value = mu
        self.target.value = target
        status = _solve(self.problem, quadratic=False)
        if status not in _SOLVED or self.base.x.value is None:
            return None, status
        return np.asarray(self.base.x.value, dtype=np.float64), status


# --- the solver -------------------------------------------------------------------------------------


class ObjectiveSolver:
    """One universe's objectives under personal-target constraints. Not shared between threads (cvxpy
    problems hold their parameter values)."""

    def __init__(self, tickers: Sequence[str], classes: Sequence[str], *, method: Method = "clarabel") -> None:
        self.engine = PersonalTargetSolver(tickers, classes)
        self.tickers = self.engine.tickers
        self.classes = tuple(str(c) for c in classes)
        self.method: Method = method
        self._sharpe: dict[_Shape, _MaximumSharpe] = {}
        self._target: dict[_Shape, _TargetVolatility] = {}

    def solve(
        self,
        objective: str,
        constraints: Constraints | None,
        mu: npt.ArrayLike,
        sigma: npt.ArrayLike,
        *,
        risk_aversion: float,
        risk_free_rate: float = 0.0,
        target_volatility: float | None = None,
        explain: bool = True,
    ) -> ObjectiveTarget:
        """``objective`` (a key of ``OBJECTIVES``) under ``constraints`` (None: long-only budget only).

        Raises ``InfeasibleConstraintsError`` naming each conflict, ``ObjectiveInputError`` when the objective
        is undefined for these inputs or takes no such constraints, ``OptimizationError`` for malformed input.
        """
        if objective not in OBJECTIVES:
            raise ObjectiveInputError(f"Unknown objective {objective!r}; choose from {', '.join(OBJECTIVES)}.")
        mu_array = np.asarray(mu, dtype=np.float64)
        sigma_array = np.asarray(sigma, dtype=np.float64)
        n = len(self.tickers)
        if mu_array.shape != (n,) or not np.all(np.isfinite(mu_array)):
            raise OptimizationError(f"Expected returns must be {n} finite numbers, got shape {mu_array.shape}.")
        started = time.perf_counter()
        if objective in BUDGET_ONLY_OBJECTIVES:
            if constraints is not None:
                raise ObjectiveInputError(
                    f"{OBJECTIVES[objective]} allocates by risk alone, long-only and fully invested: it takes no "
                    "other constraint. Remove them, or choose mean-variance, minimum variance, maximum Sharpe or "
                    "target volatility.",
                    field="objective",
                )
            if objective == "risk_parity":
                weights = risk_parity(sigma_array)
            else:
                weights = hierarchical_risk_parity(covariance=sigma_array)
            return self._result(objective, weights, mu_array, sigma_array, (), "closed form", started)
        if constraints is None:
            constraints = Constraints(upper=np.ones(n))
        if objective in ("mean_variance", "min_variance"):
            return self._engine_solve(objective, constraints, mu_array, sigma_array, risk_aversion, explain, started)
        problems = diagnose(constraints, self.tickers, self.classes)
        if problems:
            raise InfeasibleConstraintsError(problems)
        chol_t, scale = _cholesky(sigma_array)
        if objective == "max_sharpe":
            weights, method = self._max_sharpe(constraints, chol_t, mu_array, risk_free_rate)
        else:
            weights, method = self._target_volatility(
                constraints, chol_t, scale, mu_array, sigma_array, target_volatility, risk_aversion
            )
        binding = self.engine.binding(constraints, weights)
        if explain:
            binding = tuple(
                replace(
                    b,
                    cost=self._relaxation_cost(
                        objective, constraints, b, weights, mu_array, sigma_array, risk_free_rate, target_volatility
                    ),
                )
                for b in binding
            )
        return self._result(objective, weights, mu_array, sigma_array, binding, method, started)

    # --- objectives ------------------------------------------------------------------------------

    def _engine_solve(
        self,
        objective: str,
        constraints: Constraints,
        mu: FloatArray,
        sigma: FloatArray,
        risk_aversion: float,
        explain: bool,
        started: float,
    ) -> ObjectiveTarget:
        returns = mu if objective == "mean_variance" else np.zeros_like(mu)
        solved = self.engine.solve(constraints, returns, sigma, risk_aversion, explain=explain, method=self.method)
        binding = solved.binding
        if objective == "min_variance":  # the engine priced costs at mu = 0: the expected return given up is mu's
            binding = tuple(
                b
                if b.cost is None
                else replace(
                    b,
                    cost=replace(b.cost, expected_return_gain=float(mu @ (b.cost.relaxed_weights - solved.weights))),
                )
                for b in binding
            )
        return self._result(objective, solved.weights, mu, sigma, binding, solved.method, started)

    def _data(self, constraints: Constraints) -> _Data:
        bounds = self.engine.universe.bounds(constraints)
        groups = constraints.class_bounds
        current = constraints.current_weights
        current_array = np.zeros(len(self.tickers)) if current is None else current
        turnover = None
        if constraints.turnover_limit is not None:
            turnover = 2 * constraints.turnover_limit + 1 - float(current_array.sum())
        return _Data(
            lower=bounds.lower,
            upper=bounds.upper,
            membership=None if groups is None else groups.membership,
            class_lower=None if groups is None else groups.lower,
            class_upper=None if groups is None else groups.upper,
            bond_minimum=constraints.bond_cash_minimum,
            current=current_array,
            cost=constraints.costs,
            turnover_bound=turnover,
        )

    def _cleaned(self, raw: FloatArray, data: _Data) -> FloatArray:
        trades = data.turnover_bound is not None
        return clean_within(
            raw,
            lower=data.lower,
            upper=data.upper,
            membership=data.membership,
            class_lower=data.class_lower,
            class_upper=data.class_upper,
            bond_mask=self.engine.universe.bond_cash,
            bond_minimum=data.bond_minimum,
            current=data.current if trades else None,
            turnover_bound=data.turnover_bound,
        )

    def _max_sharpe(
        self, constraints: Constraints, chol_t: FloatArray, mu: FloatArray, risk_free_rate: float
    ) -> tuple[FloatArray, str]:
        if not math.isfinite(risk_free_rate):
            raise ObjectiveInputError("The risk-free rate must be a finite number.")
        data = self._data(constraints)
        allowed = data.upper > 0
        excess = mu - risk_free_rate
        if not np.any(excess[allowed] > 0):
            raise ObjectiveInputError(
                f"No fund these constraints allow earns more than the risk-free rate {risk_free_rate:.2%} (the "
                f"highest expected return among them is {float(mu[allowed].max()):.2%}): the maximum Sharpe ratio "
                "is undefined. Choose another objective, such as minimum variance."
            )
        problem = self._sharpe.get(data.structure)
        if problem is None:
            problem = self._sharpe[data.structure] = _MaximumSharpe(len(mu), data, self.engine.universe.bond_cash)
        raw, status = problem.solve(data, chol_t, excess)
        if raw is None:
            if status in _INFEASIBLE:
                raise ObjectiveInputError(
                    f"No portfolio within these constraints earns more than the risk-free rate {risk_free_rate:.2%} "
                    "net of trading costs: they force too much into funds below it, so the maximum Sharpe ratio is "
                    "undefined. Relax them, or choose another objective."
                )
            raise OptimizationError(f"Maximum Sharpe: solver {SOLVER} ended with status {status}.")
        return self._cleaned(raw, data), "clarabel"

    def _target_volatility(
        self,
        constraints: Constraints,
        chol_t: FloatArray,
        scale: float,
        mu: FloatArray,
        sigma: FloatArray,
        target: float | None,
        risk_aversion: float,
    ) -> tuple[FloatArray, str]:
        if target is None or not math.isfinite(target) or target <= 0:
            raise ObjectiveInputError(
                f"Target volatility needs a positive target, got {target}.", field="target_volatility"
            )
        # The least volatility these constraints allow (trading costs aside: they change what is worth doing,
        # not what is possible).
        calm = self.engine.solve(
            replace(constraints, transaction_cost=0.0), np.zeros_like(mu), sigma, risk_aversion, method=self.method
        )
        if target < calm.volatility * (1 - 1e-6):
            reachable = math.ceil(calm.volatility * 1e4) / 1e4
            raise ObjectiveInputError(
                f"Target volatility {target:.2%} is below the {calm.volatility:.2%} minimum-variance volatility "
                f"these constraints allow: no portfolio is that calm. Raise the target to at least {reachable:.2%}.",
                field="target_volatility",
            )
        if target <= calm.volatility * (1 + 1e-6):
            return calm.weights, calm.method
        data = self._data(constraints)
        problem = self._target.get(data.structure)
        if problem is None:
            problem = self._target[data.structure] = _TargetVolatility(len(mu), data, self.engine.universe.bond_cash)
        raw, status = problem.solve(data, chol_t, mu, target / math.sqrt(scale))
        if raw is None:
            raise OptimizationError(f"Target volatility: solver {SOLVER} ended with status {status}.")
        return self._cleaned(raw, data), "clarabel"

    # --- explanation -----------------------------------------------------------------------------

    def _relaxation_cost(
        self,
        objective: str,
        constraints: Constraints,
        binding: BindingConstraint,
        weights: FloatArray,
        mu: FloatArray,
        sigma: FloatArray,
        risk_free_rate: float,
        target_volatility: float | None,
    ) -> ConstraintCost | None:
        relaxed = relaxed_constraints(constraints, binding, self.tickers)
        chol_t, scale = _cholesky(sigma)
        try:
            if objective == "max_sharpe":
                other, _ = self._max_sharpe(relaxed, chol_t, mu, risk_free_rate)
            else:
                other, _ = self._target_volatility(relaxed, chol_t, scale, mu, sigma, target_volatility, 1.0)
        except OptimizationError:
            return None  # relaxing only widens the feasible set; a solver failure leaves the cost unknown
        volatility = float(np.sqrt(weights @ sigma @ weights))
        other_volatility = float(np.sqrt(other @ sigma @ other))
        if objective == "max_sharpe":
            gain = _sharpe(other, mu, sigma, risk_free_rate) - _sharpe(weights, mu, sigma, risk_free_rate)
        else:
            gain = float(mu @ (other - weights))
        return ConstraintCost(
            objective_gain=gain,
            expected_return_gain=float(mu @ (other - weights)),
            volatility_change=other_volatility - volatility,
            relaxed_weights=other,
        )

    def _result(
        self,
        objective: str,
        weights: FloatArray,
        mu: FloatArray,
        sigma: FloatArray,
        binding: tuple[BindingConstraint, ...],
        method: str,
        started: float,
    ) -> ObjectiveTarget:
        if not np.all(np.isfinite(weights)):
            raise OptimizationError(f"{OBJECTIVES[objective]}: the solver returned weights that are not numbers.")
        return ObjectiveTarget(
            objective=objective,
            weights=np.asarray(weights, dtype=np.float64),
            expected_return=float(mu @ weights),
            volatility=float(np.sqrt(weights @ sigma @ weights)),
            binding=binding,
            method=method,
            solve_seconds=time.perf_counter() - started,
        )


def _sharpe(weights: FloatArray, mu: FloatArray, sigma: FloatArray, risk_free_rate: float) -> float:
    return float((mu @ weights - risk_free_rate) / np.sqrt(weights @ sigma @ weights))


def _cholesky(sigma: FloatArray) -> tuple[FloatArray, float]:
    """``L' / sqrt(s)`` with ``s`` the mean asset variance (an equilibration, as in ``personal.py``), and ``s``."""
    n = sigma.shape[0] if sigma.ndim == 2 else -1
    if sigma.shape != (n, n) or not np.all(np.isfinite(sigma)) or not np.allclose(sigma, sigma.T, atol=1e-12):
        raise OptimizationError("Covariance matrix must be square, finite and symmetric.")
    try:
        chol = np.linalg.cholesky(sigma)
    except np.linalg.LinAlgError as exc:
        raise OptimizationError("Covariance matrix is not positive definite.") from exc
    scale = float(np.mean(np.diag(sigma)))
    return np.asarray(chol.T / math.sqrt(scale), dtype=np.float64), scale
