"""Personal targets: the model mean-variance problem under one investor's constraints (pure: no Django).

For an account the target solves, at the risk aversion ``gamma`` of its effective risk level::

    maximize   mu'w - gamma/2 w'Sigma w - sum_i c_i |w_i - w0_i|
    subject to sum(w) = 1,  lower <= w <= upper                   long-only, per-asset bounds
               class_lower <= M w <= class_upper                  per-class (or per-kind) bounds
               bond_mask' w >= bond_cash_minimum                  bond + cash share, for low risk levels
               sum_i max(0, w0_i - w_i) <= turnover_limit         share of the current portfolio sold

where ``upper`` is the per-asset maximum after the investor's exclusions (ESG screens, the compliance
restricted list: maximum 0), the maximum position, and the tax rule (municipal bonds get maximum 0 in
a traditional or Roth IRA, where their tax exemption is wasted). With none of these it is the problem of
the model portfolio, ``optimize.MeanVarianceProblem``.

Two solvers, one problem
------------------------
- ``method="clarabel"``, the reference: a cvxpy problem compiled once per constraint *structure* (which
  kinds of constraints are present, and how many class rows) with every number a ``cp.Parameter`` (DPP),
  re-solved with new values. The objective is divided by ``gamma`` (DPP, as in ``optimize.py``) and by
  the mean asset variance: an equilibration that changes no minimizer but lets Clarabel's absolute gap
  tolerance mean the same thing at every risk level; and the tolerances are 1e-10 instead of 1e-8. The
  objective is flat in the nearly collinear bond directions of the shipped funds: a utility gap of 1e-9
  moves weights by up to 1e-4, which is what Clarabel's defaults leave on the unscaled problem.
- ``method="osqp"``, the fast path (the default): the same QP handed to OSQP directly, its matrices set up
  once per structure and market, then only ``q``, ``l`` and ``u`` updated per investor and the solve warm
  started. ``Sigma`` is in ``P`` and ``gamma`` only in ``q``, so a new investor never refactorizes ``P``.
  Solution polishing (an active-set refinement) gives the exact solution on the active constraints; when
  polishing fails (near a degenerate vertex) ADMM goes on to 1e-10 and polishes again, and if OSQP still
  reports no polished solution the solve falls back to the reference path, so accuracy never rests on
  ADMM's tolerances. Class and bond/cash rows that the per-asset bounds already imply are left out, for
  the same reason. The cvxpy route costs about 2 ms per solve in canonicalization and Python; this one
  about 0.15 ms (0.4 ms with a transaction cost or turnover limit, which double the variables).

Constraints are checked before any solve (``diagnose``): conflicts that arithmetic can see are refused
with ``InfeasibleConstraintsError`` naming each one; a conflict only the solver finds is refused with the
same error and the solver's status. Never a stack trace or ``None`` weights.

Explanation: ``solve`` lists the constraints *active* at the solution (a bound at its limit within 1e-6,
a class or bond/cash share at its limit, the turnover budget used up, an asset held at its current weight
where trading costs). Long-only zero bounds are not listed: the model portfolio has them too, and they are
house policy rather than the investor's choice. With ``explain=True`` each active constraint is relaxed
alone and re-solved, and its cost is the gain in the objective, expected return and volatility. A solver
remembers the relaxed problems it solved (and the targets it explained), by their numbers, for as long as the
market does not change: accounts whose constraints differ only in reasons, or by the constraint being
relaxed, share those solves (on 10,000 distinct targets, 50,852 relaxations are 10,172 distinct problems).

Batches: accounts whose constraints have the same ``signature()`` (everything except the current weights)
and the same risk aversion share one solve, when the current weights cannot matter (no transaction cost
or turnover limit, or an account that holds nothing).
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from types import MappingProxyType
from typing import Any, Literal

import cvxpy as cp
import numpy as np
import numpy.typing as npt
import osqp
import scipy.sparse as sparse

from portfolios.optimize import MIN_REPORTED_WEIGHT, SOLVER, OptimizationError
from portfolios.policy import OptimizationPolicy
from portfolios.universe import ASSET_CLASSES, ESG_FLAGS, ESG_FLAGS_BY_TICKER

FloatArray = npt.NDArray[np.float64]
Method = Literal["osqp", "clarabel"]

ACCOUNT_TYPES = ("taxable", "traditional_ira", "roth_ira")  # as profiling.services.goals.ACCOUNT_TYPES
TAX_ADVANTAGED_ACCOUNT_TYPES = frozenset({"traditional_ira", "roth_ira"})
MUNICIPAL_CLASS = "municipal"
BOND_CASH_KINDS = frozenset({"bond", "cash"})
CLASS_KIND: dict[str, str] = {code: kind for code, _, kind, _ in ASSET_CLASSES}
RESTRICTED_REASON = "compliance restricted list"

BINDING_TOLERANCE = 1e-6  # a weight or share this close to its limit counts as at the limit
FEASIBILITY_TOLERANCE = 1e-9  # slack allowed in the arithmetic checks before any solve
CLEAN_TOLERANCE = 1e-9  # dropping dust below MIN_REPORTED_WEIGHT may not break a constraint by more
# The cvxpy problem wants finite parameters; these are never active (shares are at most 1, and
# sum |w - w0| is at most sum w + sum w0 <= 2 + rounding).
_NO_CLASS_MAXIMUM = 1.0
_NO_TURNOVER_LIMIT = 4.0

# OSQP: tight enough that polishing finds the active set, after which the polished solution is exact.
OSQP_SETTINGS: dict[str, Any] = {
    "verbose": False,
    "polishing": True,
    "warm_starting": True,
    "eps_abs": 1e-7,
    "eps_rel": 1e-7,
    "max_iter": 20_000,
    "polish_refine_iter": 5,
}
# Clarabel, the reference path: on the equilibrated objective (see the module docstring) and tighter than its
# defaults (1e-8), which leave weights in flat directions off the exact optimum by up to about 6e-5.
CLARABEL_SETTINGS: dict[str, Any] = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}

_OSQP_SOLVED = 1
_OSQP_POLISHED = 1
_SOLVED = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
_INFEASIBLE = (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE)


class InfeasibleConstraintsError(OptimizationError):
    """No portfolio satisfies the constraints; ``problems`` names each conflict."""

    def __init__(self, problems: Sequence[str], status: str | None = None) -> None:
        self.problems = tuple(problems)
        self.status = status
        message = "No portfolio satisfies the investor's constraints: " + "; ".join(self.problems) + "."
        super().__init__(message)


# --- constraints ----------------------------------------------------------------------------------


def _frozen(values: npt.ArrayLike, what: str) -> FloatArray:
    array = np.array(values, dtype=np.float64)  # a copy: the caller's array may change later
    if array.ndim != 1 or array.size == 0 or not np.all(np.isfinite(array)):
        raise OptimizationError(f"{what} must be a non-empty vector of finite numbers.")
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class ClassBounds:
    """Bounds on the total weight of groups of assets: ``lower <= membership @ w <= upper``.

    A group is an asset class (``us_large``) or a kind of class (``equity``, ``bond``); build them with
    ``class_bounds``. Rows of ``membership`` are 0/1, one per group, one column per asset.
    """

    names: tuple[str, ...]
    membership: FloatArray
    lower: FloatArray
    upper: FloatArray

    def __post_init__(self) -> None:
        membership = np.array(self.membership, dtype=np.float64)
        k = len(self.names)
        if membership.ndim != 2 or membership.shape[0] != k or k == 0:
            raise OptimizationError(f"Class membership must be a matrix with one row per class ({k} names).")
        if not np.all((membership == 0.0) | (membership == 1.0)):
            raise OptimizationError("Class membership must contain only 0 and 1.")
        membership.setflags(write=False)
        object.__setattr__(self, "membership", membership)
        object.__setattr__(self, "names", tuple(str(name) for name in self.names))
        for attribute in ("lower", "upper"):
            values = _frozen(getattr(self, attribute), f"Class {attribute} bounds")
            if values.shape != (k,):
                raise OptimizationError(f"Got {values.size} class {attribute} bounds for {k} classes.")
            object.__setattr__(self, attribute, values)
        if np.any(self.lower < 0) or np.any(self.upper < 0):
            raise OptimizationError("Class bounds must not be negative.")

    def key(self) -> tuple[Hashable, ...]:
        return (
            self.names,
            self.membership.tobytes(),
            self.membership.shape,
            self.lower.tobytes(),
            self.upper.tobytes(),
        )


def class_bounds(classes: Sequence[str], limits: Mapping[str, tuple[float, float]]) -> ClassBounds:
    """Class bounds from ``{group: (minimum, maximum)}``, a group being a class code or a kind of class."""
    unknown = sorted(g for g in limits if g not in CLASS_KIND and g not in set(CLASS_KIND.values()))
    if unknown:
        raise OptimizationError(f"Unknown asset classes or kinds: {', '.join(unknown)}.")
    names = tuple(limits)
    membership = np.array(
        [[1.0 if c == group or CLASS_KIND.get(c) == group else 0.0 for c in classes] for group in names]
    )
    return ClassBounds(
        names=names,
        membership=membership,
        lower=np.array([limits[g][0] for g in names], dtype=np.float64),
        upper=np.array([limits[g][1] for g in names], dtype=np.float64),
    )


def house_constraints(policy: OptimizationPolicy, classes: Sequence[str], level: int) -> Constraints:
    """The constraints of the model portfolio of ``level`` (house policy, the same for every investor): the
    per-fund maximum, the class bounds of the groups present in ``classes``, and the level's bond/cash floor.
    Personal targets add the investor's constraints to these (``dataclasses.replace``)."""
    present = set(classes) | {CLASS_KIND[c] for c in classes if c in CLASS_KIND}
    # Sorted: the policy may come back from a JSON column in another key order, and the order of the groups is
    # part of the signature that accounts share targets by.
    limits = {group: bounds for group, bounds in sorted(policy.class_limits.items()) if group in present}
    return Constraints(
        upper=np.full(len(classes), float(policy.max_asset_weight)),
        class_bounds=class_bounds(classes, limits) if limits else None,
        bond_cash_minimum=policy.bond_floor(level),
    )


