"""Personal targets: the model portfolio under an investor's constraints, on the shipped data.

Market: the 16 model funds, ten years, annualized mean daily returns and Ledoit-Wolf covariance (as in
test_objectives.py). PyPortfolioOpt is the reference, solving the same problem with Clarabel at tight
tolerances (1e-12): at its defaults its weights miss the exact optimum in the flat, nearly collinear bond
directions of these funds, by up to about 5e-3 with OSQP (cvxpy's choice) and 2e-4 with Clarabel at 1e-8.
That is solver noise, not a different answer; tightened, it agrees with ours to about 1e-8.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pypfopt import EfficientFrontier, objective_functions

import portfolios.personal as personal
from portfolios.estimation import estimate, estimation_window
from portfolios.optimize import MeanVarianceProblem, OptimizationError, clean_weights, risk_aversion_for_level
from portfolios.personal import (
    ClassBounds,
    Constraints,
    InfeasibleConstraintsError,
    PersonalTargetSolver,
    class_bounds,
    diagnose,
    exclusions_for,
    personal_targets_batch,
)
from portfolios.universe import ASSETS, ESG_FLAGS
from tests.market import DATA

MODEL = sorted(t for t, _, _, in_model in ASSETS if in_model)
CLASSES = [{t: c for t, _, c, _ in ASSETS}[t] for t in MODEL]
N = len(MODEL)
UPPER = 0.35
AGREEMENT = 1e-4  # max abs weight difference against PyPortfolioOpt and between our two paths
TIGHT_CLARABEL = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "tol_ktratio": 1e-10}
ALL_SCREENS = sorted(ESG_FLAGS)


@dataclass(frozen=True)
class Market:
    mu: np.ndarray
    sigma: np.ndarray


@functools.cache
def market() -> Market:
    frame = pd.read_csv(DATA, parse_dates=["date"])
    wide = frame.pivot(index="date", columns="ticker", values="adj_close")[MODEL]
    estimates = estimate(estimation_window(wide, years=10))
    return Market(estimates.expected_returns, estimates.covariance)


@functools.cache
def shared_solver() -> PersonalTargetSolver:
    return PersonalTargetSolver(MODEL, CLASSES)


def at(ticker: str) -> int:
    return MODEL.index(ticker)


def plain(**changes: object) -> Constraints:
    return Constraints(upper=np.full(N, UPPER), **changes)  # type: ignore[arg-type]


def solve(constraints: Constraints, level: int, **options: object) -> personal.PersonalTarget:
    m = market()
    return shared_solver().solve(constraints, m.mu, m.sigma, risk_aversion_for_level(level), **options)  # type: ignore[arg-type]


def model_weights_tight(level: int) -> np.ndarray:
    """The model problem of optimize.py, re-solved at tight tolerances (its defaults are 2e-6 off at level 3)."""
    m = market()
    model = MeanVarianceProblem(N)
    model.solve(m.mu, m.sigma, risk_aversion_for_level(level), np.full(N, UPPER))  # sets the parameters
    model.problem.solve(solver="CLARABEL", **TIGHT_CLARABEL)
    return clean_weights(np.asarray(model.weights.value), np.full(N, UPPER))


# --- the model portfolio and the constraints one by one -------------------------------------------


@pytest.mark.parametrize("level", range(1, 11))
@pytest.mark.parametrize("method", ["osqp", "clarabel"])
def test_without_extra_constraints_the_target_is_the_model_portfolio(level: int, method: str) -> None:
    m = market()
    target = solve(plain(), level, method=method)
    assert np.abs(target.weights - model_weights_tight(level)).max() < 1e-6
    # As shipped, optimize.MeanVarianceProblem stops at Clarabel's default tolerances: within 1e-5.
    shipped = MeanVarianceProblem(N).solve(m.mu, m.sigma, risk_aversion_for_level(level), np.full(N, UPPER))
    assert np.abs(target.weights - shipped.weights).max() < 1e-5
    assert target.expected_return == pytest.approx(float(m.mu @ target.weights))
    assert {b.kind for b in target.binding} <= {"asset_maximum"}  # only the model's own 35% caps


def test_esg_exclusion_zeroes_the_excluded_funds_and_reports_its_cost() -> None:
    exclusions = exclusions_for(MODEL, esg_exclusions=ALL_SCREENS)
    excluded = {"DBC", "HYG", "IJR", "LQD", "VEA", "VTI", "VWO"}
    assert set(exclusions) == excluded

    target = solve(plain(exclusions=exclusions), 6, explain=True)

    assert all(target.weights[at(t)] == 0.0 for t in excluded)
    assert target.weights.sum() == pytest.approx(1.0, abs=1e-12)
    (screen,) = [b for b in target.binding if b.kind == "exclusion"]
    assert screen.name == "ESG exclusions (fossil fuel producers, tobacco, weapons and defence manufacturers)"
    assert set(screen.assets) == excluded
    assert screen.cost is not None
    assert screen.cost.expected_return_gain > 0.01  # the screen gives up VTI, the model's largest holding
    assert screen.cost.objective_gain >= 0
    unconstrained = solve(plain(), 6)
    np.testing.assert_allclose(screen.cost.relaxed_weights, unconstrained.weights, atol=1e-8)
    assert screen.cost.expected_return_gain == pytest.approx(unconstrained.expected_return - target.expected_return)


def test_restricted_list_excludes_a_fund_with_its_own_reason() -> None:
    exclusions = exclusions_for(MODEL, esg_exclusions=["fossil_fuels"], restricted=["GLD", "XYZ"])
    assert exclusions["GLD"] == ("compliance restricted list",)
    assert "XYZ" not in exclusions  # not in the universe: nothing to exclude

    target = solve(plain(exclusions=exclusions), 8, explain=True)

    assert target.weights[at("GLD")] == 0.0
    names = {b.name for b in target.binding if b.kind == "exclusion"}
    assert names == {"compliance restricted list", "ESG exclusions (fossil fuel producers)"}
    assert all(b.cost is not None and b.cost.objective_gain >= -1e-9 for b in target.binding)


def test_class_bounds_and_bond_minimum_are_respected_and_reported_when_binding() -> None:
    groups = class_bounds(CLASSES, {"equity": (0.10, 0.30), "gold": (0.0, 0.10)})
    target = solve(plain(class_bounds=groups, bond_cash_minimum=0.40), 9, explain=True)

    equity = sum(target.weights[at(t)] for t in ("IJR", "VEA", "VTI", "VWO"))
    bond_cash = sum(target.weights[at(t)] for t in ("AGG", "BIL", "HYG", "IEF", "LQD", "MUB", "SHY", "TIP", "TLT"))
    assert 0.10 - 1e-9 <= equity <= 0.30 + 1e-9
    assert target.weights[at("GLD")] <= 0.10 + 1e-9
    assert bond_cash >= 0.40 - 1e-9
    kinds = {(b.kind, b.name): b for b in target.binding}
    assert set(kinds) >= {
        ("class_maximum", "equity"),
        ("class_maximum", "gold"),
        ("bond_cash_minimum", "bond/cash minimum"),
    }
    for binding in kinds.values():
        assert binding.cost is not None and binding.cost.objective_gain >= -1e-9
    assert kinds["class_maximum", "equity"].cost.expected_return_gain > 0  # type: ignore[union-attr]


def test_per_asset_minimum_and_maximum_position() -> None:
    lower = np.zeros(N)
    lower[at("TLT")] = 0.05
    target = solve(plain(lower=lower, max_position=0.20), 10, explain=True)

    assert target.weights[at("TLT")] == pytest.approx(0.05, abs=1e-9)
    assert target.weights.max() <= 0.20 + 1e-12
    kinds = {b.kind: b for b in target.binding}
    assert kinds["asset_minimum"].name == "TLT"
    assert set(kinds["max_position"].assets) >= {"VTI", "GLD"}
    assert kinds["max_position"].cost is not None and kinds["max_position"].cost.expected_return_gain > 0


@pytest.mark.parametrize("account_type", ["traditional_ira", "roth_ira"])
def test_municipal_bonds_are_zeroed_in_tax_advantaged_accounts(account_type: str) -> None:
    taxable = solve(plain(), 1)
    assert taxable.weights[at("MUB")] > 0.05  # the model holds munis at level 1

    target = solve(plain(account_type=account_type), 1, explain=True)

    assert target.weights[at("MUB")] == 0.0
    (tax,) = [b for b in target.binding if b.assets == ("MUB",) and b.kind == "exclusion"]
    assert tax.name.startswith("the tax rule: no municipal bonds in a ")
    assert tax.cost is not None and tax.cost.objective_gain > 0


def test_transaction_cost_moves_the_target_towards_current_weights_and_a_large_one_keeps_them() -> None:
    current = np.full(N, 1.0 / N)  # feasible: every fund under its 35% cap
    distances = []
    for cost in (0.0, 0.004, 0.01, 0.02, 0.05):  # historical means: the tilt is worth several %
        target = solve(plain(current_weights=current, transaction_cost=cost), 7)
        distances.append(np.abs(target.weights - current).sum())
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(distances)), distances
    assert distances[0] > 1.0 and distances[-1] < 0.2

    kept = solve(plain(current_weights=current, transaction_cost=1.0), 7, explain=True)

    np.testing.assert_allclose(kept.weights, current, atol=1e-9)
    (cost,) = [b for b in kept.binding if b.kind == "transaction_cost"]
    assert len(cost.assets) == N and cost.cost is not None and cost.cost.objective_gain > 0


def test_turnover_limit_bounds_what_is_sold() -> None:
    current = solve(plain(), 1).weights  # a conservative account moving to level 10

    target = solve(plain(current_weights=current, turnover_limit=0.10), 10, explain=True)

    sold = np.maximum(current - target.weights, 0).sum()
    assert sold == pytest.approx(0.10, abs=1e-7)
    (turnover,) = [b for b in target.binding if b.kind == "turnover_limit"]
    assert turnover.cost is not None and turnover.cost.objective_gain > 0
    np.testing.assert_allclose(turnover.cost.relaxed_weights, solve(plain(), 10).weights, atol=1e-8)


def test_a_new_account_is_never_held_back_by_a_turnover_limit() -> None:
    target = solve(plain(turnover_limit=0.0), 10)  # holds nothing: sells nothing
    np.testing.assert_allclose(target.weights, solve(plain(), 10).weights, atol=1e-9)


def test_explanations_reuse_a_relaxed_problem_another_account_already_solved(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given three accounts at level 1 (where the model holds municipal bonds): a low-bracket taxable account and a
    # Roth IRA exclude MUB for different reasons but with the same numbers, and a Roth IRA with GLD restricted too,
    # whose restricted-list relaxation is the other IRA's own problem
    m = market()
    gamma = risk_aversion_for_level(1)
    low_bracket = plain(municipal_rate_floor=0.24)
    roth = plain(account_type="roth_ira")
    roth_restricted = plain(account_type="roth_ira", exclusions=exclusions_for(MODEL, restricted=["GLD"]))
    alone = [
        PersonalTargetSolver(MODEL, CLASSES).solve(c, m.mu, m.sigma, gamma, explain=True)
        for c in (low_bracket, roth, roth_restricted)
    ]
    solver = PersonalTargetSolver(MODEL, CLASSES)
    calls: list[int] = []
    original = PersonalTargetSolver._weights

    def counting(self: PersonalTargetSolver, *args: object) -> object:
        calls.append(1)
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(PersonalTargetSolver, "_weights", counting)

    # When one solver explains them one after the other
    shared = []
    solves = []
    for constraints in (low_bracket, roth, roth_restricted):
        calls.clear()
        shared.append(solver.solve(constraints, m.mu, m.sigma, gamma, explain=True))
        solves.append(len(calls))

    # Then every explanation is the one the account gets alone, and the shared problems are not solved again
    for together, by_itself in zip(shared, alone, strict=True):
        np.testing.assert_allclose(together.weights, by_itself.weights, atol=1e-9)
        assert [(b.kind, b.name, b.assets) for b in together.binding] == [
            (b.kind, b.name, b.assets) for b in by_itself.binding
        ]
        for b, c in zip(together.binding, by_itself.binding, strict=True):
            assert b.cost is not None and c.cost is not None
            np.testing.assert_allclose(b.cost.relaxed_weights, c.cost.relaxed_weights, atol=1e-9)
            assert b.cost.objective_gain == pytest.approx(c.cost.objective_gain, abs=1e-10)
            assert b.cost.expected_return_gain == pytest.approx(c.cost.expected_return_gain, abs=1e-10)
            assert b.cost.volatility_change == pytest.approx(c.cost.volatility_change, abs=1e-10)
    assert solves[0] == 1 + len(shared[0].binding)
    assert solves[1] == 1  # the IRA's relaxations are the low-bracket account's, number for number
    (restricted,) = [b for b in shared[2].binding if b.name == "compliance restricted list"]
    assert restricted.cost is not None
    assert np.array_equal(restricted.cost.relaxed_weights, shared[1].weights)
    assert solves[2] < 1 + len(shared[2].binding)


def test_explanations_are_not_reused_across_markets() -> None:
    m = market()
    gamma = risk_aversion_for_level(1)
    moved = m.mu + np.linspace(-0.01, 0.01, N)
    solver = PersonalTargetSolver(MODEL, CLASSES)
    solver.solve(plain(account_type="roth_ira"), m.mu, m.sigma, gamma, explain=True)

    target = solver.solve(plain(account_type="roth_ira"), moved, m.sigma, gamma, explain=True)

    fresh = PersonalTargetSolver(MODEL, CLASSES).solve(
        plain(account_type="roth_ira"), moved, m.sigma, gamma, explain=True
    )
    for b, c in zip(target.binding, fresh.binding, strict=True):
        assert b.cost is not None and c.cost is not None
        np.testing.assert_allclose(b.cost.relaxed_weights, c.cost.relaxed_weights, atol=1e-9)


# --- refusals -------------------------------------------------------------------------------------

_ALL_BONDS_BUT_TLT = ["AGG", "BIL", "HYG", "IEF", "LQD", "SHY", "TIP"]
_FOSSIL = "ESG exclusions (fossil fuel producers)"


def _with(ticker: str, value: float) -> np.ndarray:
    vector = np.zeros(N)
    vector[at(ticker)] = value
    return vector


INFEASIBLE = {
    "maxima below one": (
        Constraints(upper=np.full(N, 0.05)),
        "per-asset maxima sum to 0.8 < 1",
    ),
    "maximum position": (
        plain(max_position=0.05),
        "per-asset maxima sum to 0.8 < 1 after the maximum position 0.05",
    ),
    "exclusions and maximum position": (
        plain(exclusions=dict.fromkeys(MODEL[:6], ("compliance restricted list",)), max_position=0.09),
        "per-asset maxima sum to 0.9 < 1 after excluding AGG, BIL, DBC, GLD, HYG, IEF and the maximum position 0.09",
    ),
    "asset minimum above maximum": (
        plain(lower=_with("VTI", 0.4)),
        "VTI minimum 0.4 above its maximum 0.35",
    ),
    "asset minimum above maximum position": (
        plain(lower=_with("VTI", 0.3), max_position=0.2),
        "VTI minimum 0.3 above the maximum position 0.2",
    ),
    "minimum on an excluded fund": (
        plain(lower=_with("VTI", 0.1), exclusions=exclusions_for(MODEL, esg_exclusions=["fossil_fuels"])),
        f"VTI minimum 0.1 but VTI is excluded by {_FOSSIL}",
    ),
    "minimum on munis in an IRA": (
        plain(lower=_with("MUB", 0.1), account_type="roth_ira"),
        "MUB minimum 0.1 but MUB is excluded by the tax rule: no municipal bonds in a Roth IRA, "
        "where their tax exemption is wasted",
    ),
    "minima above one": (
        plain(lower=np.full(N, 0.07)),
        "per-asset minima sum to 1.12 > 1",
    ),
    "class minimum above its assets' maxima": (
        plain(class_bounds=class_bounds(CLASSES, {"emerging": (0.4, 1.0)})),
        "class emerging minimum 0.4 above the 0.35 its assets' maxima allow",
    ),
    "class minimum above its assets' maxima after exclusions": (
        plain(
            class_bounds=class_bounds(CLASSES, {"equity": (0.2, 0.8)}),
            exclusions=exclusions_for(MODEL, esg_exclusions=["fossil_fuels"]),
        ),
        "class equity minimum 0.2 above the 0 its assets' maxima allow",
    ),
    "class minimum above its maximum": (
        plain(class_bounds=class_bounds(CLASSES, {"bond": (0.6, 0.5)})),
        "class bond minimum 0.6 above its maximum 0.5",
    ),
    "class maximum below its assets' minima": (
        plain(lower=_with("GLD", 0.2), class_bounds=class_bounds(CLASSES, {"gold": (0.0, 0.1)})),
        "class gold maximum 0.1 below the 0.2 its assets' minima require",
    ),
    "class minima above one": (
        plain(class_bounds=class_bounds(CLASSES, {"equity": (0.6, 1.0), "bond": (0.5, 1.0)})),
        "class minima sum to 1.1 > 1",
    ),
    "bond/cash minimum after exclusions": (
        plain(
            exclusions=dict.fromkeys(_ALL_BONDS_BUT_TLT, ("compliance restricted list",)),
            account_type="roth_ira",
            bond_cash_minimum=0.5,
        ),
        "bond/cash minimum 0.5 above the 0.35 the bond and cash funds can hold after exclusions",
    ),
    "everything excluded": (
        plain(exclusions=dict.fromkeys(MODEL, ("compliance restricted list",))),
        "every asset is excluded (compliance restricted list)",
    ),
    "turnover limit below the forced sale": (
        plain(
            current_weights=_with("VTI", 0.3) + _with("BIL", 0.35) + _with("AGG", 0.35),
            turnover_limit=0.1,
            exclusions=exclusions_for(MODEL, esg_exclusions=["fossil_fuels"]),
        ),
        "turnover limit 0.1 below the 0.3 that must be sold to bring VTI within its maximum",
    ),
}


@pytest.mark.parametrize("case", sorted(INFEASIBLE))
def test_infeasible_constraints_are_refused_before_any_solve_naming_the_constraint(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    constraints, problem = INFEASIBLE[case]
    m = market()

    def no_solve(*args: object) -> None:
        raise AssertionError("a solver ran")

    monkeypatch.setattr(personal._OsqpProblem, "solve", no_solve)
    monkeypatch.setattr(personal._ClarabelProblem, "solve", no_solve)

    assert diagnose(constraints, MODEL, CLASSES) == [problem]
    for method in ("osqp", "clarabel"):
        with pytest.raises(InfeasibleConstraintsError) as refused:
            shared_solver().solve(constraints, m.mu, m.sigma, 4.0, method=method)  # type: ignore[arg-type]
        assert str(refused.value) == f"No portfolio satisfies the investor's constraints: {problem}."
        assert refused.value.problems == (problem,)
        assert refused.value.status is None


def test_every_simple_conflict_is_named_at_once() -> None:
    constraints = Constraints(upper=np.full(N, 0.05), lower=_with("VTI", 0.1), bond_cash_minimum=0.5)
    assert diagnose(constraints, MODEL, CLASSES) == [
        "VTI minimum 0.1 above its maximum 0.05",
        "per-asset maxima sum to 0.8 < 1",
        "bond/cash minimum 0.5 above the 0.45 the bond and cash funds can hold after exclusions",
    ]


@pytest.mark.parametrize("method", ["osqp", "clarabel"])
def test_a_conflict_only_the_solver_sees_is_refused_with_its_status(method: str) -> None:
    # Each holds alone; together they need 70% equity and 40% bonds and cash.
    constraints = plain(class_bounds=class_bounds(CLASSES, {"equity": (0.7, 1.0)}), bond_cash_minimum=0.4)
    assert diagnose(constraints, MODEL, CLASSES) == []

    with pytest.raises(InfeasibleConstraintsError) as refused:
        solve(constraints, 5, method=method)

    assert refused.value.status == "infeasible"
    assert str(refused.value) == (
        "No portfolio satisfies the investor's constraints: "
        "the constraints together leave no portfolio (solver CLARABEL: infeasible)."
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"upper": np.full(N, -0.1)}, "Upper bounds must not be negative."),
        ({"upper": np.full(N, np.nan)}, "Upper bounds must be a non-empty vector of finite numbers."),
        ({"lower": np.full(N - 1, 0.0)}, f"Got {N - 1} lower bounds for {N} upper bounds."),
        (
            {"account_type": "401k"},
            "Unknown account type '401k'; choose from ['taxable', 'traditional_ira', 'roth_ira'].",
        ),
        ({"transaction_cost": -0.01}, "Transaction costs must be finite and >= 0."),
        ({"current_weights": np.full(N, 0.1)}, "Current weights must be >= 0 and sum to at most 1."),
    ],
)
def test_malformed_constraints_are_refused_when_built(changes: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"upper": np.full(N, UPPER), **changes}
    with pytest.raises(OptimizationError) as refused:
        Constraints(**arguments)  # type: ignore[arg-type]
    assert not isinstance(refused.value, InfeasibleConstraintsError)
    assert str(refused.value) == message


def test_constraints_for_another_universe_are_refused() -> None:
    m = market()
    with pytest.raises(OptimizationError) as refused:
        shared_solver().solve(Constraints(upper=np.ones(3)), m.mu, m.sigma, 4.0)
    assert str(refused.value) == "Constraints are for 3 assets, the universe has 16."


# --- the fast path against the reference and PyPortfolioOpt ---------------------------------------


def random_constraints(rng: np.random.Generator, level: int, *, trades: bool) -> Constraints:
    groups: ClassBounds | None = None
    if rng.random() < 0.3:
        equity_cap = float(rng.uniform(0.3, 0.8))
        groups = class_bounds(CLASSES, {"equity": (0.0, equity_cap), "bond": (float(rng.uniform(0, 0.3)), 1.0)})
    current, cost, turnover = None, 0.0, None
    if trades:
        current = rng.dirichlet(np.ones(N))
        cost = float(rng.uniform(0.0, 0.01))
        turnover = float(rng.uniform(0.05, 0.5)) if rng.random() < 0.5 else None
    return Constraints(
        upper=np.full(N, float(rng.uniform(0.15, 0.5))),
        class_bounds=groups,
        bond_cash_minimum=float(rng.uniform(0.2, 0.6)) if level <= 3 and rng.random() < 0.5 else 0.0,
        exclusions=exclusions_for(
            MODEL,
            esg_exclusions=[f for f in ALL_SCREENS if rng.random() < 0.2],
            restricted=[t for t in MODEL if rng.random() < 0.05],
        ),
        max_position=float(rng.uniform(0.1, 0.4)) if rng.random() < 0.3 else None,
        current_weights=current,
        transaction_cost=cost,
        turnover_limit=turnover,
        account_type=str(rng.choice(["taxable", "traditional_ira", "roth_ira"])),
    )


def pypfopt_weights(constraints: Constraints, gamma: float) -> np.ndarray:
    """PyPortfolioOpt as its users write it: a new EfficientFrontier per investor."""
    m = market()
    solver = shared_solver()
    upper = solver.universe.bounds(constraints).upper
    frontier = EfficientFrontier(
        m.mu,
        m.sigma,
        weight_bounds=[(low, high) for low, high in zip(constraints.lower_bounds, upper, strict=True)],
        solver="CLARABEL",
        solver_options=TIGHT_CLARABEL,
    )
    groups = constraints.class_bounds
    if groups is not None:
        frontier.add_constraint(lambda w: groups.membership @ w >= groups.lower)
        frontier.add_constraint(lambda w: groups.membership @ w <= groups.upper)
    if constraints.bond_cash_minimum > 0:
        bond_cash = solver.universe.bond_cash.astype(float)
        frontier.add_constraint(lambda w: bond_cash @ w >= constraints.bond_cash_minimum)
    if constraints.current_weights is not None:
        frontier.add_objective(
            objective_functions.transaction_cost, w_prev=constraints.current_weights, k=float(constraints.costs[0])
        )
    return np.array(list(frontier.max_quadratic_utility(risk_aversion=gamma).values()))


def test_fast_path_agrees_with_clarabel_and_pypfopt_on_random_signatures() -> None:
    rng = np.random.default_rng(20260801)
    m = market()
    solver = shared_solver()
    compared, fast, worst_reference, worst_pypfopt = 0, 0, 0.0, 0.0
    while compared < 300:
        level = int(rng.integers(1, 11))
        constraints = random_constraints(rng, level, trades=rng.random() < 0.3)
        if diagnose(constraints, MODEL, CLASSES):
            continue
        gamma = risk_aversion_for_level(level)
        try:
            ours = solver.solve(constraints, m.mu, m.sigma, gamma, explain=compared % 10 == 0)
        except InfeasibleConstraintsError:
            continue  # a conflict between class bounds and the bond minimum: both paths refuse it
        reference = solver.solve(constraints, m.mu, m.sigma, gamma, method="clarabel")
        compared += 1
        fast += ours.method == "osqp"
        worst_reference = max(worst_reference, float(np.abs(ours.weights - reference.weights).max()))
        if constraints.turnover_limit is None:  # PyPortfolioOpt has no turnover constraint
            worst_pypfopt = max(worst_pypfopt, float(np.abs(ours.weights - pypfopt_weights(constraints, gamma)).max()))
        assert ours.weights.min() >= 0 and ours.weights.sum() == pytest.approx(1.0, abs=1e-12)
        for binding in ours.binding:
            assert binding.cost is None or binding.cost.objective_gain >= -1e-9
    assert worst_reference < 1e-6, worst_reference
    assert worst_pypfopt < AGREEMENT, worst_pypfopt
    assert fast >= 290  # OSQP polishes nearly every solve; the rest fall back to Clarabel


@pytest.mark.parametrize("level", [1, 5, 10])
def test_fast_path_matches_pypfopt_max_quadratic_utility_with_esg_caps(level: int) -> None:
    constraints = plain(exclusions=exclusions_for(MODEL, esg_exclusions=["weapons"]), max_position=0.3)
    ours = solve(constraints, level)
    assert ours.method == "osqp"
    assert np.abs(ours.weights - pypfopt_weights(constraints, risk_aversion_for_level(level))).max() < AGREEMENT


def test_problems_are_compiled_once_per_structure_and_are_dpp() -> None:
    m = market()
    solver = PersonalTargetSolver(MODEL, CLASSES)
    for cap in (0.3, 0.4):
        for screens in ([], ["tobacco"]):
            constraints = Constraints(upper=np.full(N, cap), exclusions=exclusions_for(MODEL, esg_exclusions=screens))
            solver.solve(constraints, m.mu, m.sigma, 8.0, method="clarabel")
            solver.solve(constraints, m.mu, m.sigma, 8.0)
    assert len(solver._clarabel) == 1 and len(solver._osqp) == 1
    solver.solve(plain(bond_cash_minimum=0.3), m.mu, m.sigma, 8.0, method="clarabel")
    assert len(solver._clarabel) == 2
    assert all(problem.problem.is_dpp() for problem in solver._clarabel.values())


# --- signatures and batches -----------------------------------------------------------------------


def test_signature_ignores_current_weights_and_the_solve_key_uses_them_only_when_they_matter() -> None:
    holdings = np.full(N, 1.0 / N)
    assert plain().signature() == plain(current_weights=holdings).signature()
    assert plain().solve_key() == plain(current_weights=holdings).solve_key()  # no cost: holdings do not matter
    costly = plain(current_weights=holdings, transaction_cost=0.002)
    assert costly.signature() == plain(transaction_cost=0.002).signature()
    assert costly.solve_key() != plain(transaction_cost=0.002).solve_key()
    assert (
        plain(transaction_cost=0.002, current_weights=np.zeros(N)).solve_key()
        == plain(transaction_cost=0.002).solve_key()
    )
    assert plain(max_position=0.2).signature() != plain().signature()
    assert plain(account_type="roth_ira").signature() != plain().signature()
    assert plain(exclusions={"VTI": ("compliance restricted list",)}).signature() != plain().signature()


def test_batch_solves_each_distinct_signature_once_and_matches_solving_each_account(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(7)
    m = market()
    distinct = [random_constraints(rng, 2, trades=False) for _ in range(40)]
    distinct = [c for c in distinct if not diagnose(c, MODEL, CLASSES)][:12]
    accounts: list[Constraints] = []
    for i in range(400):  # equal constraints in distinct objects, as accounts built one by one would be
        template = distinct[i % len(distinct)]
        values = {f.name: getattr(template, f.name) for f in fields(Constraints)}
        accounts.append(Constraints(**values))
    holdings = rng.dirichlet(np.ones(N), size=20)
    accounts += [plain(current_weights=h, transaction_cost=0.003) for h in holdings]
    levels = rng.choice([2, 5, 9], size=len(accounts))
    gammas = np.array([risk_aversion_for_level(int(level)) for level in levels])
    solver = PersonalTargetSolver(MODEL, CLASSES)
    calls = []
    original = PersonalTargetSolver._weights

    def counting(self: PersonalTargetSolver, *args: object) -> object:
        calls.append(1)
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(PersonalTargetSolver, "_weights", counting)

    batch = personal_targets_batch(accounts, m.mu, m.sigma, gammas, solver=solver)

    expected_groups = len({(id(distinct[i % len(distinct)]), levels[i]) for i in range(400)}) + 20
    assert len(calls) == expected_groups
    one_by_one = np.array([solver.weights(c, m.mu, m.sigma, g) for c, g in zip(accounts, gammas, strict=True)])
    assert batch.shape == (len(accounts), N)
    np.testing.assert_allclose(batch, one_by_one, atol=1e-9)


def test_batch_with_an_infeasible_signature_names_the_account_and_returns_nothing() -> None:
    m = market()
    accounts = [plain(), plain(max_position=0.05), plain(), plain(max_position=0.05)]
    with pytest.raises(InfeasibleConstraintsError) as refused:
        personal_targets_batch(accounts, m.mu, m.sigma, 4.0, solver=shared_solver())
    assert refused.value.problems == ("account 1: per-asset maxima sum to 0.8 < 1 after the maximum position 0.05",)


# --- properties: random valid and random infeasible constraint sets ---------------------------------

GROUPS = sorted({*CLASSES, *(personal.CLASS_KIND[c] for c in CLASSES)})
BOND_CASH = np.array([personal.CLASS_KIND[c] in personal.BOND_CASH_KINDS for c in CLASSES])
MUNICIPAL = np.array([c == personal.MUNICIPAL_CLASS for c in CLASSES])
TOLERANCE = 1e-6
unit = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def valid_constraints(draw: st.DrawFn) -> tuple[Constraints, float]:
    """Constraints built around a portfolio that satisfies them (the witness), so they are always feasible:
    exclusions and the tax rule only where the witness holds nothing, every bound on the witness's side."""
    account_type = draw(st.sampled_from(personal.ACCOUNT_TYPES))
    excluded = np.array(draw(st.lists(st.booleans(), min_size=N, max_size=N)))
    if account_type != "taxable":
        excluded |= MUNICIPAL
    raw = np.array(draw(st.lists(unit, min_size=N, max_size=N))) * ~excluded
    if raw.sum() < 1e-3:
        raw[np.flatnonzero(~excluded)[0]] = 1.0
    witness = raw / raw.sum()
    upper = np.minimum(1.0, witness + np.array(draw(st.lists(st.floats(0.0, 0.5), min_size=N, max_size=N))))
    lower = None
    if draw(st.booleans()):
        lower = witness * np.array(draw(st.lists(unit, min_size=N, max_size=N))) * (witness > 0.05)
    max_position = None
    if draw(st.booleans()):
        max_position = min(1.0, float(witness.max()) + draw(st.floats(0.0, 0.3)))
    groups = None
    chosen = draw(st.lists(st.sampled_from(GROUPS), unique=True, max_size=4))
    if chosen:
        membership = class_bounds(CLASSES, dict.fromkeys(chosen, (0.0, 1.0))).membership
        shares = membership @ witness
        lows = shares * np.array(draw(st.lists(unit, min_size=len(chosen), max_size=len(chosen))))
        highs = shares + (1 - shares) * np.array(draw(st.lists(unit, min_size=len(chosen), max_size=len(chosen))))
        groups = ClassBounds(names=tuple(chosen), membership=membership, lower=lows, upper=np.minimum(highs, 1.0))
    bond_minimum = float(witness[BOND_CASH].sum()) * draw(unit) if draw(st.booleans()) else 0.0
    current, cost, turnover = None, 0.0, None
    if draw(st.booleans()):
        current = np.array(draw(st.lists(unit, min_size=N, max_size=N)))
        current = current / max(current.sum(), 1e-9) * draw(st.floats(0.0, 1.0))
        cost = draw(st.floats(0.0, 0.02))
        if draw(st.booleans()):  # at least what the witness sells, so the witness stays feasible
            turnover = float(np.maximum(current - witness, 0.0).sum()) + draw(st.floats(0.0, 0.3))
    constraints = Constraints(
        upper=upper,
        lower=lower,
        class_bounds=groups,
        bond_cash_minimum=bond_minimum,
        exclusions={t: ("compliance restricted list",) for t, out in zip(MODEL, excluded, strict=True) if out},
        max_position=max_position,
        current_weights=current,
        transaction_cost=cost,
        turnover_limit=turnover,
        account_type=account_type,
    )
    return constraints, draw(st.floats(0.5, 100.0))


