"""Reproducibility: the same prices and parameters give the same run, and a stored run can be solved again
from what it stores (its data hash and parameters) to the weights it stored."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from django.utils import timezone

from compliance.models import AuditEvent, ParameterVersion
from compliance.parameters import parameter_set_current
from portfolios.models import OptimizationRun
from portfolios.personal import PersonalTargetSolver, house_constraints
from portfolios.policy import RISK_LEVELS
from portfolios.selectors import market_date_latest
from portfolios.services.optimization import MODEL_METHOD, decimal_weights, model_portfolios_build, run_market

pytestmark = pytest.mark.django_db


def test_building_twice_on_the_same_prices_reuses_the_run(market_data) -> None:  # type: ignore[no-untyped-def]
    as_of = market_date_latest()
    first = model_portfolios_build(as_of=as_of)
    events = AuditEvent.objects.count()
    # when
    second = model_portfolios_build(as_of=as_of)
    # then
    assert second.pk == first.pk and OptimizationRun.objects.count() == 1
    assert AuditEvent.objects.count() == events  # a reuse solves and records nothing


def test_a_stored_run_solves_again_to_its_stored_weights(market_data) -> None:  # type: ignore[no-untyped-def]
    run = model_portfolios_build(as_of=market_date_latest())
    # when: rebuilt from the run's own record alone (its prices, checked against the hash, and its policy)
    policy, inputs = run_market(run)
    tickers = list(run.parameters["universe"])
    classes = list(run.parameters["classes"])
    solver = PersonalTargetSolver(tickers, classes)
    # then
    for portfolio in run.model_portfolios.prefetch_related("weights__asset"):
        level = portfolio.risk_level
        assert portfolio.risk_aversion == policy.gamma(level)
        solved = solver.solve(
            house_constraints(policy, classes, level), inputs.mu, inputs.sigma, policy.gamma(level), method=MODEL_METHOD
        )
        stored = {w.asset.ticker: w.weight for w in portfolio.weights.all()}
        stored_vector = np.array([float(stored.get(t, 0)) for t in tickers])
        # Stored weights are the solution rounded to 1e-6 with the residual on the largest weight.
        # Stored weights are the solution rounded to 1e-6, the rounding residual (at most half a step per fund)
        # on the largest weight.
        difference = np.abs(stored_vector - solved.weights)
        largest = int(np.argmax(stored_vector))
        assert np.delete(difference, largest).max() <= 1e-6, level
        assert difference[largest] <= 0.5e-6 * len(tickers) + 1e-9, level
        rounded = dict(zip(tickers, decimal_weights(solved.weights, policy.max_asset_weight), strict=True))
        assert {t: w for t, w in rounded.items() if w > 0} == stored, level
        assert abs(float(portfolio.volatility) - solved.volatility) <= 1e-6
        assert abs(float(portfolio.expected_return) - solved.expected_return) <= 1e-6
        assert abs(portfolio.objective - solved.objective) <= 1e-9
    assert sorted(p.risk_level for p in run.model_portfolios.all()) == list(RISK_LEVELS)


def test_the_same_prices_under_other_parameters_are_another_run(market_data) -> None:  # type: ignore[no-untyped-def]
    as_of = market_date_latest()
    default = model_portfolios_build(as_of=as_of)
    ParameterVersion.objects.create(
        name="optimization",
        version=1,
        values=parameter_set_current("optimization").values | {"tau": 0.1},
        created_at=timezone.now(),
    )
    # when
    changed = model_portfolios_build(as_of=as_of)
    # then
    assert changed.data_hash == default.data_hash
    assert changed.fingerprint != default.fingerprint and changed.pk != default.pk
    assert (changed.parameters["policy_version"], changed.parameters["policy"]["tau"]) == (1, 0.1)
    # and the first run is still there to reproduce the portfolios it gave
    assert OptimizationRun.objects.filter(pk=default.pk, status="succeeded").exists()
    assert sum(w.weight for w in changed.model_portfolios.get(risk_level=5).weights.all()) == Decimal(1)