def exclusions_for(
    tickers: Sequence[str], *, esg_exclusions: Iterable[str] = (), restricted: Iterable[str] = ()
) -> dict[str, tuple[str, ...]]:
    """The funds an investor's ESG screens and the compliance restricted list exclude, with the reasons.

    All funds caught by the investor's screens share one reason (relaxed together when explained);
    a restricted ticker outside ``tickers`` is ignored, since the target cannot hold it anyway.
    """
    screens = sorted(set(esg_exclusions))
    unknown = [s for s in screens if s not in ESG_FLAGS]
    if unknown:
        raise OptimizationError(f"Unknown ESG exclusions {unknown}; choose from {sorted(ESG_FLAGS)}.")
    esg_reason = "ESG exclusions (" + ", ".join(ESG_FLAGS[s].lower() for s in screens) + ")"
    restricted_set = set(restricted)
    result: dict[str, tuple[str, ...]] = {}
    for ticker in tickers:
        reasons: list[str] = []
        if set(ESG_FLAGS_BY_TICKER.get(ticker, ())) & set(screens):
            reasons.append(esg_reason)
        if ticker in restricted_set:
            reasons.append(RESTRICTED_REASON)
        if reasons:
            result[ticker] = tuple(reasons)
    return result


@dataclass(frozen=True, eq=False)
class Constraints:
    """One account's constraints, arrays in the order of the solver's tickers.

    - ``upper`` / ``lower``: per-asset maximum / minimum weight (long-only: both >= 0).
    - ``class_bounds``: minimum and maximum share of groups of assets (``ClassBounds``).
    - ``bond_cash_minimum``: the least share of funds whose class is a bond or cash class (0 = none).
    - ``exclusions``: ticker -> reasons (ESG screen, restricted list); each gets maximum 0.
    - ``max_position``: the largest weight of any one fund (None = only ``upper``).
    - ``current_weights``: the account's holdings as weights (None = it holds nothing).
    - ``transaction_cost``: a linear cost per unit of weight traded, in expected-return units (0.001 is
      10 basis points, charged once), scalar or per asset; penalizes sum(c |w - w0|).
    - ``turnover_limit``: the largest share of the current portfolio sold, sum(max(0, w0 - w)). New money
      is bought without limit, so an account that holds nothing is never held back by it.
    - ``account_type``: ``taxable``, ``traditional_ira`` or ``roth_ira``; the last two exclude municipal
      bonds, whose tax exemption they cannot use.
    - ``municipal_rate_floor``: set (to the house threshold) when the investor's marginal tax rate is below
      it: a taxable account then excludes municipal bonds too, their exemption being worth less than their
      lower yield. The threshold, not the investor's rate, is in the signature, so such accounts share a solve.
    """

    upper: FloatArray
    lower: FloatArray | None = None
    class_bounds: ClassBounds | None = None
    bond_cash_minimum: float = 0.0
    exclusions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    max_position: float | None = None
    current_weights: FloatArray | None = None
    transaction_cost: float | FloatArray = 0.0
    turnover_limit: float | None = None
    account_type: str = "taxable"
    municipal_rate_floor: float | None = None

    def __post_init__(self) -> None:
        upper = _frozen(self.upper, "Upper bounds")
        n = upper.size
        object.__setattr__(self, "upper", upper)
        lower = _frozen(np.zeros(n) if self.lower is None else self.lower, "Lower bounds")
        if lower.shape != (n,):
            raise OptimizationError(f"Got {lower.size} lower bounds for {n} upper bounds.")
        object.__setattr__(self, "lower", lower)
        if np.any(upper < 0):
            raise OptimizationError("Upper bounds must not be negative.")
        if np.any(lower < 0):
            raise OptimizationError("Lower bounds must not be negative (portfolios are long-only).")
        if self.class_bounds is not None and self.class_bounds.membership.shape[1] != n:
            raise OptimizationError(
                f"Class membership has {self.class_bounds.membership.shape[1]} columns for {n} assets."
            )
        if not (math.isfinite(self.bond_cash_minimum) and self.bond_cash_minimum >= 0):
            raise OptimizationError(f"The bond/cash minimum must be a share >= 0, got {self.bond_cash_minimum}.")
        if self.max_position is not None and not (math.isfinite(self.max_position) and self.max_position >= 0):
            raise OptimizationError(f"The maximum position must be a weight >= 0, got {self.max_position}.")
        if self.turnover_limit is not None and not (math.isfinite(self.turnover_limit) and self.turnover_limit >= 0):
            raise OptimizationError(f"The turnover limit must be a share >= 0, got {self.turnover_limit}.")
        if self.account_type not in ACCOUNT_TYPES:
            raise OptimizationError(f"Unknown account type {self.account_type!r}; choose from {list(ACCOUNT_TYPES)}.")
        if self.municipal_rate_floor is not None and not (0 <= self.municipal_rate_floor <= 1):
            raise OptimizationError(
                f"The municipal rate floor must be a rate in [0, 1], got {self.municipal_rate_floor}."
            )
        exclusions: dict[str, tuple[str, ...]] = {}
        for ticker, reasons in sorted(self.exclusions.items()):
            listed = (reasons,) if isinstance(reasons, str) else tuple(reasons)
            if not listed:
                raise OptimizationError(f"Excluding {ticker} needs a reason.")
            exclusions[str(ticker)] = tuple(sorted(set(listed)))
        object.__setattr__(self, "exclusions", MappingProxyType(exclusions))
        cost = np.broadcast_to(np.asarray(self.transaction_cost, dtype=np.float64), (n,)).copy()
        if not np.all(np.isfinite(cost)) or np.any(cost < 0):
            raise OptimizationError("Transaction costs must be finite and >= 0.")
        cost.setflags(write=False)
        object.__setattr__(self, "transaction_cost", cost)
        if self.current_weights is not None:
            current = _frozen(self.current_weights, "Current weights")
            if current.shape != (n,):
                raise OptimizationError(f"Got {current.size} current weights for {n} assets.")
            if np.any(current < -FEASIBILITY_TOLERANCE) or current.sum() > 1 + 1e-6:
                raise OptimizationError("Current weights must be >= 0 and sum to at most 1.")
            if np.any(current < 0):  # rounding noise from the caller's arithmetic
                current = np.maximum(current, 0.0)
                current.setflags(write=False)
            object.__setattr__(self, "current_weights", current)

    @property
    def n_assets(self) -> int:
        return int(self.upper.size)

    @property
    def lower_bounds(self) -> FloatArray:
        """``lower``, which ``__post_init__`` always sets (zeros when not given)."""
        return np.zeros(self.n_assets) if self.lower is None else self.lower

    @property
    def costs(self) -> FloatArray:
        """The per-asset transaction cost rates (``transaction_cost`` as given, broadcast)."""
        return np.asarray(self.transaction_cost, dtype=np.float64)

    @property
    def trades_matter(self) -> bool:
        """Whether the current weights enter the problem (a cost or a turnover limit)."""
        return self.turnover_limit is not None or bool(np.any(self.costs > 0))

    def signature(self) -> tuple[Hashable, ...]:
        """Everything that shapes the solve except the current weights: structure and bound values."""
        return self._signature

    @cached_property
    def _signature(self) -> tuple[Hashable, ...]:
        return (
            self.upper.tobytes(),
            self.lower_bounds.tobytes(),
            None if self.class_bounds is None else self.class_bounds.key(),
            self.bond_cash_minimum,
            tuple(self.exclusions.items()),
            self.max_position,
            self.costs.tobytes(),
            self.turnover_limit,
            self.account_type,
            self.municipal_rate_floor if self.account_type not in TAX_ADVANTAGED_ACCOUNT_TYPES else None,
        )

    def solve_key(self) -> Hashable:
        """Accounts with equal keys (and risk aversion) have the same target: the signature, plus the
        current weights when a cost or turnover limit makes them matter."""
        return self._solve_key

    @cached_property
    def _solve_key(self) -> Hashable:
        current = self.current_weights
        if not self.trades_matter or current is None or not np.any(current > 0):
            return self._signature
        return (self._signature, current.tobytes())


