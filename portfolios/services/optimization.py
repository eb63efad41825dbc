"""Estimate, optimize and store the model portfolio of every risk level."""

from __future__ import annotations

import hashlib
import time
from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import IntegrityError, transaction

from compliance.audit import audit_record
from compliance.chain import canonical_json

from ..estimation import EstimationError, estimate, estimation_window, snapshot_hash
from ..models import Asset, ModelPortfolio, ModelPortfolioWeight, OptimizationRun, Price, RunStatus
from ..optimize import SOLVER, MeanVarianceProblem, OptimizationError, risk_aversion_for_level
from ..prices import wide_prices
from ..rebalance import WEIGHT_STEP

RISK_LEVELS = range(1, 11)


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


def _parameters(tickers: list[str]) -> dict[str, object]:
    return {
        "method": "mean_variance",
        "expected_returns": "historical_arithmetic_mean",
        "covariance": "ledoit_wolf",
        "estimation_years": settings.ADVISOR["ESTIMATION_YEARS"],
        "max_asset_weight": settings.ADVISOR["MAX_ASSET_WEIGHT"],
        "risk_aversion": {str(level): round(risk_aversion_for_level(level), 6) for level in RISK_LEVELS},
        "universe": tickers,
        "solver": SOLVER,
    }


def model_price_window(*, tickers: list[str], as_of: date, years: int) -> pd.DataFrame:
    """The prices the estimates come from: the last ``years`` up to ``as_of`` of every fund in ``tickers``.

    Shared by the build and the advisors' what-if, so both estimate from the same window.
    """
    rows = Price.objects.filter(asset__ticker__in=tickers, date__lte=as_of).values_list(
        "asset__ticker", "date", "close"
    )
    prices = wide_prices((ticker, day, float(close)) for ticker, day, close in rows)
    missing = sorted(set(tickers) - set(prices.columns))
    if missing:
        raise ModelPortfolioError(f"No prices for model funds: {', '.join(missing)}. Run import_prices first.")
    try:
        return estimation_window(prices[tickers], years=years)
    except EstimationError as exc:
        raise ModelPortfolioError(str(exc)) from exc


def model_portfolios_build(*, as_of: date) -> OptimizationRun:
    """Build (or reuse) the model portfolios from the prices up to ``as_of``.

    A run is identified by its data snapshot hash and parameters: the same prices
    and parameters reuse the stored run instead of solving again.
    """
    started = time.perf_counter()
    assets = {a.ticker: a for a in Asset.objects.filter(in_model_universe=True)}
    tickers = sorted(assets)
    window = model_price_window(tickers=tickers, as_of=as_of, years=settings.ADVISOR["ESTIMATION_YEARS"])
    parameters = _parameters(tickers)
    data_hash = snapshot_hash(window)
    fingerprint = hashlib.sha256((data_hash + canonical_json(parameters)).encode()).hexdigest()
    existing = OptimizationRun.objects.filter(fingerprint=fingerprint, status=RunStatus.SUCCEEDED).first()
    if existing is not None:
        return existing
    load_seconds = time.perf_counter() - started

    t0 = time.perf_counter()
    estimates = estimate(window)
    estimate_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    problem = MeanVarianceProblem(len(tickers))
    compile_seconds = time.perf_counter() - t0
    upper = np.full(len(tickers), float(settings.ADVISOR["MAX_ASSET_WEIGHT"]))
    solutions = {}
    try:
        for level in RISK_LEVELS:
            solutions[level] = problem.solve(
                estimates.expected_returns, estimates.covariance, risk_aversion_for_level(level), upper
            )
    except OptimizationError as exc:
        with transaction.atomic():
            run = OptimizationRun.objects.create(
                as_of=as_of,
                data_hash=data_hash,
                fingerprint=fingerprint,
                parameters=parameters,
                solver=SOLVER,
                status=RunStatus.FAILED,
                error=str(exc),
            )
            audit_record(actor=None, action="optimization.failed", obj=run, payload={"error": str(exc)})
        raise ModelPortfolioError(str(exc)) from exc

    timings = {
        "load_seconds": round(load_seconds, 4),
        "estimate_seconds": round(estimate_seconds, 4),
        "first_solve_seconds": round(solutions[1].solve_seconds, 4),
        "compile_seconds": round(compile_seconds, 4),
        "resolve_seconds_mean": round(float(np.mean([s.solve_seconds for s in solutions.values()][1:])), 4),
        "total_seconds": round(time.perf_counter() - started, 4),
    }
    estimates_summary = {
        "window_start": estimates.start.date().isoformat(),
        "window_end": estimates.end.date().isoformat(),
        "observations": estimates.observations,
        "ledoit_wolf_shrinkage": round(estimates.shrinkage, 6),
        "expected_returns": {t: round(float(m), 6) for t, m in zip(tickers, estimates.expected_returns, strict=True)},
        "volatilities": {
            t: round(float(np.sqrt(v)), 6) for t, v in zip(tickers, np.diag(estimates.covariance), strict=True)
        },
    }
    try:
        with transaction.atomic():
            run = OptimizationRun.objects.create(
                as_of=as_of,
                data_hash=data_hash,
                fingerprint=fingerprint,
                parameters=parameters,
                solver=SOLVER,
                status=RunStatus.SUCCEEDED,
                timings=timings,
                estimates=estimates_summary,
            )
            for level, solution in solutions.items():
                portfolio = ModelPortfolio.objects.create(
                    run=run,
                    risk_level=level,
                    risk_aversion=risk_aversion_for_level(level),
                    expected_return=Decimal(repr(solution.expected_return)).quantize(WEIGHT_STEP),
                    volatility=Decimal(repr(solution.volatility)).quantize(WEIGHT_STEP),
                    solver_status=solution.status,
                )
                ModelPortfolioWeight.objects.bulk_create(
                    [
                        ModelPortfolioWeight(portfolio=portfolio, asset=assets[t], weight=w)
                        for t, w in zip(
                            tickers,
                            decimal_weights(solution.weights, settings.ADVISOR["MAX_ASSET_WEIGHT"]),
                            strict=True,
                        )
                        if w > 0
                    ]
                )
            audit_record(
                actor=None,
                action="optimization.succeeded",
                obj=run,
                payload={
                    "as_of": as_of,
                    "data_hash": data_hash,
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
