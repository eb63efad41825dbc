"""Estimate, optimize and store the model portfolio of every risk level, under the optimization policy in force.

A run is reproducible from what it stores: the data snapshot hash of the exact prices used, the policy's values
and version, the solver, and per level the status, objective and timings. ``run_market`` rebuilds its expected
returns and covariance from the same prices (checked against the hash) for personal targets and what-ifs.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Final

import numpy as np
import pandas as pd
from django.db import IntegrityError, transaction

from compliance.audit import audit_record
from compliance.chain import canonical_json

from ..estimation import TRADING_DAYS, EstimationError, history_window, snapshot_hash
from ..estimators import EstimatedInputs, build_views, estimate_inputs
from ..models import Asset, ModelPortfolio, ModelPortfolioWeight, OptimizationRun, Price, RunStatus
from ..optimize import SOLVER, OptimizationError
from ..personal import PersonalTargetSolver, house_constraints
from ..policy import (
    RISK_LEVELS,
    OptimizationPolicy,
    PolicyError,
    optimization_policy_from_values,
    optimization_policy_values,
)
from ..prices import wide_prices
from ..rebalance import WEIGHT_STEP
from ..selectors import optimization_policy_current

# The model portfolios are solved on the reference path (cvxpy + Clarabel at tight tolerances, see personal.py).
MODEL_METHOD: Final = "clarabel"


class ModelPortfolioError(Exception):
    pass


def decimal_weights(weights: np.ndarray, upper: float) -> list[Decimal]:
    """Floats from the optimizer to ``Decimal`` weights at 1e-6 that sum to exactly one.

    The rounding residual (a few 1e-6) goes to the largest weight that stays within ``upper``.
    """
    cap = Decimal(repr(upper)).quantize(WEIGHT_STEP)
    rounded = [min(Decimal(repr(float(w))).quantize(WEIGHT_STEP), cap) for w in weights]
    residual = Decimal(1) - sum(rounded, Decimal(0))
    order = sorted(range(len(rounded)), key=lambda i: rounded[i], reverse=True)
    target = next((i for i in order if rounded[i] > 0 and rounded[i] + residual <= cap), order[0])
    rounded[target] += residual
    return rounded


def _parameters(tickers: list[str], classes: list[str], version: int, policy: OptimizationPolicy) -> dict[str, Any]:
    return {
        "method": "mean_variance",
        "policy_version": version,
        "policy": optimization_policy_values(policy),
        # Kept at the top level too: what-ifs, the API and older readers look for them here.
        "expected_returns": policy.returns_method,
        "covariance": policy.covariance_method,
        "estimation_years": policy.estimation_years,
        "max_asset_weight": policy.max_asset_weight,
        "risk_aversion": {str(level): policy.gamma(level) for level in RISK_LEVELS},
        "universe": tickers,
        "classes": classes,
        "solver": SOLVER,
    }


def model_price_window(
    *, tickers: list[str], as_of: date, years: float, min_years: float | None = None
) -> pd.DataFrame:
    """The prices the estimates come from: the last ``years`` up to ``as_of`` of every fund in ``tickers``,
    shortened to their common history (at least ``min_years``) when a fund starts later. Why it was shortened
    is in ``window.attrs["flags"]``. Shared by the build, personal targets and the advisors' what-if.
    """
    rows = Price.objects.filter(asset__ticker__in=tickers, date__lte=as_of).values_list(
        "asset__ticker", "date", "close"
    )
    prices = wide_prices((ticker, day, float(close)) for ticker, day, close in rows)
    missing = sorted(set(tickers) - set(prices.columns))
    if missing:
        raise ModelPortfolioError(f"No prices for model funds: {', '.join(missing)}. Run import_prices first.")
    try:
        window, flags = history_window(
            prices[tickers], years=years, min_years=years if min_years is None else min_years
        )
    except EstimationError as exc:
        raise ModelPortfolioError(str(exc)) from exc
    window.attrs["flags"] = flags
    return window


@dataclass(frozen=True)
class ModelInputs:
    tickers: list[str]
    classes: list[str]
    estimated: EstimatedInputs
    risk_free: float

    @property
    def mu(self) -> np.ndarray:
        return self.estimated.mu

    @property
    def sigma(self) -> np.ndarray:
        return self.estimated.sigma


def model_inputs(window: pd.DataFrame, classes: list[str], policy: OptimizationPolicy) -> ModelInputs:
    """Expected returns and covariance of a price window under ``policy`` (pure computation, no queries).

    The risk-free rate is the trailing one-year total return of ``policy.risk_free_ticker`` inside the window.
    """
    tickers = [str(t) for t in window.columns]
    if policy.risk_free_ticker not in tickers:
        raise ModelPortfolioError(f"The risk-free fund {policy.risk_free_ticker} is not in the model universe.")
    cash = window[policy.risk_free_ticker]
    risk_free = float(cash.iloc[-1] / cash.iloc[-1 - TRADING_DAYS] - 1) if len(cash) > TRADING_DAYS else 0.0
    outside = sorted(set(policy.benchmark) - set(tickers))
    if outside:
        raise ModelPortfolioError(f"Benchmark funds outside the model universe: {', '.join(outside)}.")
    market = np.array([policy.benchmark.get(t, 0.0) for t in tickers])
    views = None
    if policy.views:
        views = build_views(
            tickers,
            absolute={v.ticker: v.value for v in policy.views if not v.versus},
            relative=[(v.ticker, v.versus, v.value) for v in policy.views if v.versus],
        )
    try:
        estimated = estimate_inputs(
            window,
            returns_method=policy.returns_method,
            covariance_method=policy.covariance_method,
            market_weights=market,
            risk_aversion=policy.market_risk_aversion,
            risk_free=risk_free,
            views=views,
            tau=policy.tau,
            half_life_days=policy.half_life_days,
            min_years=min(policy.min_history_years, policy.estimation_years) * 0.99,
        )
    except EstimationError as exc:
        raise ModelPortfolioError(str(exc)) from exc
    return ModelInputs(tickers, classes, estimated, risk_free)


def run_policy(run: OptimizationRun) -> OptimizationPolicy:
    """The policy a stored run was built with."""
    try:
        return optimization_policy_from_values(run.parameters["policy"])
    except (KeyError, PolicyError) as exc:
        raise ModelPortfolioError(f"Optimization run {run.pk} does not record a usable policy: {exc}") from exc


def run_market(run: OptimizationRun) -> tuple[OptimizationPolicy, ModelInputs]:
    """A stored run's policy and estimates, rebuilt from its own price window (checked against its data hash)."""
    policy = run_policy(run)
    tickers = list(run.parameters["universe"])
    classes = list(run.parameters["classes"])
    window = model_price_window(
        tickers=tickers, as_of=run.as_of, years=policy.estimation_years, min_years=policy.min_history_years
    )
    if snapshot_hash(window) != run.data_hash:
        raise ModelPortfolioError(
            f"The prices of optimization run {run.pk} have changed since it was built: its estimates cannot be rebuilt."
        )
    return policy, model_inputs(window, classes, policy)