# --- the universe and effective bounds ------------------------------------------------------------


@dataclass(frozen=True)
class _Bounds:
    """Per-asset bounds after exclusions, the maximum position and the tax rule, with where each came from."""

    lower: FloatArray
    upper: FloatArray  # effective
    stated_upper: FloatArray  # Constraints.upper, before anything else
    capped: npt.NDArray[np.bool_]  # the maximum position is below the stated maximum
    reasons: tuple[tuple[str, ...], ...]  # per asset: exclusion reasons, the tax rule included


ACCOUNT_TYPE_NAMES = {"taxable": "taxable account", "traditional_ira": "traditional IRA", "roth_ira": "Roth IRA"}


def _tax_reason(account_type: str, rate_floor: float | None = None) -> str:
    if account_type in TAX_ADVANTAGED_ACCOUNT_TYPES or rate_floor is None:
        return (
            f"the tax rule: no municipal bonds in a {ACCOUNT_TYPE_NAMES[account_type]}, "
            "where their tax exemption is wasted"
        )
    return (
        f"the tax rule: no municipal bonds at a marginal tax rate below {rate_floor:.0%}, "
        "where their tax exemption is worth less than their lower yield"
    )


class _Universe:
    def __init__(self, tickers: Sequence[str], classes: Sequence[str]) -> None:
        self.tickers = tuple(str(t) for t in tickers)
        self.classes = tuple(str(c) for c in classes)
        if not self.tickers:
            raise OptimizationError("The universe has no assets.")
        if len(self.classes) != len(self.tickers):
            raise OptimizationError(f"Got {len(self.classes)} classes for {len(self.tickers)} tickers.")
        if len(set(self.tickers)) != len(self.tickers):
            raise OptimizationError("Tickers must be unique.")
        unknown = sorted({c for c in self.classes if c not in CLASS_KIND})
        if unknown:
            raise OptimizationError(f"Unknown asset classes: {', '.join(unknown)}.")
        self.n = len(self.tickers)
        self.index = {t: i for i, t in enumerate(self.tickers)}
        self.bond_cash = np.array([CLASS_KIND[c] in BOND_CASH_KINDS for c in self.classes])
        self.municipal = np.array([c == MUNICIPAL_CLASS for c in self.classes])

    def bounds(self, constraints: Constraints) -> _Bounds:
        if constraints.n_assets != self.n:
            raise OptimizationError(f"Constraints are for {constraints.n_assets} assets, the universe has {self.n}.")
        upper = constraints.upper.copy()
        capped = np.zeros(self.n, dtype=bool)
        if constraints.max_position is not None:
            capped = constraints.max_position < upper
            upper[capped] = constraints.max_position
        reasons: list[tuple[str, ...]] = [()] * self.n
        for ticker, why in constraints.exclusions.items():
            i = self.index.get(ticker)
            if i is not None:  # a ticker outside the universe is not held anyway
                reasons[i] = why
        if constraints.account_type in TAX_ADVANTAGED_ACCOUNT_TYPES or constraints.municipal_rate_floor is not None:
            tax = _tax_reason(constraints.account_type, constraints.municipal_rate_floor)
            for m in np.flatnonzero(self.municipal).tolist():
                reasons[m] = (*reasons[m], tax)
        excluded = [i for i, why in enumerate(reasons) if why]
        upper[excluded] = 0.0
        return _Bounds(constraints.lower_bounds, upper, constraints.upper, capped, tuple(reasons))


# --- diagnosis ------------------------------------------------------------------------------------


def _share(value: float) -> str:
    """A weight as printed in messages: up to six significant digits, never a sum of 0.9999999 as "1"."""
    text = f"{value:.6g}"
    if value != 1.0 and float(text) == 1.0:
        return repr(value)
    return text


