"""Expected-return and covariance estimators for the optimizer (pure: numpy, pandas, scikit-learn).

Conventions shared by every function here
-----------------------------------------
- Prices are a wide frame (dates x tickers) of adjusted closes, i.e. total-return series.
- Daily returns are simple returns ``p_t / p_(t-1) - 1`` (``daily_returns``): the definition used by
  ``portfolios.estimation.estimate`` and by PyPortfolioOpt's default (``log_returns=False``).
- Annualization is linear with 252 trading days: means x 252, covariances x 252 (no compounding).
- Missing or non-positive prices are refused with the tickers named. Nothing is forward-filled or
  zero-filled: a fund without the history gets an error, not an invented history.
- Results are numpy arrays in the order of the input columns (tickers) or of the covariance's rows.

Covariance (annualized)
-----------------------
- ``ledoit_wolf``: scikit-learn's ``LedoitWolf``, shrinking the sample covariance towards a scaled
  identity with the analytically optimal intensity. The same numbers as ``estimation.estimate``.
- ``oas``: scikit-learn's ``OAS`` (oracle approximating shrinkage), same target, another intensity.
- ``exponentially_weighted``: weights ``0.5 ** (age / half_life_days)`` (age 0 = latest day),
  normalized to sum to one, returns demeaned with the *weighted* mean, no small-sample correction.
  Default half-life 126 trading days (six months): an effective sample of about 2h/ln2 = 364 days,
  reacting within a year to a change of regime without following every month's noise.
- ``check_psd`` checks symmetry and eigenvalues and can repair a matrix that is not positive
  definite by clipping its eigenvalues to a small floor.

Expected returns (annualized)
-----------------------------
- ``historical_mean``: arithmetic mean of daily returns x 252, refusing funds with too short a history.
- ``equilibrium_returns``: reverse optimization, ``risk_free + risk_aversion * Sigma @ w_market``: the
  returns under which the market portfolio is the mean-variance optimum.
- ``black_litterman``: the posterior mean (and covariance) after blending a prior with views ``P mu = Q``
  of uncertainty ``Omega`` (default He-Litterman ``diag(tau P Sigma P')``).
- ``estimate_inputs`` dispatches on ``ReturnsMethod`` and ``CovarianceMethod`` and PSD-checks sigma.

Recommended defaults: ``ReturnsMethod.BLACK_LITTERMAN`` with ``CovarianceMethod.LEDOIT_WOLF``
--------------------------------------------------------------------------------------------------
Historical means are too noisy to optimize on. The standard error of an annualized mean estimated
from T years is sigma / sqrt(T), whatever the sampling frequency: VTI's volatility over the shipped
last ten years is 18%, so its ten-year mean is known to +/- 5.8% a year, as large as the equity
premium being estimated; and a mean-variance optimizer concentrates exactly on the funds whose
means happen to be overestimated.
Equilibrium returns instead come from the covariance, which daily data estimate far more precisely,
and from market weights; they are consistent with each other, change slowly, and lead an
unconstrained optimizer back to the market portfolio rather than to corners. Black-Litterman keeps
that anchor and lets an advisor tilt it with explicit, audited views; with no views it returns the
equilibrium itself. It needs market weights and a risk-free rate, which the caller must supply
(there is no silent default for either).

Ledoit-Wolf is the recommended covariance: the shrinkage intensity is estimated, not tuned; it
stabilizes the smallest eigenvalues (the short-bond and T-bill directions that drive low-risk
portfolios); and it is what ``estimation.estimate`` already uses, so choosing it changes no existing
result. OAS gives nearly the same matrix. The exponentially weighted estimate follows the latest
regime, at the price of more turnover in the model portfolios; it suits risk monitoring better than
strategic allocation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.covariance import OAS, LedoitWolf

from .estimation import TRADING_DAYS, EstimationError

FloatArray = npt.NDArray[np.float64]

DEFAULT_HALF_LIFE_DAYS = 126.0  # six months of trading days; see the module docstring
DEFAULT_MIN_YEARS = 2.0  # below this a fund's mean return is mostly noise (and shorter than any window we use)
DEFAULT_TAU = 0.05  # weight of the prior's uncertainty relative to the covariance (He and Litterman)
DEFAULT_RISK_AVERSION = 2.5  # market price of risk for reverse optimization (He and Litterman 1999)
PSD_FLOOR = 1e-10  # smallest eigenvalue after a repair, in annualized variance (a 0.001% volatility)
PSD_TOLERANCE = 1e-10  # eigenvalues above -tolerance x largest |eigenvalue| count as rounding, not failure
SYMMETRY_TOLERANCE = 1e-10  # relative to the largest |entry|; beyond it the matrix is a bug, not rounding
WEIGHT_SUM_TOLERANCE = 1e-6
DAYS_PER_YEAR = 365.25


class CovarianceError(EstimationError):
    """A covariance matrix that is not square, finite, symmetric or positive semidefinite."""


class ReturnsMethod(StrEnum):
    HISTORICAL_MEAN = "historical_mean"
    EQUILIBRIUM = "equilibrium"
    BLACK_LITTERMAN = "black_litterman"


class CovarianceMethod(StrEnum):
    LEDOIT_WOLF = "ledoit_wolf"
    OAS = "oas"
    EXPONENTIALLY_WEIGHTED = "exponentially_weighted"


RECOMMENDED_RETURNS_METHOD = ReturnsMethod.BLACK_LITTERMAN
RECOMMENDED_COVARIANCE_METHOD = CovarianceMethod.LEDOIT_WOLF


@dataclass(frozen=True)
class BlackLittermanPosterior:
    mean: FloatArray  # posterior expected returns
    covariance: FloatArray  # He-Litterman posterior covariance: Sigma + (posterior uncertainty of the mean)


@dataclass(frozen=True)
class Views:
    """Black-Litterman views ``picking @ mu = targets``, one row per view, annualized."""

    picking: FloatArray  # P, K x N
    targets: FloatArray  # Q, K
    uncertainty: FloatArray | None = None  # Omega, K x K; None means He-Litterman diag(tau P Sigma P')


@dataclass(frozen=True)
class EstimatedInputs:
    tickers: tuple[str, ...]
    mu: FloatArray  # annualized expected returns
    sigma: FloatArray  # annualized covariance, PSD-checked
    returns_method: ReturnsMethod
    covariance_method: CovarianceMethod
    covariance_repaired: bool  # check_psd clipped eigenvalues
    observations: int  # daily returns used for the covariance


# --- returns -------------------------------------------------------------------------------------


def _names(tickers: Sequence[object]) -> str:
    return ", ".join(sorted(str(t) for t in tickers))


def _require_prices(prices: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(prices, pd.DataFrame) or prices.empty or prices.shape[1] == 0:
        raise EstimationError("No prices to estimate from.")
    if not isinstance(prices.index, pd.DatetimeIndex):
        raise EstimationError("Prices must be indexed by date (a DatetimeIndex).")
    if prices.index.has_duplicates:
        raise EstimationError("Prices contain duplicate dates.")
    if prices.columns.has_duplicates:
        raise EstimationError(
            f"Prices contain duplicate tickers: {_names(prices.columns[prices.columns.duplicated()])}."
        )
    prices = prices.sort_index().astype(float)
    bad = [t for t in prices.columns if (prices[t] <= 0).any() or np.isinf(prices[t]).any()]
    if bad:
        raise EstimationError(f"Prices must be positive and finite; not so for: {_names(bad)}.")
    return prices


def daily_returns(prices: pd.DataFrame) -> pd.DataFrame:
    """Simple daily returns of a complete price window; refuses any missing price, naming the tickers."""
    prices = _require_prices(prices)
    missing = [t for t in prices.columns if prices[t].isna().any()]
    if missing:
        raise EstimationError(
            f"Prices missing for: {_names(missing)}. Use a window every fund covers "
            "(estimation.estimation_window) or import the history; nothing is filled in."
        )
    if len(prices) < 3:
        raise EstimationError(f"Need at least 3 prices (2 returns) per fund, have {len(prices)}.")
    return prices.pct_change(fill_method=None).iloc[1:]


def _returns_matrix(returns: pd.DataFrame) -> FloatArray:
    if not isinstance(returns, pd.DataFrame) or returns.shape[1] == 0:
        raise EstimationError("Returns must be a non-empty date x ticker DataFrame.")
    if len(returns) < 2:
        raise EstimationError(f"Need at least 2 daily returns, have {len(returns)}.")
    values = returns.to_numpy(dtype=float)
    bad = [t for t, ok in zip(returns.columns, np.isfinite(values).all(axis=0), strict=True) if not ok]
    if bad:
        raise EstimationError(f"Returns missing or not finite for: {_names(bad)}; nothing is filled in.")
    return values


# --- covariance ----------------------------------------------------------------------------------


def ledoit_wolf(returns: pd.DataFrame) -> FloatArray:
    """Annualized Ledoit-Wolf covariance of daily returns (shrinkage towards a scaled identity)."""
    values = _returns_matrix(returns)
    return np.asarray(LedoitWolf().fit(values).covariance_, dtype=np.float64) * TRADING_DAYS


def oas(returns: pd.DataFrame) -> FloatArray:
    """Annualized oracle approximating shrinkage (OAS) covariance of daily returns."""
    values = _returns_matrix(returns)
    return np.asarray(OAS().fit(values).covariance_, dtype=np.float64) * TRADING_DAYS


def exponential_weights(observations: int, *, half_life_days: float) -> FloatArray:
    """Weights 0.5 ** (age / half_life), oldest first, summing to one (the last day has age 0)."""
    if not (math.isfinite(half_life_days) and half_life_days > 0):
        raise EstimationError(f"The half-life must be a positive number of trading days, got {half_life_days}.")
    ages = np.arange(observations - 1, -1, -1, dtype=np.float64)
    weights = 0.5 ** (ages / half_life_days)
    return np.asarray(weights / weights.sum(), dtype=np.float64)


def span_for_half_life(half_life_days: float) -> float:
    """The pandas / PyPortfolioOpt ``span`` with the same daily decay: alpha = 2 / (span + 1) = 1 - 0.5 ** (1/h)."""
    if not (math.isfinite(half_life_days) and half_life_days > 0):
        raise EstimationError(f"The half-life must be a positive number of trading days, got {half_life_days}.")
    alpha = -math.expm1(math.log(0.5) / half_life_days)
    return 2.0 / alpha - 1.0


def exponentially_weighted(returns: pd.DataFrame, *, half_life_days: float = DEFAULT_HALF_LIFE_DAYS) -> FloatArray:
    """Annualized exponentially weighted covariance: sum_t w_t (r_t - m)(r_t - m)' x 252, m = sum_t w_t r_t.

    The weights are those of ``exponential_weights``. Demeaning with the weighted mean makes this the
    covariance of the weighted empirical distribution; there is no small-sample correction.
    """
    values = _returns_matrix(returns)
    weights = exponential_weights(len(values), half_life_days=half_life_days)
    centered = values - weights @ values
    covariance = (centered * weights[:, np.newaxis]).T @ centered
    return np.asarray((covariance + covariance.T) / 2 * TRADING_DAYS, dtype=np.float64)


def _checked_psd(
    matrix: npt.ArrayLike, *, repair: bool, floor: float = PSD_FLOOR, tolerance: float = PSD_TOLERANCE
) -> tuple[FloatArray, bool]:
    values = np.asarray(matrix, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != values.shape[1] or values.shape[0] == 0:
        raise CovarianceError(f"A covariance matrix must be square and non-empty, got shape {values.shape}.")
    if not np.isfinite(values).all():
        raise CovarianceError("The covariance matrix has missing or infinite entries.")
    if not floor > 0:
        raise CovarianceError(f"The eigenvalue floor must be positive, got {floor}.")
    scale = float(np.abs(values).max()) or 1.0
    asymmetry = float(np.abs(values - values.T).max())
    if asymmetry > SYMMETRY_TOLERANCE * scale:
        # Never repaired: an asymmetric covariance is a bug upstream, not rounding.
        raise CovarianceError(f"The covariance matrix is not symmetric: largest |S - S'| is {asymmetry:.3g}.")
    symmetric = (values + values.T) / 2
    eigenvalues, vectors = np.linalg.eigh(symmetric)
    smallest = float(eigenvalues[0])
    if repair:
        if smallest >= floor:
            return symmetric, False
        # Aim a rounding margin above the floor so the rebuilt matrix's own eigenvalues stay at or above it.
        margin = 16 * len(eigenvalues) * np.finfo(np.float64).eps * float(np.abs(eigenvalues).max())
        rebuilt = (vectors * np.maximum(eigenvalues, floor + margin)) @ vectors.T
        return (rebuilt + rebuilt.T) / 2, True
    allowed = tolerance * max(float(np.abs(eigenvalues).max()), floor)
    if smallest < -allowed:
        raise CovarianceError(
            f"The covariance matrix is not positive semidefinite: smallest eigenvalue {smallest:.6g} "
            f"(tolerance {-allowed:.3g}). Use a shrinkage estimator or check_psd(..., repair=True)."
        )
    return symmetric, False


def check_psd(
    matrix: npt.ArrayLike, *, repair: bool, floor: float = PSD_FLOOR, tolerance: float = PSD_TOLERANCE
) -> FloatArray:
    """A symmetric positive semidefinite copy of ``matrix``, or ``CovarianceError``.

    Asymmetry beyond rounding is always refused. Without ``repair``, an eigenvalue below
    ``-tolerance x largest |eigenvalue|`` is refused, naming the smallest eigenvalue. With ``repair``,
    every eigenvalue below ``floor`` is raised to it and the matrix rebuilt (so it is positive definite
    and Cholesky-factorizable, smallest eigenvalue at least ``floor``); a matrix already above the floor
    is returned unchanged.
    """
    checked, _ = _checked_psd(matrix, repair=repair, floor=floor, tolerance=tolerance)
    return checked


# --- expected returns ----------------------------------------------------------------------------


def historical_mean(prices: pd.DataFrame, *, min_years: float = DEFAULT_MIN_YEARS) -> FloatArray:
    """Annualized arithmetic mean of each fund's daily simple returns over its own history in ``prices``.

    A fund may start later than the others (missing values before its first price), but its history
    must then be complete, and span at least ``min_years`` calendar years from its first price to the
    last date; otherwise the fund is refused by name.
    """
    if not (math.isfinite(min_years) and min_years > 0):
        raise EstimationError(f"The minimum history must be a positive number of years, got {min_years}.")
    prices = _require_prices(prices)
    last = prices.index[-1]
    gaps: list[str] = []
    short: list[str] = []
    for ticker in prices.columns:
        column = prices[ticker]
        first = column.first_valid_index()
        if first is None:
            short.append(f"{ticker} (no prices)")
            continue
        if column.loc[first:].isna().any():
            gaps.append(str(ticker))
            continue
        years = (last - first).days / DAYS_PER_YEAR
        if years < min_years:
            short.append(f"{ticker} ({years:.2f} years)")
    if gaps:
        raise EstimationError(f"Prices missing inside the history of: {_names(gaps)}; nothing is filled in.")
    if short:
        raise EstimationError(
            f"Less than {min_years:g} years of prices for: {', '.join(sorted(short))}. "
            "Drop these funds, import their history, or use equilibrium returns."
        )
    returns = prices.pct_change(fill_method=None)
    return np.asarray(returns.mean(axis=0).to_numpy(dtype=float) * TRADING_DAYS, dtype=np.float64)


def _square(matrix: npt.ArrayLike, name: str) -> FloatArray:
    values = np.asarray(matrix, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != values.shape[1] or values.shape[0] == 0:
        raise EstimationError(f"{name} must be a square non-empty matrix, got shape {values.shape}.")
    if not np.isfinite(values).all():
        raise EstimationError(f"{name} has missing or infinite entries.")
    return values


def _vector(vector: npt.ArrayLike, name: str, length: int) -> FloatArray:
    values = np.asarray(vector, dtype=np.float64)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.shape != (length,):
        raise EstimationError(f"{name} must have {length} entries (one per asset), got shape {values.shape}.")
    if not np.isfinite(values).all():
        raise EstimationError(f"{name} has missing or infinite entries.")
    return values


def equilibrium_returns(
    covariance: npt.ArrayLike, market_weights: npt.ArrayLike, *, risk_aversion: float, risk_free: float
) -> FloatArray:
    """Reverse optimization: ``risk_free + risk_aversion * Sigma @ w`` (annualized, like ``covariance``).

    ``market_weights`` are the market portfolio's weights in the covariance's asset order: non-negative
    and summing to one (they are not rescaled, so a wrong input is not silently accepted).
    """
    sigma = _square(covariance, "covariance")
    weights = _vector(market_weights, "market_weights", sigma.shape[0])
    if (weights < 0).any():
        raise EstimationError("market_weights must not be negative.")
    if abs(weights.sum() - 1.0) > WEIGHT_SUM_TOLERANCE:
        raise EstimationError(f"market_weights must sum to 1, they sum to {weights.sum():.6f}.")
    if not (math.isfinite(risk_aversion) and risk_aversion > 0):
        raise EstimationError(f"risk_aversion must be positive, got {risk_aversion}.")
    if not math.isfinite(risk_free):
        raise EstimationError(f"risk_free must be finite, got {risk_free}.")
    return np.asarray(risk_aversion * sigma @ weights + risk_free, dtype=np.float64)


def implied_risk_aversion(market_returns: pd.Series, risk_free: float) -> float:
    """The market price of risk ``(252 mean - risk_free) / (252 var)`` from daily market returns (var with ddof=1)."""
    values = np.asarray(market_returns, dtype=np.float64)
    if values.ndim != 1 or len(values) < 2:
        raise EstimationError(f"Need a series of at least 2 daily market returns, got shape {values.shape}.")
    if not np.isfinite(values).all():
        raise EstimationError("Market returns have missing or infinite values; nothing is filled in.")
    excess = float(values.mean()) * TRADING_DAYS - risk_free
    variance = float(values.var(ddof=1)) * TRADING_DAYS
    if variance <= 0:
        raise EstimationError("Market returns have no variance: no risk aversion is implied.")
    if excess <= 0:
        raise EstimationError(
            f"The market's annualized excess return over the window is {excess:.2%}: no positive risk aversion "
            f"is implied. Use a longer window or a fixed risk aversion (e.g. {DEFAULT_RISK_AVERSION})."
        )
    return excess / variance


def _views_matrices(
    n_assets: int, P: npt.ArrayLike, Q: npt.ArrayLike, omega: npt.ArrayLike | None
) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    picking = np.asarray(P, dtype=np.float64)
    if picking.ndim != 2 or picking.shape[1] != n_assets:
        raise EstimationError(
            f"P must be K x {n_assets} (one row per view, one column per asset), got {picking.shape}."
        )
    n_views = picking.shape[0]
    targets = np.asarray(Q, dtype=np.float64)
    if targets.ndim == 2 and targets.shape[1] == 1:
        targets = targets[:, 0]
    if targets.shape != (n_views,):
        raise EstimationError(f"Q must have one entry per view ({n_views}), got shape {targets.shape}.")
    if not (np.isfinite(picking).all() and np.isfinite(targets).all()):
        raise EstimationError("P and Q must be finite.")
    empty = [str(k) for k in range(n_views) if not picking[k].any()]
    if empty:
        raise EstimationError(f"Views {', '.join(empty)} pick no asset (a row of P is all zeros).")
    if omega is None:
        return picking, targets, None
    uncertainty = np.asarray(omega, dtype=np.float64)
    if uncertainty.shape != (n_views, n_views):
        raise EstimationError(f"omega must be {n_views} x {n_views} (views x views), got shape {uncertainty.shape}.")
    try:
        checked = check_psd(uncertainty, repair=False) if n_views else uncertainty
    except CovarianceError as exc:
        raise EstimationError(f"omega is not a valid uncertainty matrix: {exc}") from exc
    return picking, targets, checked


def he_litterman_omega(covariance: npt.ArrayLike, P: npt.ArrayLike, *, tau: float = DEFAULT_TAU) -> FloatArray:
    """Default view uncertainty ``diag(tau P Sigma P')``: each view as uncertain as the prior on its portfolio."""
    sigma = _square(covariance, "covariance")
    picking = np.asarray(P, dtype=np.float64)
    if picking.ndim != 2 or picking.shape[1] != sigma.shape[0]:
        raise EstimationError(f"P must be K x {sigma.shape[0]}, got shape {picking.shape}.")
    return np.asarray(np.diag(np.diag(tau * picking @ sigma @ picking.T)), dtype=np.float64)


def idzorek_omega(
    covariance: npt.ArrayLike, P: npt.ArrayLike, confidences: npt.ArrayLike, *, tau: float = DEFAULT_TAU
) -> FloatArray:
    """View uncertainty from confidences in (0, 1]: ``omega_k = tau (1 - c_k) / c_k p_k Sigma p_k'``.

    Walters' closed form of Idzorek's method: confidence 1 holds the view exactly, confidence 0.5 gives
    the He-Litterman default, and confidence near 0 leaves the prior (a view with zero confidence should
    be dropped instead, so it is refused).
    """
    sigma = _square(covariance, "covariance")
    picking = np.asarray(P, dtype=np.float64)
    if picking.ndim != 2 or picking.shape[1] != sigma.shape[0]:
        raise EstimationError(f"P must be K x {sigma.shape[0]}, got shape {picking.shape}.")
    levels = _vector(confidences, "confidences", picking.shape[0])
    if ((levels <= 0) | (levels > 1)).any():
        raise EstimationError("View confidences must be in (0, 1]; drop a view held with no confidence.")
    variances = np.einsum("kn,nm,km->k", picking, sigma, picking)
    return np.asarray(np.diag(tau * (1 - levels) / levels * variances), dtype=np.float64)


def black_litterman(
    covariance: npt.ArrayLike,
    prior: npt.ArrayLike,
    *,
    P: npt.ArrayLike,
    Q: npt.ArrayLike,
    omega: npt.ArrayLike | None = None,
    tau: float = DEFAULT_TAU,
) -> BlackLittermanPosterior:
    """Black-Litterman posterior of the mean given views ``P mu = Q + e``, ``e ~ N(0, Omega)``.

    ``mean = prior + tau Sigma P' (P tau Sigma P' + Omega)^-1 (Q - P prior)``;
    ``covariance = Sigma + tau Sigma - tau Sigma P' (P tau Sigma P' + Omega)^-1 P tau Sigma`` (He-Litterman).
    ``omega`` defaults to ``diag(tau P Sigma P')``. ``P`` with zero rows (no views) returns the prior.
    The prior and ``Q`` must be on the same basis (both total returns, or both excess returns).
    """
    sigma = _square(covariance, "covariance")
    n_assets = sigma.shape[0]
    pi = _vector(prior, "prior", n_assets)
    if not (math.isfinite(tau) and 0 < tau <= 1):
        raise EstimationError(f"tau must be in (0, 1], got {tau}.")
    picking, targets, uncertainty = _views_matrices(n_assets, P, Q, omega)
    if picking.shape[0] == 0:
        return BlackLittermanPosterior(mean=pi.copy(), covariance=(1 + tau) * sigma)
    if uncertainty is None:
        uncertainty = he_litterman_omega(sigma, picking, tau=tau)
    tau_sigma_pt = tau * sigma @ picking.T
    system = picking @ tau_sigma_pt + uncertainty
    if np.linalg.cond(system) > 1e12:
        raise EstimationError(
            "The views cannot be combined: some are repeated or contradictory with full confidence "
            "(P tau Sigma P' + omega is singular)."
        )
    mean = pi + tau_sigma_pt @ np.linalg.solve(system, targets - picking @ pi)
    posterior = sigma + tau * sigma - tau_sigma_pt @ np.linalg.solve(system, tau_sigma_pt.T)
    return BlackLittermanPosterior(
        mean=np.asarray(mean, dtype=np.float64),
        covariance=np.asarray((posterior + posterior.T) / 2, dtype=np.float64),
    )


def build_views(
    tickers: Sequence[str],
    *,
    absolute: Mapping[str, float] | None = None,
    relative: Sequence[tuple[str, str, float]] = (),
    uncertainty: npt.ArrayLike | None = None,
) -> Views:
    """Views from tickers: ``absolute={"VTI": 0.07}`` (VTI returns 7% a year) and
    ``relative=[("VTI", "AGG", 0.03)]`` (VTI returns 3% a year more than AGG)."""
    position = {t: i for i, t in enumerate(tickers)}
    absolute = absolute or {}
    named = list(absolute) + [t for long, short, _ in relative for t in (long, short)]
    unknown = sorted({t for t in named if t not in position})
    if unknown:
        raise EstimationError(f"Views on funds outside the universe: {', '.join(unknown)}.")
    rows: list[FloatArray] = []
    targets: list[float] = []
    for ticker, target in absolute.items():
        row = np.zeros(len(tickers))
        row[position[ticker]] = 1.0
        rows.append(row)
        targets.append(float(target))
    for long, short, spread in relative:
        if long == short:
            raise EstimationError(f"A relative view needs two different funds, got {long} against itself.")
        row = np.zeros(len(tickers))
        row[position[long]], row[position[short]] = 1.0, -1.0
        rows.append(row)
        targets.append(float(spread))
    picking = np.array(rows, dtype=np.float64).reshape(len(rows), len(tickers))
    checked = None if uncertainty is None else np.asarray(uncertainty, dtype=np.float64)
    return Views(picking=picking, targets=np.array(targets, dtype=np.float64), uncertainty=checked)


# --- dispatcher ----------------------------------------------------------------------------------

_Method = TypeVar("_Method", ReturnsMethod, CovarianceMethod)


def _method(kind: type[_Method], value: _Method | str, name: str) -> _Method:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(m.value for m in kind)
        raise EstimationError(f"Unknown {name} {value!r}; choose one of: {choices}.") from None


def estimate_inputs(
    prices: pd.DataFrame,
    *,
    returns_method: ReturnsMethod | str,
    covariance_method: CovarianceMethod | str,
    market_weights: npt.ArrayLike | None = None,
    risk_aversion: float = DEFAULT_RISK_AVERSION,
    risk_free: float | None = None,
    views: Views | None = None,
    tau: float = DEFAULT_TAU,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    min_years: float = DEFAULT_MIN_YEARS,
    repair: bool = True,
) -> EstimatedInputs:
    """Annualized ``mu`` and PSD-checked ``sigma`` for the optimizer from a price window.

    ``market_weights`` (in the column order of ``prices``) and ``risk_free`` are required by the
    equilibrium and Black-Litterman methods; ``views`` only apply to Black-Litterman and are refused
    otherwise rather than ignored. The equilibrium is computed from the checked ``sigma``.
    """
    returns_kind = _method(ReturnsMethod, returns_method, "returns method")
    covariance_kind = _method(CovarianceMethod, covariance_method, "covariance method")
    if views is not None and returns_kind is not ReturnsMethod.BLACK_LITTERMAN:
        raise EstimationError(f"Views only apply to {ReturnsMethod.BLACK_LITTERMAN.value}, not {returns_kind.value}.")
    historical_kind = returns_kind is ReturnsMethod.HISTORICAL_MEAN
    missing_market = f"{returns_kind.value} returns need market_weights and risk_free."
    if not historical_kind and (market_weights is None or risk_free is None):
        raise EstimationError(missing_market)  # before any computation
    historical = historical_mean(prices, min_years=min_years) if historical_kind else None
    returns = daily_returns(prices)
    if covariance_kind is CovarianceMethod.LEDOIT_WOLF:
        raw = ledoit_wolf(returns)
    elif covariance_kind is CovarianceMethod.OAS:
        raw = oas(returns)
    else:
        raw = exponentially_weighted(returns, half_life_days=half_life_days)
    sigma, repaired = _checked_psd(raw, repair=repair)
    if historical is not None:
        mu = historical
    elif market_weights is not None and risk_free is not None:
        mu = equilibrium_returns(sigma, market_weights, risk_aversion=risk_aversion, risk_free=risk_free)
        if views is not None:
            mu = black_litterman(sigma, mu, P=views.picking, Q=views.targets, omega=views.uncertainty, tau=tau).mean
    else:
        raise EstimationError(missing_market)
    return EstimatedInputs(
        tickers=tuple(str(t) for t in returns.columns),
        mu=mu,
        sigma=sigma,
        returns_method=returns_kind,
        covariance_method=covariance_kind,
        covariance_repaired=repaired,
        observations=len(returns),
    )
