"""The model portfolios of the default policy on the FULL shipped prices form an efficient frontier.

No database: the prices are read from portfolios/data/etf_prices.csv.gz once for the module, and each date's
model portfolios are solved once (estimation, then the reference Clarabel path of the model build) and shared
by the tests. The dates: the 2020 crash (a window shortened by the funds that start in 2006-2007), the end of
the 2022 bond rout, and the last shipped date.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from compliance.rules import VOLATILITY_BANDS
from portfolios.estimation import history_window
from portfolios.personal import CLASS_KIND, PersonalTarget, PersonalTargetSolver, house_constraints
from portfolios.policy import RISK_LEVELS, OptimizationPolicy
from portfolios.services.optimization import MODEL_METHOD, model_inputs
from portfolios.universe import ASSETS

DATA = Path(__file__).resolve().parents[2] / "portfolios" / "data" / "etf_prices.csv.gz"
DATES = ("2020-03-31", "2022-12-30", "2026-07-31")
TOLERANCE = 1e-6
POLICY = OptimizationPolicy()
TICKERS = sorted(ticker for ticker, _, _, in_model in ASSETS if in_model)
CLASSES = [next(code for t, _, code, _ in ASSETS if t == ticker) for ticker in TICKERS]


@dataclass(frozen=True)
class Frontier:
    window: pd.DataFrame
    flags: list[str]
    levels: dict[int, PersonalTarget]


@cache
def _prices() -> pd.DataFrame:
    frame = pd.read_csv(DATA, usecols=["date", "ticker", "adj_close"], parse_dates=["date"])
    frame = frame[frame["ticker"].isin(TICKERS)]
    return frame.pivot(index="date", columns="ticker", values="adj_close").sort_index()[TICKERS]


@cache
def frontier(as_of: str) -> Frontier:
    prices = _prices().loc[:as_of]
    window, flags = history_window(prices, years=POLICY.estimation_years, min_years=POLICY.min_history_years)
    inputs = model_inputs(window, CLASSES, POLICY)
    solver = PersonalTargetSolver(TICKERS, CLASSES)
    levels = {
        level: solver.solve(
            house_constraints(POLICY, CLASSES, level), inputs.mu, inputs.sigma, POLICY.gamma(level), method=MODEL_METHOD
        )
        for level in RISK_LEVELS
    }
    return Frontier(window, flags, levels)


def share(weights: np.ndarray, group: str) -> float:
    """The weight of an asset class, or of every class of a kind."""
    return float(sum(w for w, c in zip(weights, CLASSES, strict=True) if group in (c, CLASS_KIND[c])))


def test_the_full_data_has_every_model_fund() -> None:
    assert list(_prices().columns) == TICKERS and len(TICKERS) == 16
    assert _prices().index[-1] == pd.Timestamp("2026-07-31")


@pytest.mark.parametrize("as_of", DATES)
def test_every_level_obeys_the_house_constraints(as_of: str) -> None:
    for level, solution in frontier(as_of).levels.items():
        weights = solution.weights
        assert abs(weights.sum() - 1) <= TOLERANCE, level
        assert weights.min() >= -TOLERANCE and weights.max() <= POLICY.max_asset_weight + TOLERANCE, level
        for group, (low, high) in POLICY.class_limits.items():
            assert low - TOLERANCE <= share(weights, group) <= high + TOLERANCE, (level, group)
        assert share(weights, "bond") + share(weights, "cash") >= POLICY.bond_floor(level) - TOLERANCE, level


@pytest.mark.parametrize("as_of", DATES)
def test_risk_return_and_equity_never_fall_as_the_level_rises(as_of: str) -> None:
    levels = frontier(as_of).levels
    volatility = [levels[level].volatility for level in RISK_LEVELS]
    expected = [levels[level].expected_return for level in RISK_LEVELS]
    equity = [share(levels[level].weights, "equity") for level in RISK_LEVELS]
    for series in (volatility, expected, equity):
        assert all(later >= earlier - TOLERANCE for earlier, later in pairwise(series)), series
    # and the frontier actually spreads: not ten copies of one portfolio
    assert volatility[-1] > 3 * volatility[0] and equity[-1] > 0.6 > equity[0]


@pytest.mark.parametrize("as_of", DATES)
def test_compliance_volatility_bands_accept_the_model_portfolios(as_of: str) -> None:
    for level, solution in frontier(as_of).levels.items():
        low, high = VOLATILITY_BANDS[level]
        assert low <= solution.volatility <= high, (level, solution.volatility)


def test_the_2020_window_is_shortened_to_the_late_funds_and_says_so() -> None:
    result = frontier("2020-03-31")
    assert result.window.index[0] == pd.Timestamp("2007-09-10")  # MUB, the latest of them, starts
    [flag] = result.flags
    assert flag.startswith("Estimation window shortened from 15 to 12.6 years (2007-09-10 to 2020-03-31)")
    for late in ("BIL from 2007-05-30", "DBC from 2006-02-06", "HYG from 2007-04-11", "MUB from 2007-09-10",
                 "VEA from 2007-07-26"):  # fmt: skip
        assert late in flag


@pytest.mark.parametrize("as_of", DATES[1:])
def test_later_windows_have_fifteen_years_and_no_flag(as_of: str) -> None:
    result = frontier(as_of)
    assert result.flags == []
    years = (result.window.index[-1] - result.window.index[0]).days / 365.25
    assert 14.9 < years <= 15