def _diagnose(constraints: Constraints, universe: _Universe, bounds: _Bounds) -> list[str]:
    problems: list[str] = []
    lower, upper = bounds.lower, bounds.upper
    excluded = [i for i, why in enumerate(bounds.reasons) if why]
    if len(excluded) == universe.n:
        reasons = sorted({r for why in bounds.reasons for r in why})
        return [f"every asset is excluded ({'; '.join(reasons)})"]

    for i in np.flatnonzero(lower > upper + FEASIBILITY_TOLERANCE):
        ticker = universe.tickers[i]
        if bounds.reasons[i]:
            problems.append(
                f"{ticker} minimum {_share(lower[i])} but {ticker} is excluded by {' and '.join(bounds.reasons[i])}"
            )
        elif bounds.capped[i]:
            problems.append(f"{ticker} minimum {_share(lower[i])} above the maximum position {_share(upper[i])}")
        else:
            problems.append(f"{ticker} minimum {_share(lower[i])} above its maximum {_share(upper[i])}")

    total_upper = float(upper.sum())
    if total_upper < 1 - FEASIBILITY_TOLERANCE:
        after = []
        if excluded:
            after.append(f"excluding {', '.join(universe.tickers[i] for i in excluded)}")
        if constraints.max_position is not None and bounds.capped.any():
            after.append(f"the maximum position {_share(constraints.max_position)}")
        suffix = f" after {' and '.join(after)}" if after else ""
        problems.append(f"per-asset maxima sum to {_share(total_upper)} < 1{suffix}")
    if lower.sum() > 1 + FEASIBILITY_TOLERANCE:
        problems.append(f"per-asset minima sum to {_share(float(lower.sum()))} > 1")

    groups = constraints.class_bounds
    if groups is not None:
        capacity = groups.membership @ upper
        floor = groups.membership @ lower
        for k, name in enumerate(groups.names):
            low, high = float(groups.lower[k]), float(groups.upper[k])
            if low > high + FEASIBILITY_TOLERANCE:
                problems.append(f"class {name} minimum {_share(low)} above its maximum {_share(high)}")
            elif low > capacity[k] + FEASIBILITY_TOLERANCE:
                problems.append(
                    f"class {name} minimum {_share(low)} above the {_share(float(capacity[k]))} "
                    "its assets' maxima allow"
                )
            if high < floor[k] - FEASIBILITY_TOLERANCE:
                problems.append(
                    f"class {name} maximum {_share(high)} below the {_share(float(floor[k]))} "
                    "its assets' minima require"
                )
        if np.all(groups.membership.sum(axis=0) <= 1):  # disjoint groups: their minima add up
            if groups.lower.sum() > 1 + FEASIBILITY_TOLERANCE:
                problems.append(f"class minima sum to {_share(float(groups.lower.sum()))} > 1")
            if np.all(groups.membership.sum(axis=0) == 1) and groups.upper.sum() < 1 - FEASIBILITY_TOLERANCE:
                problems.append(f"class maxima sum to {_share(float(groups.upper.sum()))} < 1")

    minimum = constraints.bond_cash_minimum
    if minimum > 0:
        capacity_bond = float(upper[universe.bond_cash].sum())
        if minimum > 1 + FEASIBILITY_TOLERANCE:
            problems.append(f"bond/cash minimum {_share(minimum)} above 1")
        elif minimum > capacity_bond + FEASIBILITY_TOLERANCE:
            problems.append(
                f"bond/cash minimum {_share(minimum)} above the {_share(capacity_bond)} "
                "the bond and cash funds can hold after exclusions"
            )

    if constraints.turnover_limit is not None and constraints.current_weights is not None:
        over = np.maximum(constraints.current_weights - upper, 0.0)
        if over.sum() > constraints.turnover_limit + FEASIBILITY_TOLERANCE:
            sellers = [universe.tickers[i] for i in np.flatnonzero(over > 0)]
            within = "its maximum" if len(sellers) == 1 else "their maxima"
            problems.append(
                f"turnover limit {_share(constraints.turnover_limit)} below the {_share(float(over.sum()))} "
                f"that must be sold to bring {', '.join(sellers)} within {within}"
            )
    return problems


def diagnose(constraints: Constraints, tickers: Sequence[str], classes: Sequence[str]) -> list[str]:
    """The conflicts arithmetic can see before any solve, each naming its constraint; empty if none.

    Checked: everything excluded; an asset minimum above its maximum (an exclusion, the maximum position
    or the stated maximum); per-asset maxima summing below 1 or minima above 1; a class minimum above its
    maximum or above what its assets' maxima allow, a class maximum below its assets' minima, and (for
    disjoint classes) class minima summing above 1 or, when they cover every asset, maxima below 1; the
    bond/cash minimum above what the bond and cash funds can hold; a turnover limit below what must be
    sold to bring holdings within their maxima.
    """
    universe = _Universe(tickers, classes)
    return _diagnose(constraints, universe, universe.bounds(constraints))


# --- results --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConstraintCost:
    """What relaxing one constraint alone would gain (relaxed minus constrained)."""

    objective_gain: float  # in the objective mu'w - gamma/2 w'Sigma w - costs; >= 0 up to solver precision
    expected_return_gain: float  # expected return given up because of the constraint
    volatility_change: float  # how much riskier the relaxed portfolio is (may be negative)
    relaxed_weights: FloatArray


@dataclass(frozen=True)
class BindingConstraint:
    kind: str  # asset_maximum, asset_minimum, max_position, exclusion, class_minimum, class_maximum,
    # bond_cash_minimum, turnover_limit, transaction_cost
    name: str  # the ticker, the class, the exclusion reason, or the constraint
    assets: tuple[str, ...]  # the assets it holds at their limit
    limit: float
    value: float  # the weight or share at the solution
    cost: ConstraintCost | None = None


@dataclass(frozen=True)
class PersonalTarget:
    weights: FloatArray
    expected_return: float
    volatility: float
    objective: float  # mu'w - gamma/2 w'Sigma w - sum c|w - w0|
    binding: tuple[BindingConstraint, ...]
    method: str  # the solver that produced the weights: osqp or clarabel
    solve_seconds: float


# --- the problem data of one solve, and its two solvers ------------------------------------------


@dataclass(frozen=True)
class _Structure:
    n_classes: int
    bond_minimum: bool
    cost: bool
    turnover: bool

    @property
    def trades(self) -> bool:
        return self.cost or self.turnover


@dataclass(frozen=True)
class _Inputs:
    structure: _Structure
    risk_aversion: float
    lower: FloatArray
    upper: FloatArray
    membership: FloatArray | None
    class_lower: FloatArray | None
    class_upper: FloatArray | None
    bond_minimum: float
    current: FloatArray
    cost: FloatArray
    turnover_bound: float  # on sum(t), t >= |w - w0|: 2 x turnover limit + 1 - sum(w0)

    def membership_key(self) -> bytes:
        return b"" if self.membership is None else self.membership.tobytes()


@dataclass(frozen=True)
class _Market:
    mu: FloatArray
    sigma: FloatArray
    scale: float  # mean asset variance: the objective is divided by it (equilibration)
    chol_t: FloatArray  # L' / sqrt(scale)
    p_upper: Any  # scipy CSC: the upper triangle of Sigma / scale, every entry stored


def _market(mu: npt.ArrayLike, sigma: npt.ArrayLike, n: int) -> _Market:
    mu_array = np.array(mu, dtype=np.float64)
    sigma_array = np.array(sigma, dtype=np.float64)
    if mu_array.shape != (n,) or not np.all(np.isfinite(mu_array)):
        raise OptimizationError(f"Expected returns must be {n} finite numbers, got shape {mu_array.shape}.")
    if sigma_array.shape != (n, n):
        raise OptimizationError(f"Covariance matrix is {sigma_array.shape}, expected ({n}, {n}).")
    if not np.all(np.isfinite(sigma_array)) or not np.allclose(sigma_array, sigma_array.T, rtol=0.0, atol=1e-12):
        raise OptimizationError("Covariance matrix must be finite and symmetric.")
    try:
        chol = np.linalg.cholesky(sigma_array)
    except np.linalg.LinAlgError as exc:
        raise OptimizationError("Covariance matrix is not positive definite.") from exc
    scale = float(np.mean(np.diag(sigma_array)))
    rows, cols = np.triu_indices(n)
    order = np.lexsort((rows, cols))  # column-major, as CSC wants
    rows, cols = rows[order], cols[order]
    p_upper = sparse.csc_matrix(
        (sigma_array[rows, cols] / scale, rows, np.r_[0, np.cumsum(np.bincount(cols, minlength=n))]), shape=(n, n)
    )
    mu_array.setflags(write=False)
    sigma_array.setflags(write=False)
    chol_t = np.asarray(chol.T / math.sqrt(scale), dtype=np.float64)
    return _Market(mu_array, sigma_array, scale, chol_t, p_upper)