def assert_within(constraints: Constraints, weights: np.ndarray) -> None:
    bounds = shared_solver().universe.bounds(constraints)
    assert np.all(np.isfinite(weights))
    assert abs(weights.sum() - 1.0) <= TOLERANCE
    assert np.all(weights >= bounds.lower - TOLERANCE) and np.all(weights <= bounds.upper + TOLERANCE)
    excluded = [i for i, why in enumerate(bounds.reasons) if why]
    assert np.all(weights[excluded] == 0.0)
    if constraints.max_position is not None:
        assert weights.max() <= constraints.max_position + TOLERANCE
    groups = constraints.class_bounds
    if groups is not None:
        shares = groups.membership @ weights
        assert np.all(shares >= groups.lower - TOLERANCE) and np.all(shares <= groups.upper + TOLERANCE)
    assert weights[BOND_CASH].sum() >= constraints.bond_cash_minimum - TOLERANCE
    if constraints.turnover_limit is not None and constraints.current_weights is not None:
        sold = np.maximum(constraints.current_weights - weights, 0.0).sum()
        assert sold <= constraints.turnover_limit + TOLERANCE


@settings(max_examples=100, deadline=None)
@given(valid_constraints(), st.sampled_from(["osqp", "clarabel"]))
def test_random_valid_constraints_are_met_within_1e6(case: tuple[Constraints, float], method: str) -> None:
    constraints, risk_aversion = case
    m = market()

    target = shared_solver().solve(constraints, m.mu, m.sigma, risk_aversion, method=method)  # type: ignore[arg-type]

    assert_within(constraints, target.weights)
    assert np.isfinite(target.expected_return) and np.isfinite(target.volatility) and np.isfinite(target.objective)