def model_portfolios_build(*, as_of: date, actor: Any = None) -> OptimizationRun:
    """Build (or reuse) the model portfolios from the prices up to ``as_of`` under the policy in force.

    A run is identified by its data snapshot hash and parameters (the policy's values): the same prices
    and parameters reuse the stored run instead of solving again. ``actor`` is the admin who asked for a
    re-optimization (None for the pipeline).
    """
    started = time.perf_counter()
    version, policy = optimization_policy_current()
    assets = {a.ticker: a for a in Asset.objects.filter(in_model_universe=True).select_related("asset_class")}
    tickers = sorted(assets)
    classes = [assets[t].asset_class.code for t in tickers]
    window = model_price_window(
        tickers=tickers, as_of=as_of, years=policy.estimation_years, min_years=policy.min_history_years
    )
    parameters = _parameters(tickers, classes, version, policy)
    data_hash = snapshot_hash(window)
    # The version number is recorded but not hashed: versions with the same values give the same results (the
    # first stored version repeats the defaults), so their runs are one run.
    hashed = {k: v for k, v in parameters.items() if k != "policy_version"}
    fingerprint = hashlib.sha256((data_hash + canonical_json(hashed)).encode()).hexdigest()
    existing = OptimizationRun.objects.filter(fingerprint=fingerprint, status=RunStatus.SUCCEEDED).first()
    if existing is not None:
        return existing
    load_seconds = time.perf_counter() - started

    def failed(message: str) -> ModelPortfolioError:
        with transaction.atomic():
            run = OptimizationRun.objects.create(
                as_of=as_of,
                data_hash=data_hash,
                fingerprint=fingerprint,
                parameters=parameters,
                solver=SOLVER,
                status=RunStatus.FAILED,
                error=message,
            )
            audit_record(actor=actor, action="optimization.failed", obj=run, payload={"error": message})
        return ModelPortfolioError(message)

    t0 = time.perf_counter()
    try:
        inputs = model_inputs(window, classes, policy)
    except ModelPortfolioError as exc:
        raise failed(str(exc)) from exc
    estimate_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    solver = PersonalTargetSolver(tickers, classes)
    solutions = {}
    solve_seconds: dict[int, float] = {}
    try:
        for level in RISK_LEVELS:
            t1 = time.perf_counter()
            solutions[level] = solver.solve(
                house_constraints(policy, classes, level),
                inputs.mu,
                inputs.sigma,
                policy.gamma(level),
                method=MODEL_METHOD,
            )
            solve_seconds[level] = time.perf_counter() - t1
    except OptimizationError as exc:
        raise failed(f"Model portfolio of level {level}: {exc}") from exc
    optimize_seconds = time.perf_counter() - t0

    timings = {
        "load_seconds": round(load_seconds, 4),
        "estimate_seconds": round(estimate_seconds, 4),
        "first_solve_seconds": round(solve_seconds[1], 4),  # includes compiling the problem once (DPP)
        "resolve_seconds_mean": round(float(np.mean([solve_seconds[lv] for lv in RISK_LEVELS[1:]])), 4),
        "optimize_seconds": round(optimize_seconds, 4),
        "total_seconds": round(time.perf_counter() - started, 4),
    }
    estimated = inputs.estimated
    estimates_summary = {
        "window_start": window.index[0].date().isoformat(),
        "window_end": window.index[-1].date().isoformat(),
        "observations": estimated.observations,
        "flags": list(window.attrs.get("flags", [])),
        "returns_method": estimated.returns_method.value,
        "covariance_method": estimated.covariance_method.value,
        "covariance_repaired": estimated.covariance_repaired,
        "risk_free_rate": round(inputs.risk_free, 6),
        "expected_returns": {t: round(float(m), 6) for t, m in zip(tickers, inputs.mu, strict=True)},
        "volatilities": {t: round(float(np.sqrt(v)), 6) for t, v in zip(tickers, np.diag(inputs.sigma), strict=True)},
        "binding": {
            str(level): [{"kind": b.kind, "name": b.name, "limit": round(b.limit, 6)} for b in s.binding]
            for level, s in solutions.items()
        },
    }
    try:
        with transaction.atomic():
            run = OptimizationRun.objects.create(
                as_of=as_of,
                data_hash=data_hash,
                fingerprint=fingerprint,
                parameters=parameters,
                solver=f"{SOLVER} (cvxpy, DPP)",
                status=RunStatus.SUCCEEDED,
                timings=timings,
                estimates=estimates_summary,
            )
            for level, solution in solutions.items():
                portfolio = ModelPortfolio.objects.create(
                    run=run,
                    risk_level=level,
                    risk_aversion=policy.gamma(level),
                    expected_return=Decimal(repr(solution.expected_return)).quantize(WEIGHT_STEP),
                    volatility=Decimal(repr(solution.volatility)).quantize(WEIGHT_STEP),
                    objective=solution.objective,
                    solver_status=f"optimal ({solution.method})",
                )
                ModelPortfolioWeight.objects.bulk_create(
                    [
                        ModelPortfolioWeight(portfolio=portfolio, asset=assets[t], weight=w)
                        for t, w in zip(
                            tickers, decimal_weights(solution.weights, policy.max_asset_weight), strict=True
                        )
                        if w > 0
                    ]
                )
            audit_record(
                actor=actor,
                action="optimization.succeeded",
                obj=run,
                payload={
                    "as_of": as_of,
                    "data_hash": data_hash,
                    "policy_version": version,
                    "flags": estimates_summary["flags"],
                    "levels": {
                        str(lv): {"expected_return": round(s.expected_return, 6), "volatility": round(s.volatility, 6)}
                        for lv, s in solutions.items()
                    },
                },
            )
    except IntegrityError:
        # Another process stored the same run first.
        return OptimizationRun.objects.get(fingerprint=fingerprint, status=RunStatus.SUCCEEDED)
    return run