class _ClarabelProblem:
    """The reference: a cvxpy problem compiled once per structure, every number a parameter (DPP)."""

    def __init__(self, n: int, structure: _Structure, bond_mask: npt.NDArray[np.bool_]) -> None:
        self.structure = structure
        self.weights = cp.Variable(n, name="w")
        self.scaled_mu = cp.Parameter(n, name="mu_over_gamma_scale")
        self.chol_t = cp.Parameter((n, n), name="L_transpose_over_sqrt_scale")
        self.lower = cp.Parameter(n, nonneg=True, name="lower")
        self.upper = cp.Parameter(n, nonneg=True, name="upper")
        objective = self.scaled_mu @ self.weights - 0.5 * cp.sum_squares(self.chol_t @ self.weights)
        constraints = [cp.sum(self.weights) == 1, self.weights >= self.lower, self.weights <= self.upper]
        k = structure.n_classes
        self.classes: tuple[cp.Parameter, cp.Parameter, cp.Parameter] | None = None
        if k:
            membership = cp.Parameter((k, n), name="class_membership")
            class_lower = cp.Parameter(k, nonneg=True, name="class_lower")
            class_upper = cp.Parameter(k, nonneg=True, name="class_upper")
            shares = membership @ self.weights
            constraints += [shares >= class_lower, shares <= class_upper]
            self.classes = (membership, class_lower, class_upper)
        self.bond_minimum = cp.Parameter(nonneg=True, name="bond_cash_minimum") if structure.bond_minimum else None
        if self.bond_minimum is not None:
            constraints.append(bond_mask.astype(float) @ self.weights >= self.bond_minimum)
        self.current = cp.Parameter(n, nonneg=True, name="current_weights") if structure.trades else None
        self.cost = cp.Parameter(n, nonneg=True, name="cost_over_gamma_scale") if structure.cost else None
        self.turnover_bound = cp.Parameter(nonneg=True, name="turnover_bound") if structure.turnover else None
        if self.current is not None:
            traded = cp.Variable(n, name="t")  # t >= |w - w0|
            constraints += [traded >= self.weights - self.current, traded >= self.current - self.weights]
            if self.cost is not None:
                objective = objective - self.cost @ traded
            if self.turnover_bound is not None:
                constraints.append(cp.sum(traded) <= self.turnover_bound)
        self.problem = cp.Problem(cp.Maximize(objective), constraints)
        if not self.problem.is_dpp():  # would silently re-canonicalize on every solve
            raise OptimizationError("The personal-target problem is not DPP.")

    def solve(self, market: _Market, inputs: _Inputs) -> tuple[FloatArray | None, str]:
        denominator = inputs.risk_aversion * market.scale
        self.scaled_mu.value = market.mu / denominator
        self.chol_t.value = market.chol_t
        self.lower.value = inputs.lower
        self.upper.value = inputs.upper
        if self.classes is not None:
            self.classes[0].value = inputs.membership
            self.classes[1].value = inputs.class_lower
            self.classes[2].value = inputs.class_upper
        if self.bond_minimum is not None:
            self.bond_minimum.value = inputs.bond_minimum
        if self.current is not None:
            self.current.value = inputs.current
        if self.cost is not None:
            self.cost.value = inputs.cost / denominator
        if self.turnover_bound is not None:
            self.turnover_bound.value = max(inputs.turnover_bound, 0.0)
        try:
            self.problem.solve(solver=SOLVER, **CLARABEL_SETTINGS)
        except cp.SolverError as exc:
            return None, f"solver error ({exc})"
        status = str(self.problem.status)
        if status not in _SOLVED or self.weights.value is None:
            return None, status
        return np.asarray(self.weights.value, dtype=np.float64), status


class _OsqpProblem:
    """The same QP in OSQP's form, set up once per structure, class grouping and market; then only
    ``q``, ``l`` and ``u`` change. Variables x = [w] or [w; t] with t >= |w - w0|::

        minimize 1/2 w'(Sigma/s)w - (mu/(gamma s))'w + (c/(gamma s))'t
        rows:    1'w = 1;  lower <= w <= upper;  class_lower <= M w <= class_upper;  bond'w >= b;
                 w - t <= w0;  w + t >= w0;  1't <= turnover_bound
    """

    def __init__(
        self, market: _Market, structure: _Structure, membership: FloatArray | None, bond_mask: npt.NDArray[np.bool_]
    ) -> None:
        n = market.mu.size
        self.n = n
        self.structure = structure
        self.bond_mask = bond_mask
        width = 2 * n if structure.trades else n
        blocks: list[Any] = [sparse.csr_matrix(np.ones((1, n))), sparse.identity(n, format="csr")]
        if membership is not None:
            blocks.append(sparse.csr_matrix(membership))
        if structure.bond_minimum:
            blocks.append(sparse.csr_matrix(bond_mask.astype(float)[None, :]))
        rows_w = sparse.vstack(blocks, format="csr")
        if structure.trades:
            identity = sparse.identity(n, format="csr")
            top = sparse.hstack([rows_w, sparse.csr_matrix((rows_w.shape[0], n))])
            trade_rows = [sparse.hstack([identity, -identity]), sparse.hstack([identity, identity])]
            if structure.turnover:
                trade_rows.append(sparse.hstack([sparse.csr_matrix((1, n)), sparse.csr_matrix(np.ones((1, n)))]))
            a_matrix = sparse.vstack([top, *trade_rows], format="csc")
            p_matrix = sparse.block_diag([market.p_upper, sparse.csc_matrix((n, n))], format="csc")
        else:
            a_matrix = rows_w.tocsc()
            p_matrix = market.p_upper
        self.m = a_matrix.shape[0]
        self.q = np.zeros(width)
        self.lower_rows = np.zeros(self.m)
        self.upper_rows = np.ones(self.m)
        self.solver = osqp.OSQP()
        self.solver.setup(p_matrix, self.q, a_matrix, self.lower_rows, self.upper_rows, **OSQP_SETTINGS)

    def solve(self, market: _Market, inputs: _Inputs) -> tuple[FloatArray | None, str]:
        n = self.n
        denominator = inputs.risk_aversion * market.scale
        q, low, high = self.q, self.lower_rows, self.upper_rows
        q[:n] = market.mu / -denominator
        low[0] = high[0] = 1.0
        low[1 : n + 1] = inputs.lower
        high[1 : n + 1] = inputs.upper
        row = n + 1
        # A class or bond/cash bound its assets' own bounds already imply is left out (an infinite row
        # bound): active together with those bounds it would make the active set degenerate, and polishing
        # (which solves the KKT system of the active set) fail.
        if inputs.membership is not None and inputs.class_lower is not None and inputs.class_upper is not None:
            k = inputs.membership.shape[0]
            floor, capacity = inputs.membership @ inputs.lower, inputs.membership @ inputs.upper
            low[row : row + k] = np.where(inputs.class_lower > floor, inputs.class_lower, -np.inf)
            high[row : row + k] = np.where(inputs.class_upper < capacity, inputs.class_upper, np.inf)
            row += k
        if self.structure.bond_minimum:
            implied = inputs.lower[self.bond_mask].sum() >= inputs.bond_minimum
            low[row], high[row] = -np.inf if implied else inputs.bond_minimum, np.inf
            row += 1
        if self.structure.trades:
            q[n:] = inputs.cost / denominator
            # t >= w - w0 cannot bind where w0 is at or above the maximum, nor t >= w0 - w where w0 is at or
            # below the minimum (and not above the maximum: one of the two must keep t >= 0): left out, as
            # redundant class rows are, so that the active set stays non-degenerate for polishing.
            above = inputs.current >= inputs.upper
            low[row : row + n] = -np.inf
            high[row : row + n] = np.where(above, np.inf, inputs.current)
            row += n
            low[row : row + n] = np.where((inputs.current <= inputs.lower) & ~above, -np.inf, inputs.current)
            high[row : row + n] = np.inf
            row += n
            if self.structure.turnover:
                low[row], high[row] = -np.inf, inputs.turnover_bound
        self.solver.update(q=q, l=low, u=high)
        result = self.solver.solve(raise_error=False)
        info = result.info
        if info.status_val == _OSQP_SOLVED and info.status_polish != _OSQP_POLISHED:
            # Near a degenerate vertex ADMM's active set is ambiguous at 1e-7: go on from there to 1e-10.
            self.solver.update_settings(eps_abs=1e-10, eps_rel=1e-10)
            result = self.solver.solve(raise_error=False)
            info = result.info
            self.solver.update_settings(eps_abs=OSQP_SETTINGS["eps_abs"], eps_rel=OSQP_SETTINGS["eps_rel"])
        if info.status_val != _OSQP_SOLVED or info.status_polish != _OSQP_POLISHED:
            return None, f"osqp {info.status} (polish {info.status_polish})"
        return np.asarray(result.x[:n], dtype=np.float64), "solved"