def _infeasible_upper(draw: st.DrawFn) -> Constraints:
    cap = draw(st.floats(0.0, 0.99 / N))
    return Constraints(upper=np.full(N, cap))


def _infeasible_lower(draw: st.DrawFn) -> Constraints:
    return plain(lower=np.full(N, draw(st.floats(1.01 / N, 0.35))))


def _infeasible_exclusions(draw: st.DrawFn) -> Constraints:
    keep = draw(st.lists(st.sampled_from(MODEL), unique=True, max_size=2))
    cap = draw(st.floats(0.05, 0.49))
    return plain(exclusions={t: ("compliance restricted list",) for t in MODEL if t not in keep}, max_position=cap)


def _infeasible_class(draw: st.DrawFn) -> Constraints:
    group = draw(st.sampled_from(GROUPS))
    capacity = float(class_bounds(CLASSES, {group: (0.0, 1.0)}).membership[0].sum()) * UPPER
    if capacity >= 1.0:  # a large group: its minimum above its maximum instead
        high = draw(st.floats(0.0, 0.9))
        return plain(class_bounds=class_bounds(CLASSES, {group: (high + draw(st.floats(0.01, 0.1)), high)}))
    low = draw(st.floats(capacity + 0.01, 1.0))
    return plain(class_bounds=class_bounds(CLASSES, {group: (low, 1.0)}))


