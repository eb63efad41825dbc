"""Estimating expected returns and covariance from daily prices (pure: pandas, numpy, scikit-learn)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.covariance import LedoitWolf

TRADING_DAYS = 252


class EstimationError(ValueError):
    pass


@dataclass(frozen=True)
class Estimates:
    tickers: tuple[str, ...]
    expected_returns: np.ndarray  # annualized arithmetic mean of daily simple returns
    covariance: np.ndarray  # annualized Ledoit-Wolf shrunk covariance
    shrinkage: float
    start: pd.Timestamp
    end: pd.Timestamp
    observations: int


def snapshot_hash(prices: pd.DataFrame) -> str:
    """SHA-256 of the exact price matrix used: dates, tickers and values, order-independent."""
    frame = prices.sort_index().sort_index(axis=1)
    text = frame.to_csv(float_format="%.6f", date_format="%Y-%m-%d", lineterminator="\n")
    return hashlib.sha256(text.encode()).hexdigest()


def estimation_window(prices: pd.DataFrame, *, years: int) -> pd.DataFrame:
    """The last ``years`` of a wide (date x ticker) price frame; every ticker must cover it."""
    if prices.empty:
        raise EstimationError("No prices to estimate from.")
    prices = prices.sort_index()
    start = prices.index[-1] - pd.DateOffset(years=years)
    window = prices.loc[prices.index > start]
    missing = [str(t) for t in window.columns if window[t].isna().any()]
    if missing:
        raise EstimationError(
            f"Prices missing inside the {years}-year window for: {', '.join(sorted(missing))}. "
            "Shorten ADVISOR_ESTIMATION_YEARS or import the missing history."
        )
    if len(window) < TRADING_DAYS:
        raise EstimationError(f"Need at least {TRADING_DAYS} days of prices, have {len(window)}.")
    return window


def estimate(prices: pd.DataFrame) -> Estimates:
    """Annualized mean returns and a Ledoit-Wolf covariance from a complete price window."""
    returns = prices.pct_change().iloc[1:]
    values = returns.to_numpy(dtype=float)
    lw = LedoitWolf().fit(values)
    covariance = lw.covariance_ * TRADING_DAYS
    return Estimates(
        tickers=tuple(str(t) for t in prices.columns),
        expected_returns=values.mean(axis=0) * TRADING_DAYS,
        covariance=covariance,
        shrinkage=float(lw.shrinkage_),
        start=prices.index[0],
        end=prices.index[-1],
        observations=len(values),
    )