def _clean(raw: FloatArray, lower: FloatArray, upper: FloatArray, *, dust: bool = True) -> FloatArray:
    """``optimize.clean_weights`` that also keeps lower bounds: clip noise and (with ``dust``) weights below
    ``MIN_REPORTED_WEIGHT``, restore a sum of one."""
    weights = np.clip(raw, lower, upper)
    if dust:
        weights[(weights < MIN_REPORTED_WEIGHT) & (lower <= 0)] = 0.0
    missing = 1.0 - weights.sum()
    if missing > 0:
        room = np.where(weights > 0, upper - weights, 0.0)
        if room.sum() > 0:
            weights += room * min(1.0, missing / room.sum())
    elif missing < 0:
        excess = weights - lower
        weights -= excess * (-missing / excess.sum())
    return weights


def clean_within(
    raw: FloatArray,
    *,
    lower: FloatArray,
    upper: FloatArray,
    membership: FloatArray | None = None,
    class_lower: FloatArray | None = None,
    class_upper: FloatArray | None = None,
    bond_mask: npt.NDArray[np.bool_] | None = None,
    bond_minimum: float = 0.0,
    current: FloatArray | None = None,
    turnover_bound: float | None = None,
) -> FloatArray:
    """Solver output to reported weights: noise clipped and dust dropped, unless dropping the dust would break a
    constraint by more than ``CLEAN_TOLERANCE`` (a weight of 1e-5 the other bounds force, a class share at its
    limit): then only clipped. The budget, every bound, class share, the floor and the turnover hold to 1e-9."""

    def violation(weights: FloatArray) -> float:
        worst = [abs(float(weights.sum()) - 1.0), float(np.max(lower - weights)), float(np.max(weights - upper))]
        if membership is not None and class_lower is not None and class_upper is not None:
            shares = membership @ weights
            worst += [float(np.max(class_lower - shares)), float(np.max(shares - class_upper))]
        if bond_mask is not None and bond_minimum > 0:
            worst.append(bond_minimum - float(weights[bond_mask].sum()))
        if current is not None and turnover_bound is not None:
            worst.append(float(np.abs(weights - current).sum()) - turnover_bound)
        return max(worst)

    cleaned = _clean(raw, lower, upper)
    if violation(cleaned) <= CLEAN_TOLERANCE:
        return cleaned
    return _clean(raw, lower, upper, dust=False)


# --- the solver -----------------------------------------------------------------------------------

_EXPLAINED_LIMIT = 30_000  # problems remembered for explanations (about 1 kB each)


def _problem_key(inputs: _Inputs, method: Method) -> tuple[Hashable, ...]:
    """Everything a solve of ``inputs`` depends on (with the market): equal keys, equal problems."""

    def raw(values: FloatArray | None) -> bytes | None:
        return None if values is None else values.tobytes()

    return (
        method,
        inputs.structure,
        inputs.risk_aversion,
        raw(inputs.lower),
        raw(inputs.upper),
        inputs.membership_key(),
        raw(inputs.class_lower),
        raw(inputs.class_upper),
        inputs.bond_minimum,
        raw(inputs.current),
        raw(inputs.cost),
        inputs.turnover_bound,
    )


