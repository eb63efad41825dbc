"""Advisors' what-if: re-solve one level of a stored optimization run under other constraints.

Nothing is written: the result is shown next to the model portfolio of the same level and
discarded. The estimates are rebuilt from the run's own inputs (its universe, estimation
window and as-of date), so with the run's constraints the what-if reproduces its model portfolio.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, replace
from decimal import Decimal

import numpy as np

from advisor.errors import InvalidInputError, InvalidStateError

from ..models import ModelPortfolio, OptimizationRun
from ..optimize import OptimizationError
from ..outlook import bad_year_return
from ..personal import PersonalTargetSolver, house_constraints
from ..rebalance import WEIGHT_STEP, ZERO
from ..selectors import model_portfolio_for, model_universe
from .optimization import ModelPortfolioError, decimal_weights, run_market


class WhatIfInfeasibleError(InvalidInputError):
    """The constraints admit no fully invested long-only portfolio."""


@dataclass(frozen=True)
class WhatIfWeight:
    ticker: str
    name: str
    asset_class: str
    weight: Decimal
    model_weight: Decimal
    excluded: bool

    @property
    def difference(self) -> Decimal:
        return self.weight - self.model_weight


@dataclass(frozen=True)
class WhatIf:
    run: OptimizationRun
    risk_level: int
    max_weight: Decimal
    excluded: tuple[str, ...]
    weights: list[WhatIfWeight]
    expected_return: Decimal
    volatility: Decimal
    bad_year: Decimal
    model: ModelPortfolio | None
    model_bad_year: Decimal | None
    # False when the prices up to the run's date changed since it ran (a re-import): the estimates differ.
    inputs_match_run: bool
    seconds: float

    @property
    def total(self) -> Decimal:
        return sum((w.weight for w in self.weights), ZERO)

    @property
    def model_total(self) -> Decimal:
        return sum((w.model_weight for w in self.weights), ZERO)


def _check_feasible(*, fund_count: int, excluded_count: int, max_weight: Decimal) -> None:
    """Refuse before solving, naming the constraint: at most ``max_weight`` in each fund still allowed."""
    allowed = fund_count - excluded_count
    if allowed == 0:
        raise WhatIfInfeasibleError(
            f"Infeasible: all {fund_count} funds are excluded, so nothing can be held. Keep at least one fund."
        )
    reachable = max_weight * allowed
    if reachable < 1:
        needed = (Decimal(1) / allowed).quantize(Decimal("0.0001"))
        raise WhatIfInfeasibleError(
            f"Infeasible: the maximum weight per fund of {max_weight * 100:.1f}% across the {allowed} funds "
            f"allowed ({excluded_count} excluded) adds up to {reachable * 100:.1f}%, less than the 100% a fully "
            f"invested portfolio needs. Raise the maximum weight per fund to at least {needed * 100:.2f}% "
            "or exclude fewer funds."
        )


def model_portfolio_whatif(
    *, run: OptimizationRun, risk_level: int, max_weight: Decimal | None = None, excluded: Collection[str] = ()
) -> WhatIf:
    """Solve ``risk_level`` of ``run`` with a maximum weight per fund and excluded funds (upper bound 0)."""
    started = time.perf_counter()
    assets = model_universe(run)
    tickers = [a.ticker for a in assets]
    unknown = sorted(set(excluded) - set(tickers))
    if unknown:
        raise InvalidInputError(
            "Only funds of the model universe can be excluded.",
            fields={"exclude": f"Not in the model universe: {', '.join(unknown)}."},
        )
    if not 1 <= risk_level <= 10:
        raise InvalidInputError("Risk level must be 1-10.", fields={"risk_level": "Choose a level from 1 to 10."})
    cap = max_weight if max_weight is not None else Decimal(str(run.parameters["max_asset_weight"]))
    _check_feasible(fund_count=len(tickers), excluded_count=len(set(excluded)), max_weight=cap)

    inputs_match_run = True
    try:
        policy, inputs = run_market(run)
    except ModelPortfolioError as exc:
        raise InvalidStateError(f"The run's prices cannot be rebuilt: {exc}") from exc
    classes = list(run.parameters["classes"])
    upper = np.array([0.0 if t in excluded else float(cap) for t in tickers])
    constraints = replace(house_constraints(policy, classes, risk_level), upper=upper)
    try:
        solution = PersonalTargetSolver(tickers, classes).solve(
            constraints, inputs.mu, inputs.sigma, policy.gamma(risk_level), method="clarabel"
        )
    except OptimizationError as exc:
        raise WhatIfInfeasibleError(f"The optimizer found no portfolio under these constraints: {exc}") from exc

    model = model_portfolio_for(risk_level=risk_level, run=run)
    model_weights = {w.asset.ticker: w.weight for w in model.weights.all()} if model else {}
    weights = [
        WhatIfWeight(
            ticker=asset.ticker,
            name=asset.name,
            asset_class=asset.asset_class.name,
            weight=weight,
            model_weight=model_weights.get(asset.ticker, ZERO),
            excluded=asset.ticker in excluded,
        )
        for asset, weight in zip(assets, decimal_weights(solution.weights, float(cap)), strict=True)
    ]
    weights.sort(key=lambda w: (-w.weight, -w.model_weight, w.ticker))
    expected_return = Decimal(repr(solution.expected_return)).quantize(WEIGHT_STEP)
    volatility = Decimal(repr(solution.volatility)).quantize(WEIGHT_STEP)
    return WhatIf(
        run=run,
        risk_level=risk_level,
        max_weight=cap,
        excluded=tuple(sorted(set(excluded))),
        weights=weights,
        expected_return=expected_return,
        volatility=volatility,
        bad_year=bad_year_return(expected_return, volatility),
        model=model,
        model_bad_year=bad_year_return(model.expected_return, model.volatility) if model else None,
        inputs_match_run=inputs_match_run,
        seconds=round(time.perf_counter() - started, 3),
    )
