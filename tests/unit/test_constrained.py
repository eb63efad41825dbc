"""Objectives under personal-target constraints (portfolios/constrained.py), on the shipped data.

PyPortfolioOpt is the reference for minimum variance, maximum Sharpe and target volatility under the same bounds
and class (sector) constraints, with Clarabel at tight tolerances (see test_personal.py for why).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypfopt import EfficientFrontier

from portfolios.constrained import ObjectiveInputError, ObjectiveSolver, relaxed_constraints
from portfolios.objectives import hierarchical_risk_parity, risk_contributions, risk_parity
from portfolios.personal import Constraints, InfeasibleConstraintsError, class_bounds, exclusions_for
from tests.unit.test_personal import (
    BOND_CASH,
    CLASSES,
    MODEL,
    TIGHT_CLARABEL,
    UPPER,
    N,
    assert_within,
    at,
    market,
    plain,
    valid_constraints,
)

AGREEMENT = 1e-4
SECTORS = {"us_small": (0.0, 0.10), "gold": (0.0, 0.05), "real_estate": (0.0, 0.08)}


def solver() -> ObjectiveSolver:
    return ObjectiveSolver(MODEL, CLASSES)


def house_like() -> Constraints:
    """A per-fund cap, three class maxima and the fossil-fuel screen: what PyPortfolioOpt can express too."""
    return plain(
        class_bounds=class_bounds(CLASSES, SECTORS), exclusions=exclusions_for(MODEL, esg_exclusions=["fossil_fuels"])
    )


def pypfopt_frontier(constraints: Constraints) -> EfficientFrontier:
    m = market()
    upper = solver().engine.universe.bounds(constraints).upper
    frontier = EfficientFrontier(
        m.mu,
        m.sigma,
        weight_bounds=[(0.0, float(u)) for u in upper],
        solver="CLARABEL",
        solver_options=TIGHT_CLARABEL,
    )
    frontier.add_sector_constraints(
        dict(zip(range(N), CLASSES, strict=True)),
        sector_lower={},
        sector_upper={group: high for group, (_, high) in SECTORS.items()},
    )
    return frontier


def weights_of(frontier_weights: dict[int, float]) -> np.ndarray:
    return np.array([frontier_weights[i] for i in range(N)])


def test_minimum_variance_under_constraints_matches_pypfopt() -> None:
    m = market()
    ours = solver().solve("min_variance", house_like(), m.mu, m.sigma, risk_aversion=5.0)
    theirs = weights_of(pypfopt_frontier(house_like()).min_volatility())
    assert np.abs(ours.weights - theirs).max() < AGREEMENT


@pytest.mark.parametrize("risk_free_rate", [0.0, 0.02])
def test_maximum_sharpe_under_constraints_matches_pypfopt(risk_free_rate: float) -> None:
    m = market()
    ours = solver().solve("max_sharpe", house_like(), m.mu, m.sigma, risk_aversion=5.0, risk_free_rate=risk_free_rate)
    theirs = weights_of(pypfopt_frontier(house_like()).max_sharpe(risk_free_rate=risk_free_rate))
    assert np.abs(ours.weights - theirs).max() < AGREEMENT


@pytest.mark.parametrize("target", [0.025, 0.032])  # between the 1.9% floor and the 3.8% of the best return
def test_target_volatility_under_constraints_matches_pypfopt(target: float) -> None:
    m = market()
    ours = solver().solve("target_volatility", house_like(), m.mu, m.sigma, risk_aversion=5.0, target_volatility=target)
    theirs = weights_of(pypfopt_frontier(house_like()).efficient_risk(target))
    assert ours.volatility == pytest.approx(target, abs=1e-6)
    assert np.abs(ours.weights - theirs).max() < AGREEMENT


def test_mean_variance_is_the_personal_target_engine() -> None:
    m = market()
    objective = solver()
    ours = objective.solve("mean_variance", house_like(), m.mu, m.sigma, risk_aversion=3.0)
    engine = objective.engine.solve(house_like(), m.mu, m.sigma, 3.0, explain=True, method="clarabel")
    np.testing.assert_allclose(ours.weights, engine.weights, atol=1e-12)
    assert [b.kind for b in ours.binding] == [b.kind for b in engine.binding]


def test_risk_parity_and_hrp_take_no_constraint_and_say_so() -> None:
    m = market()
    parity = solver().solve("risk_parity", None, m.mu, m.sigma, risk_aversion=5.0)
    contributions = risk_contributions(parity.weights, m.sigma)
    assert np.abs(contributions - 1 / N).max() < 1e-6
    np.testing.assert_allclose(parity.weights, risk_parity(m.sigma), atol=1e-12)
    hrp = solver().solve("hrp", None, m.mu, m.sigma, risk_aversion=5.0)
    np.testing.assert_allclose(hrp.weights, hierarchical_risk_parity(covariance=m.sigma), atol=1e-12)
    assert parity.binding == () and hrp.binding == ()
    for objective in ("risk_parity", "hrp"):
        with pytest.raises(ObjectiveInputError) as refused:
            solver().solve(objective, plain(), m.mu, m.sigma, risk_aversion=5.0)
        assert "long-only and fully invested: it takes no other constraint" in str(refused.value)


def test_maximum_sharpe_is_refused_when_no_allowed_fund_beats_the_risk_free_rate() -> None:
    m = market()
    with pytest.raises(ObjectiveInputError) as refused:
        solver().solve("max_sharpe", plain(), m.mu, m.sigma, risk_aversion=5.0, risk_free_rate=float(m.mu.max()) + 0.01)
    assert "the maximum Sharpe ratio is undefined" in str(refused.value) and refused.value.field == "objective"


def test_target_volatility_below_the_constrained_minimum_is_refused_with_the_floor() -> None:
    m = market()
    floor = solver().solve("min_variance", house_like(), m.mu, m.sigma, risk_aversion=5.0)
    with pytest.raises(ObjectiveInputError) as refused:
        solver().solve(
            "target_volatility", house_like(), m.mu, m.sigma, risk_aversion=5.0, target_volatility=floor.volatility / 2
        )
    assert refused.value.field == "target_volatility"
    assert f"below the {floor.volatility:.2%} minimum-variance volatility these constraints allow" in str(refused.value)
    at_floor = solver().solve(
        "target_volatility", house_like(), m.mu, m.sigma, risk_aversion=5.0, target_volatility=floor.volatility
    )
    np.testing.assert_allclose(at_floor.weights, floor.weights, atol=1e-9)


@pytest.mark.parametrize("objective", ["max_sharpe", "target_volatility", "min_variance"])
def test_each_binding_constraint_is_priced_by_relaxing_it_alone(objective: str) -> None:
    m = market()
    constraints = plain(
        class_bounds=class_bounds(CLASSES, {"equity": (0.0, 0.4)}),
        bond_cash_minimum=0.3,
        account_type="roth_ira",
        exclusions={"GLD": ("compliance restricted list",)},
        current_weights=np.full(N, 1 / N),
        transaction_cost=0.001,
    )
    objective_solver = solver()
    options = {"risk_aversion": 5.0, "risk_free_rate": 0.0, "target_volatility": 0.07}

    result = objective_solver.solve(objective, constraints, m.mu, m.sigma, **options)  # type: ignore[arg-type]

    assert_within(constraints, result.weights)
    assert result.binding, "something binds under these constraints"
    for binding in result.binding:
        assert binding.cost is not None
        relaxed = objective_solver.solve(
            objective, relaxed_constraints(constraints, binding, MODEL), m.mu, m.sigma, explain=False, **options
        )  # type: ignore[arg-type]
        np.testing.assert_allclose(binding.cost.relaxed_weights, relaxed.weights, atol=1e-6)
        assert binding.cost.expected_return_gain == pytest.approx(
            float(m.mu @ (relaxed.weights - result.weights)), abs=1e-9
        )
        assert binding.cost.objective_gain >= -1e-7  # relaxing never makes the objective worse


def test_relaxing_the_tax_rule_makes_the_account_taxable_and_an_exclusion_keeps_other_reasons() -> None:
    constraints = plain(
        account_type="traditional_ira",
        exclusions={
            "VTI": ("ESG exclusions (weapons)", "compliance restricted list"),
            "GLD": ("ESG exclusions (weapons)",),
        },
    )
    m = market()
    binding = ObjectiveSolver(MODEL, CLASSES).engine.solve(constraints, m.mu, m.sigma, 1.0).binding
    by_name = {b.name: b for b in binding if b.kind == "exclusion"}
    tax = next(b for name, b in by_name.items() if name.startswith("the tax rule"))
    assert relaxed_constraints(constraints, tax, MODEL).account_type == "taxable"
    screen = relaxed_constraints(constraints, by_name["ESG exclusions (weapons)"], MODEL)
    assert dict(screen.exclusions) == {"VTI": ("compliance restricted list",)}


def test_infeasible_constraints_raise_the_domain_error_for_every_constrained_objective() -> None:
    m = market()
    constraints = plain(bond_cash_minimum=0.5, exclusions=dict.fromkeys(MODEL[:-1], ("compliance restricted list",)))
    for objective in ("mean_variance", "min_variance", "max_sharpe", "target_volatility"):
        with pytest.raises(InfeasibleConstraintsError) as refused:
            solver().solve(objective, constraints, m.mu, m.sigma, risk_aversion=5.0, target_volatility=0.1)
        assert refused.value.problems


@settings(max_examples=25, deadline=None)
@given(valid_constraints(), st.sampled_from(["min_variance", "max_sharpe", "target_volatility"]), st.floats(1.0, 1.5))
def test_random_valid_constraints_hold_for_every_constrained_objective(
    case: tuple[Constraints, float], objective: str, stretch: float
) -> None:
    constraints, risk_aversion = case
    m = market()
    objective_solver = solver()
    # Every fund beats this rate, so the maximum Sharpe ratio is defined; the target is at or above the floor.
    risk_free_rate = float(m.mu.min()) - 0.01
    floor = objective_solver.solve("min_variance", constraints, m.mu, m.sigma, risk_aversion=1.0, explain=False)

    result = objective_solver.solve(
        objective,
        constraints,
        m.mu,
        m.sigma,
        risk_aversion=risk_aversion,
        risk_free_rate=risk_free_rate,
        target_volatility=floor.volatility * stretch,
        explain=False,
    )

    assert_within(constraints, result.weights)
    assert np.isfinite(result.expected_return) and np.isfinite(result.volatility)
    assert result.weights[BOND_CASH].sum() >= constraints.bond_cash_minimum - 1e-6
    assert at("VTI") >= 0 and UPPER > 0  # the shared helpers
