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


def history_window(prices: pd.DataFrame, *, years: float, min_years: float) -> tuple[pd.DataFrame, list[str]]:
    """The last ``years`` of a wide price frame, shortened to the funds' common history when one of them starts
    later, and the flags that say so. Nothing is filled: a shortened window is named in the flags, a window
    shorter than ``min_years`` (or than ``years``, if smaller) is refused naming the late funds, and a price
    missing inside the window is refused naming its fund.
    """
    if prices.empty:
        raise EstimationError("No prices to estimate from.")
    prices = prices.sort_index()
    end = prices.index[-1]
    start = end - pd.DateOffset(years=years)
    firsts = {str(t): prices[t].first_valid_index() for t in prices.columns}
    never = sorted(t for t, first in firsts.items() if first is None)
    if never:
        raise EstimationError(f"No prices at all for: {', '.join(never)}.")
    late = {t: first for t, first in firsts.items() if first > start}
    flags: list[str] = []
    if late:
        common = max(late.values())
        span = (end - common).days / 365.25
        needed = min(min_years, years)
        named = ", ".join(f"{t} from {first.date().isoformat()}" for t, first in sorted(late.items()))
        if span < needed:
            raise EstimationError(
                f"Only {span:.1f} years of common history up to {end.date().isoformat()} ({named}); "
                f"at least {needed:g} are needed."
            )
        flags.append(
            f"Estimation window shortened from {years:g} to {span:.1f} years ({common.date().isoformat()} to "
            f"{end.date().isoformat()}): prices start later for {named}."
        )
        start = common - pd.Timedelta(days=1)
    window = prices.loc[prices.index > start]
    missing = [str(t) for t in window.columns if window[t].isna().any()]
    if missing:
        raise EstimationError(
            f"Prices missing inside the estimation window for: {', '.join(sorted(missing))}. "
            "Import the missing history: nothing is filled in."
        )
    if len(window) < TRADING_DAYS:
        raise EstimationError(f"Need at least {TRADING_DAYS} days of prices, have {len(window)}.")
    return window, flags