def _infeasible_class_minima(draw: st.DrawFn) -> Constraints:
    equity, bond = draw(st.floats(0.3, 0.9)), draw(st.floats(0.3, 0.9))
    assume(equity + bond > 1.01)
    return plain(class_bounds=class_bounds(CLASSES, {"equity": (equity, 1.0), "bond": (bond, 1.0)}))


def _infeasible_equity_and_bond_floor(draw: st.DrawFn) -> Constraints:
    equity, floor = draw(st.floats(0.3, 0.7)), draw(st.floats(0.3, 0.8))
    assume(equity + floor > 1.01)  # each possible alone; only the solver sees they are not together
    return plain(class_bounds=class_bounds(CLASSES, {"equity": (equity, 1.0)}), bond_cash_minimum=floor)


def _infeasible_bond_floor(draw: st.DrawFn) -> Constraints:
    bonds = [t for t, is_bond in zip(MODEL, BOND_CASH, strict=True) if is_bond]
    kept = draw(st.lists(st.sampled_from(bonds), unique=True, max_size=2))
    floor = draw(st.floats(len(kept) * UPPER + 0.01, 1.0))
    excluded = {t: ("ESG exclusions (test)",) for t in bonds if t not in kept}
    return plain(exclusions=excluded, bond_cash_minimum=floor)