class PersonalTargetSolver:
    """Personal targets for one universe (tickers and their asset classes).

    Compiles a cvxpy problem once per constraint structure, and sets up an OSQP problem once per structure,
    class grouping and market; every account is then a re-solve with new parameter values.
    """

    def __init__(self, tickers: Sequence[str], classes: Sequence[str]) -> None:
        self.universe = _Universe(tickers, classes)
        self._clarabel: dict[_Structure, _ClarabelProblem] = {}
        self._osqp: dict[tuple[_Structure, bytes], _OsqpProblem] = {}
        self._market: _Market | None = None
        # Explanations' problems by their numbers (see _explained_weights): many accounts' relaxations are the same
        # problem, or another account's target problem.
        self._explained: dict[tuple[Hashable, ...], tuple[FloatArray, str]] = {}

    @property
    def tickers(self) -> tuple[str, ...]:
        return self.universe.tickers

    def _use_market(self, mu: npt.ArrayLike, sigma: npt.ArrayLike) -> _Market:
        current = self._market
        if current is not None and np.array_equal(current.mu, mu) and np.array_equal(current.sigma, sigma):
            return current
        self._market = _market(mu, sigma, self.universe.n)
        self._osqp.clear()  # P holds Sigma: a new market is a new setup
        self._explained.clear()
        return self._market

    def _inputs(self, constraints: Constraints, bounds: _Bounds, risk_aversion: float) -> _Inputs:
        if not (math.isfinite(risk_aversion) and risk_aversion > 0):
            raise OptimizationError(f"Risk aversion must be positive, got {risk_aversion}.")
        groups = constraints.class_bounds
        costs = constraints.costs
        current = constraints.current_weights
        current_array = np.zeros(self.universe.n) if current is None else current
        structure = _Structure(
            n_classes=0 if groups is None else len(groups.names),
            bond_minimum=constraints.bond_cash_minimum > 0,
            cost=bool(np.any(costs > 0)),
            turnover=constraints.turnover_limit is not None,
        )
        turnover_bound = _NO_TURNOVER_LIMIT
        if constraints.turnover_limit is not None:
            turnover_bound = 2 * constraints.turnover_limit + 1 - float(current_array.sum())
        return _Inputs(
            structure=structure,
            risk_aversion=float(risk_aversion),
            lower=bounds.lower,
            upper=bounds.upper,
            membership=None if groups is None else groups.membership,
            class_lower=None if groups is None else groups.lower,
            class_upper=None if groups is None else groups.upper,
            bond_minimum=constraints.bond_cash_minimum,
            current=current_array,
            cost=costs,
            turnover_bound=turnover_bound,
        )

    def _clarabel_problem(self, structure: _Structure) -> _ClarabelProblem:
        problem = self._clarabel.get(structure)
        if problem is None:
            problem = self._clarabel[structure] = _ClarabelProblem(self.universe.n, structure, self.universe.bond_cash)
        return problem

    def _osqp_problem(self, market: _Market, inputs: _Inputs) -> _OsqpProblem:
        key = (inputs.structure, inputs.membership_key())
        problem = self._osqp.get(key)
        if problem is None:
            problem = self._osqp[key] = _OsqpProblem(
                market, inputs.structure, inputs.membership, self.universe.bond_cash
            )
        return problem

    def _cleaned(self, raw: FloatArray, inputs: _Inputs) -> FloatArray:
        structure = inputs.structure
        return clean_within(
            raw,
            lower=inputs.lower,
            upper=inputs.upper,
            membership=inputs.membership,
            class_lower=inputs.class_lower,
            class_upper=inputs.class_upper,
            bond_mask=self.universe.bond_cash if structure.bond_minimum else None,
            bond_minimum=inputs.bond_minimum,
            current=inputs.current if structure.turnover else None,
            turnover_bound=inputs.turnover_bound if structure.turnover else None,
        )

    def _weights(self, market: _Market, inputs: _Inputs, method: Method) -> tuple[FloatArray, str]:
        raw: FloatArray | None = None
        if method == "osqp":
            raw, _ = self._osqp_problem(market, inputs).solve(market, inputs)
            if raw is not None:
                return self._cleaned(raw, inputs), "osqp"
        elif method != "clarabel":
            raise OptimizationError(f"Unknown method {method!r}; use osqp or clarabel.")
        # The reference path, and the fallback whenever OSQP does not report a polished solution.
        raw, status = self._clarabel_problem(inputs.structure).solve(market, inputs)
        if raw is None:
            if status in _INFEASIBLE:
                raise InfeasibleConstraintsError(
                    [f"the constraints together leave no portfolio (solver {SOLVER}: {status})"], status=status
                )
            raise OptimizationError(f"Personal target: solver {SOLVER} ended with status {status}.")
        return self._cleaned(raw, inputs), "clarabel"

    @staticmethod
    def _objective(market: _Market, inputs: _Inputs, weights: FloatArray) -> float:
        utility = float(market.mu @ weights - 0.5 * inputs.risk_aversion * weights @ market.sigma @ weights)
        if inputs.structure.cost:
            utility -= float(inputs.cost @ np.abs(weights - inputs.current))
        return utility

    def _checked(self, constraints: Constraints) -> _Bounds:
        bounds = self.universe.bounds(constraints)
        problems = _diagnose(constraints, self.universe, bounds)
        if problems:
            raise InfeasibleConstraintsError(problems)
        return bounds

    def weights(
        self,
        constraints: Constraints,
        mu: npt.ArrayLike,
        sigma: npt.ArrayLike,
        risk_aversion: float,
        *,
        method: Method = "osqp",
    ) -> FloatArray:
        """Only the target weights: no binding constraints, for the fast path and batches."""
        market = self._use_market(mu, sigma)
        bounds = self._checked(constraints)
        return self._weights(market, self._inputs(constraints, bounds, risk_aversion), method)[0]

    def solve(
        self,
        constraints: Constraints,
        mu: npt.ArrayLike,
        sigma: npt.ArrayLike,
        risk_aversion: float,
        *,
        explain: bool = False,
        method: Method = "osqp",
    ) -> PersonalTarget:
        """The personal target, the constraints active at it, and with ``explain`` the cost of each."""
        started = time.perf_counter()
        market = self._use_market(mu, sigma)
        bounds = self._checked(constraints)
        inputs = self._inputs(constraints, bounds, risk_aversion)
        weights, used = self._weights(market, inputs, method)
        objective = self._objective(market, inputs, weights)
        binding = self._binding(constraints, bounds, inputs, weights)
        if explain:
            self._remember(inputs, method, (weights, used))  # another account's relaxation may be this problem
            binding = [
                replace(
                    b, cost=self._relaxation_cost(market, constraints, bounds, inputs, b, weights, objective, method)
                )
                for b in binding
            ]
        return PersonalTarget(
            weights=weights,
            expected_return=float(market.mu @ weights),
            volatility=float(np.sqrt(weights @ market.sigma @ weights)),
            objective=objective,
            binding=tuple(binding),
            method=used,
            solve_seconds=time.perf_counter() - started,
        )

    # --- explanation ------------------------------------------------------------------------------

    def binding(self, constraints: Constraints, weights: npt.ArrayLike) -> tuple[BindingConstraint, ...]:
        """The constraints active at ``weights``, however they were found (another objective's solution):
        the same list as ``solve`` gives, without costs."""
        bounds = self._checked(constraints)
        inputs = self._inputs(constraints, bounds, 1.0)  # the risk aversion does not enter the list
        return tuple(self._binding(constraints, bounds, inputs, np.asarray(weights, dtype=np.float64)))

    def _binding(
        self, constraints: Constraints, bounds: _Bounds, inputs: _Inputs, weights: FloatArray
    ) -> list[BindingConstraint]:
        tickers = self.universe.tickers
        tolerance = BINDING_TOLERANCE
        found: list[BindingConstraint] = []

        def binding(kind: str, name: str, members: Iterable[int], limit: float, value: float) -> None:
            found.append(BindingConstraint(kind, name, tuple(tickers[i] for i in members), float(limit), float(value)))

        by_reason: dict[str, list[int]] = {}
        for i, why in enumerate(bounds.reasons):
            for reason in why:
                by_reason.setdefault(reason, []).append(i)
        for reason in sorted(by_reason):  # an excluded asset is always at its maximum, 0
            members = by_reason[reason]
            binding("exclusion", reason, members, 0.0, weights[members].sum())
        at_upper = weights >= bounds.upper - tolerance
        if by_reason:
            at_upper &= np.array([not why for why in bounds.reasons])
        capped = np.flatnonzero(at_upper & bounds.capped).tolist()
        if capped and constraints.max_position is not None:
            binding("max_position", "maximum position", capped, constraints.max_position, weights[capped].max())
        for i in np.flatnonzero(at_upper & ~bounds.capped).tolist():
            binding("asset_maximum", tickers[i], (i,), bounds.upper[i], weights[i])
        for i in np.flatnonzero((bounds.lower > 0) & (weights <= bounds.lower + tolerance)).tolist():
            binding("asset_minimum", tickers[i], (i,), bounds.lower[i], weights[i])
        groups = constraints.class_bounds
        if groups is not None:
            shares = groups.membership @ weights
            for k, name in enumerate(groups.names):
                low, high, share = float(groups.lower[k]), float(groups.upper[k]), float(shares[k])
                at_low, at_high = low > 0 and share <= low + tolerance, high < 1 and share >= high - tolerance
                if at_low or at_high:
                    members = np.flatnonzero(groups.membership[k]).tolist()
                    if at_low:
                        binding("class_minimum", name, members, low, share)
                    if at_high:
                        binding("class_maximum", name, members, high, share)
        if inputs.structure.bond_minimum:
            share = float(weights[self.universe.bond_cash].sum())
            if share <= inputs.bond_minimum + tolerance:
                members = np.flatnonzero(self.universe.bond_cash).tolist()
                binding("bond_cash_minimum", "bond/cash minimum", members, inputs.bond_minimum, share)
        if constraints.turnover_limit is not None:
            sold = float(np.maximum(inputs.current - weights, 0.0).sum())
            if sold >= constraints.turnover_limit - tolerance:
                binding("turnover_limit", "turnover limit", (), constraints.turnover_limit, sold)
        if inputs.structure.cost:
            held = (inputs.cost > 0) & (inputs.current > 0) & (np.abs(weights - inputs.current) <= tolerance)
            kept = np.flatnonzero(held).tolist()
            if kept:
                binding("transaction_cost", "transaction cost", kept, inputs.cost[kept].max(), weights[kept].sum())
        return found

    def _relaxed(
        self, constraints: Constraints, bounds: _Bounds, inputs: _Inputs, binding: BindingConstraint
    ) -> _Inputs:
        index = self.universe.index
        no_position_cap = 1.0 if constraints.max_position is None else constraints.max_position
        if binding.kind == "exclusion":
            upper = inputs.upper.copy()
            for ticker in binding.assets:
                i = index[ticker]
                if set(bounds.reasons[i]) == {binding.name}:  # another reason would still exclude it
                    upper[i] = min(bounds.stated_upper[i], no_position_cap)
            return replace(inputs, upper=upper)
        if binding.kind == "max_position":
            upper = inputs.upper.copy()
            for ticker in binding.assets:
                upper[index[ticker]] = bounds.stated_upper[index[ticker]]
            return replace(inputs, upper=upper)
        if binding.kind == "asset_maximum":
            upper = inputs.upper.copy()
            upper[index[binding.name]] = no_position_cap
            return replace(inputs, upper=upper)
        if binding.kind == "asset_minimum":
            lower = inputs.lower.copy()
            lower[index[binding.name]] = 0.0
            return replace(inputs, lower=lower)
        groups = constraints.class_bounds
        if binding.kind in ("class_minimum", "class_maximum") and groups is not None:
            k = groups.names.index(binding.name)
            if binding.kind == "class_minimum" and inputs.class_lower is not None:
                class_lower = inputs.class_lower.copy()
                class_lower[k] = 0.0
                return replace(inputs, class_lower=class_lower)
            if inputs.class_upper is not None:
                class_upper = inputs.class_upper.copy()
                class_upper[k] = _NO_CLASS_MAXIMUM
                return replace(inputs, class_upper=class_upper)
        if binding.kind == "bond_cash_minimum":
            return replace(inputs, bond_minimum=0.0)
        if binding.kind == "turnover_limit":
            return replace(inputs, turnover_bound=_NO_TURNOVER_LIMIT)
        if binding.kind == "transaction_cost":
            return replace(inputs, cost=np.zeros_like(inputs.cost))
        raise OptimizationError(f"Cannot relax a constraint of kind {binding.kind!r}.")

    def _relaxation_cost(
        self,
        market: _Market,
        constraints: Constraints,
        bounds: _Bounds,
        inputs: _Inputs,
        binding: BindingConstraint,
        weights: FloatArray,
        objective: float,
        method: Method,
    ) -> ConstraintCost:
        relaxed_inputs = self._relaxed(constraints, bounds, inputs, binding)
        relaxed = self._explained_weights(market, relaxed_inputs, method)
        return ConstraintCost(
            objective_gain=self._objective(market, relaxed_inputs, relaxed) - objective,
            expected_return_gain=float(market.mu @ (relaxed - weights)),
            volatility_change=float(
                np.sqrt(relaxed @ market.sigma @ relaxed) - np.sqrt(weights @ market.sigma @ weights)
            ),
            relaxed_weights=relaxed,
        )

    def _explained_weights(self, market: _Market, inputs: _Inputs, method: Method) -> FloatArray:
        """``_weights`` of a relaxed problem, solved once per solver and market whatever the account.

        A relaxed problem is a function of its numbers alone (``_problem_key``: every field of ``_Inputs``, and
        the method), not of the account, the reasons or the names: accounts whose signatures differ only in
        reasons (two ESG screens that exclude the same funds, a low-bracket taxable account and an IRA without
        municipal bonds) or in the constraint being relaxed (an account with one more exclusion, relaxed) give
        the same problem. On 10,000 targets drawn as the benchmark draws them, 50,852 relaxations are 10,172
        distinct problems, 2,170 of them another target's own problem. The answer is the one a re-solve gives,
        as far as the solver's answer is a function of the problem: OSQP's polished solution is the solution of
        the active set's KKT system, whatever iterate (warm start) found that set (on those targets 50,821 of
        50,852 costs are bitwise those of re-solving, the others within 1e-8)."""
        key = _problem_key(inputs, method)
        known = self._explained.get(key)
        if known is None:
            known = self._weights(market, inputs, method)
            self._remember(inputs, method, known)
        return known[0].copy()

    def _remember(self, inputs: _Inputs, method: Method, solved: tuple[FloatArray, str]) -> None:
        if len(self._explained) >= _EXPLAINED_LIMIT:  # a long-lived solver: memory stays bounded
            self._explained.clear()
        self._explained[_problem_key(inputs, method)] = (solved[0].copy(), solved[1])

    # --- batches ------------------------------------------------------------------------------------

    def solve_batch(
        self,
        accounts_constraints: Sequence[Constraints],
        mu: npt.ArrayLike,
        sigma: npt.ArrayLike,
        risk_aversions: npt.ArrayLike,
        *,
        method: Method = "osqp",
    ) -> FloatArray:
        """Targets for many accounts, one row each: one solve per distinct (solve key, risk aversion).

        Grouping needs one dictionary look-up per account (on a key cached in its ``Constraints``);
        everything else is per distinct group, and rows are mapped back with numpy indexing. If any group
        is infeasible, nothing is returned: the error names the accounts (first of each group) and why.
        """
        count = len(accounts_constraints)
        risks = np.broadcast_to(np.asarray(risk_aversions, dtype=np.float64), (count,))
        if count == 0:
            return np.zeros((0, self.universe.n))
        market = self._use_market(mu, sigma)
        codes_of: dict[Hashable, int] = {}
        codes = np.fromiter(
            (codes_of.setdefault(c.solve_key(), len(codes_of)) for c in accounts_constraints),
            dtype=np.intp,
            count=count,
        )
        risk_values, risk_codes = np.unique(risks, return_inverse=True)
        groups, first, inverse = np.unique(
            codes * risk_values.size + risk_codes.ravel(), return_index=True, return_inverse=True
        )
        checked: dict[int, _Bounds | list[str]] = {}  # per distinct key: bounds, or the problems found
        failures: list[str] = []
        targets = np.empty((groups.size, self.universe.n))
        for g, account in enumerate(first.tolist()):
            constraints = accounts_constraints[account]
            code = int(codes[account])
            outcome = checked.get(code)
            if outcome is None:
                bounds = self.universe.bounds(constraints)
                problems = _diagnose(constraints, self.universe, bounds)
                outcome = checked[code] = problems if problems else bounds
                if problems:  # reported once per distinct key, whatever the risk levels
                    failures.append(f"account {account}: " + ", ".join(problems))
            if isinstance(outcome, list):
                continue
            try:
                inputs = self._inputs(constraints, outcome, float(risks[account]))
                targets[g] = self._weights(market, inputs, method)[0]
            except InfeasibleConstraintsError as exc:  # whatever the risk level: skip this key's other groups
                checked[code] = list(exc.problems)
                failures.append(f"account {account}: " + ", ".join(exc.problems))
        if failures:
            raise InfeasibleConstraintsError(failures)
        return np.asarray(targets[inverse.ravel()], dtype=np.float64)


def personal_targets_batch(
    accounts_constraints: Sequence[Constraints],
    mu: npt.ArrayLike,
    sigma: npt.ArrayLike,
    risk_aversions: npt.ArrayLike,
    *,
    solver: PersonalTargetSolver,
    method: Method = "osqp",
) -> FloatArray:
    """Target weights (accounts x assets) for many accounts; see ``PersonalTargetSolver.solve_batch``."""
    return solver.solve_batch(accounts_constraints, mu, sigma, risk_aversions, method=method)