def _infeasible_turnover(draw: st.DrawFn) -> Constraints:
    held = draw(st.sampled_from(MODEL))
    current = np.zeros(N)
    current[at(held)] = draw(st.floats(0.2, 1.0))
    return plain(
        exclusions={held: ("compliance restricted list",)},
        current_weights=current,
        turnover_limit=draw(st.floats(0.0, float(current.sum()) - 0.01)),
    )


INFEASIBLE_KINDS = [
    _infeasible_upper,
    _infeasible_lower,
    _infeasible_exclusions,
    _infeasible_class,
    _infeasible_class_minima,
    _infeasible_equity_and_bond_floor,
    _infeasible_bond_floor,
    _infeasible_turnover,
]
CONFLICT_WORDS = ("maxima", "minima", "minimum", "maximum", "excluded", "turnover limit", "constraints together")


@settings(max_examples=100, deadline=None)
@given(st.data(), st.sampled_from(["osqp", "clarabel"]), st.floats(0.5, 100.0))
def test_random_infeasible_constraints_always_raise_the_domain_error(
    data: st.DataObject, method: str, risk_aversion: float
) -> None:
    build = data.draw(st.sampled_from(INFEASIBLE_KINDS))
    constraints = build(data.draw)  # type: ignore[operator]
    m = market()

    with pytest.raises(InfeasibleConstraintsError) as refused:
        shared_solver().solve(constraints, m.mu, m.sigma, risk_aversion, method=method)  # type: ignore[arg-type]

    assert refused.value.problems
    for problem in refused.value.problems:
        assert any(word in problem for word in CONFLICT_WORDS), problem
    assert str(refused.value).startswith("No portfolio satisfies the investor's constraints: ")
