"""Return and covariance estimators: agreement with PyPortfolioOpt on the shipped prices, and refusals."""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypfopt import black_litterman as pypfopt_bl
from pypfopt import expected_returns as pypfopt_returns
from pypfopt import risk_models as pypfopt_risk

from portfolios.estimation import TRADING_DAYS, EstimationError, estimate, estimation_window
from portfolios.estimators import (
    DEFAULT_HALF_LIFE_DAYS,
    PSD_FLOOR,
    CovarianceError,
    CovarianceMethod,
    ReturnsMethod,
    black_litterman,
    build_views,
    check_psd,
    daily_returns,
    equilibrium_returns,
    estimate_inputs,
    exponential_weights,
    exponentially_weighted,
    he_litterman_omega,
    historical_mean,
    idzorek_omega,
    implied_risk_aversion,
    ledoit_wolf,
    oas,
    span_for_half_life,
)
from tests.market import DATA

MODEL = ["VTI", "IJR", "VEA", "VWO", "VNQ", "AGG", "SHY", "IEF", "TLT", "TIP", "LQD", "HYG", "MUB", "GLD", "DBC", "BIL"]
# ILLUSTRATIVE market-portfolio weights (rough global asset-class proportions), not market data:
# the tests only need a fixed, plausible, long-only vector summing to one.
CAPS = pd.Series(
    {
        "VTI": 30.0, "IJR": 3.0, "VEA": 14.0, "VWO": 5.0, "VNQ": 2.0, "AGG": 12.0, "SHY": 3.0, "IEF": 4.0,
        "TLT": 3.0, "TIP": 2.0, "LQD": 7.0, "HYG": 2.0, "MUB": 4.0, "GLD": 4.0, "DBC": 1.0, "BIL": 4.0,
    }
)  # fmt: skip
MARKET_WEIGHTS = (CAPS / CAPS.sum())[MODEL].to_numpy()
RISK_FREE = 0.03
DELTA = 2.5


@cache
def prices() -> pd.DataFrame:
    """The model funds' last 10 years of shipped prices (complete: every fund covers the window)."""
    frame = pd.read_csv(DATA, parse_dates=["date"])
    wide = frame.pivot(index="date", columns="ticker", values="adj_close")[MODEL]
    return estimation_window(wide, years=10)


@cache
def returns() -> pd.DataFrame:
    return daily_returns(prices())


@cache
def sigma() -> np.ndarray:
    return ledoit_wolf(returns())


def assert_relative(actual: np.ndarray, expected: np.ndarray, tolerance: float = 1e-8) -> None:
    """Largest absolute difference relative to the largest entry of the reference."""
    scale = np.abs(expected).max()
    assert np.abs(np.asarray(actual) - np.asarray(expected)).max() <= tolerance * scale


# --- covariance against PyPortfolioOpt ---------------------------------------------------------------


def test_ten_year_window_is_complete_simple_returns() -> None:
    # given the 10-year window / when daily returns are taken / then they are pandas' pct_change, as in pypfopt
    assert returns().shape == (len(prices()) - 1, len(MODEL))
    pd.testing.assert_frame_equal(returns(), pypfopt_returns.returns_from_prices(prices()))


def test_ledoit_wolf_matches_pypfopt_and_the_existing_estimate() -> None:
    reference = pypfopt_risk.CovarianceShrinkage(prices(), frequency=252).ledoit_wolf().to_numpy()
    assert_relative(sigma(), reference)
    assert_relative(sigma(), estimate(prices()).covariance)


def test_oas_matches_pypfopt_oracle_approximating() -> None:
    reference = pypfopt_risk.CovarianceShrinkage(prices(), frequency=252).oracle_approximating().to_numpy()
    assert_relative(oas(returns()), reference)


def test_half_life_translates_to_pypfopt_span() -> None:
    # decay per day: 1 - alpha = 1 - 2 / (span + 1) = 0.5 ** (1 / half_life)
    for half_life in (10.0, 63.0, DEFAULT_HALF_LIFE_DAYS, 252.0):
        alpha = 2 / (span_for_half_life(half_life) + 1)
        assert (1 - alpha) ** half_life == pytest.approx(0.5, rel=1e-12)
    # pypfopt's default span of 180 days is a half-life of about 62 days
    assert span_for_half_life(62.0) == pytest.approx(179.0, abs=1.0)


@pytest.mark.parametrize("half_life", [63.0, DEFAULT_HALF_LIFE_DAYS])
def test_exponentially_weighted_matches_pypfopt_exp_cov_up_to_its_demeaning(half_life: float) -> None:
    # pypfopt demeans with the *equally weighted* mean r_bar, then exponentially weights the cross
    # products; we demean with the weighted mean m. Exactly:
    #   pypfopt = ours + 252 (m - r_bar)(m - r_bar)'
    values = returns().to_numpy()
    weights = exponential_weights(len(values), half_life_days=half_life)
    shift = weights @ values - values.mean(axis=0)
    reference = pypfopt_risk.exp_cov(prices(), span=span_for_half_life(half_life), frequency=252).to_numpy()
    ours = exponentially_weighted(returns(), half_life_days=half_life)
    assert_relative(ours + TRADING_DAYS * np.outer(shift, shift), reference)
    # and the term is not negligible: BIL's mean moved with interest rates
    bil = MODEL.index("BIL")
    assert reference[bil, bil] / ours[bil, bil] - 1 > 0.05


def test_exponentially_weighted_on_a_hand_computed_example() -> None:
    # given three daily returns of two funds and a half-life of one day: weights 1/4, 1/2, 1 over 7/4
    frame = pd.DataFrame({"A": [0.01, -0.02, 0.03], "B": [0.00, 0.01, -0.01]})
    w = np.array([1.0, 2.0, 4.0]) / 7.0
    np.testing.assert_allclose(exponential_weights(3, half_life_days=1.0), w, rtol=1e-15)
    mean_a = w @ frame["A"].to_numpy()  # (0.01 - 0.04 + 0.12) / 7 = 0.09 / 7
    mean_b = w @ frame["B"].to_numpy()  # (0 + 0.02 - 0.04) / 7 = -0.02 / 7
    assert (mean_a, mean_b) == (pytest.approx(0.09 / 7), pytest.approx(-0.02 / 7))
    da, db = frame["A"].to_numpy() - 0.09 / 7, frame["B"].to_numpy() + 0.02 / 7
    expected = 252 * np.array([[w @ (da * da), w @ (da * db)], [w @ (da * db), w @ (db * db)]])
    np.testing.assert_allclose(exponentially_weighted(frame, half_life_days=1.0), expected, rtol=1e-12)
    # then a very long half-life tends to the (biased, 1/T) sample covariance
    np.testing.assert_allclose(
        exponentially_weighted(frame, half_life_days=1e9), 252 * frame.cov(ddof=0).to_numpy(), rtol=1e-6
    )


@pytest.mark.parametrize("method", list(CovarianceMethod))
def test_every_covariance_estimate_is_positive_definite(method: CovarianceMethod) -> None:
    estimated = estimate_inputs(
        prices(), returns_method=ReturnsMethod.HISTORICAL_MEAN, covariance_method=method, repair=False
    )
    assert not estimated.covariance_repaired
    assert np.linalg.eigvalsh(estimated.sigma).min() > PSD_FLOOR
    np.testing.assert_array_equal(check_psd(estimated.sigma, repair=False), estimated.sigma)
    np.linalg.cholesky(estimated.sigma)  # what the optimizer does with it


# --- expected returns against PyPortfolioOpt --------------------------------------------------------


def test_historical_mean_matches_pypfopt_arithmetic_mean() -> None:
    reference = pypfopt_returns.mean_historical_return(prices(), compounding=False, frequency=252).to_numpy()
    assert_relative(historical_mean(prices(), min_years=9.9), reference)


def test_equilibrium_returns_match_pypfopt_market_implied_prior() -> None:
    cov = pd.DataFrame(sigma(), index=MODEL, columns=MODEL)
    reference = pypfopt_bl.market_implied_prior_returns(CAPS[MODEL], DELTA, cov, RISK_FREE).to_numpy()
    ours = equilibrium_returns(sigma(), MARKET_WEIGHTS, risk_aversion=DELTA, risk_free=RISK_FREE)
    assert_relative(ours, reference)
    # reverse optimization: the market portfolio is the unconstrained optimum of (mu - rf)'w - delta/2 w'Sw
    np.testing.assert_allclose(np.linalg.solve(DELTA * sigma(), ours - RISK_FREE), MARKET_WEIGHTS, rtol=1e-8)


def test_implied_risk_aversion_matches_pypfopt() -> None:
    reference = pypfopt_bl.market_implied_risk_aversion(prices()["VTI"], risk_free_rate=RISK_FREE)
    assert implied_risk_aversion(returns()["VTI"], RISK_FREE) == pytest.approx(reference, rel=1e-10)


def prior() -> np.ndarray:
    return equilibrium_returns(sigma(), MARKET_WEIGHTS, risk_aversion=DELTA, risk_free=RISK_FREE)


VIEWS = {
    "absolute": build_views(MODEL, absolute={"VWO": 0.10}),
    "relative": build_views(MODEL, relative=[("VTI", "AGG", 0.05)]),
    "both": build_views(MODEL, absolute={"GLD": 0.02, "TLT": 0.06}, relative=[("IJR", "VTI", 0.02)]),
}


@pytest.mark.parametrize("name", list(VIEWS))
def test_black_litterman_matches_pypfopt(name: str) -> None:
    views = VIEWS[name]
    cov = pd.DataFrame(sigma(), index=MODEL, columns=MODEL)
    model = pypfopt_bl.BlackLittermanModel(cov, pi=prior(), P=views.picking, Q=views.targets, tau=0.05)
    posterior = black_litterman(sigma(), prior(), P=views.picking, Q=views.targets, tau=0.05)
    assert_relative(posterior.mean, model.bl_returns().to_numpy())
    assert_relative(posterior.covariance, model.bl_cov().to_numpy())
    np.testing.assert_allclose(he_litterman_omega(sigma(), views.picking), model.omega, rtol=1e-8)


def test_idzorek_omega_matches_pypfopt() -> None:
    views = VIEWS["both"]
    confidences = np.array([0.3, 0.6, 0.9])
    reference = pypfopt_bl.BlackLittermanModel.idzorek_method(
        confidences, sigma(), prior().reshape(-1, 1), views.targets.reshape(-1, 1), views.picking, 0.05
    )
    np.testing.assert_allclose(idzorek_omega(sigma(), views.picking, confidences), reference, rtol=1e-8)
    # confidence one half is the He-Litterman default
    np.testing.assert_allclose(
        idzorek_omega(sigma(), views.picking, [0.5, 0.5, 0.5]), he_litterman_omega(sigma(), views.picking), rtol=1e-8
    )


def test_black_litterman_without_views_returns_the_prior() -> None:
    posterior = black_litterman(sigma(), prior(), P=np.empty((0, len(MODEL))), Q=np.empty(0))
    np.testing.assert_array_equal(posterior.mean, prior())
    np.testing.assert_allclose(posterior.covariance, 1.05 * sigma(), rtol=1e-8)
    empty = build_views(MODEL)
    assert empty.picking.shape == (0, len(MODEL))


@settings(max_examples=40, deadline=None)
@given(
    low=st.floats(min_value=0.01, max_value=0.99),
    high=st.floats(min_value=0.01, max_value=1.0),
    target=st.floats(min_value=-0.10, max_value=0.20),
    view=st.sampled_from(["absolute", "relative"]),
)
def test_more_confidence_moves_the_posterior_closer_to_the_view(
    low: float, high: float, target: float, view: str
) -> None:
    low, high = sorted((low, high))
    picking = VIEWS[view].picking
    pi = prior()

    def view_portfolio_return(confidence: float) -> float:
        omega = idzorek_omega(sigma(), picking, [confidence])
        return float((picking @ black_litterman(sigma(), pi, P=picking, Q=[target], omega=omega).mean)[0])

    start = float((picking @ pi)[0])
    at_low, at_high = view_portfolio_return(low), view_portfolio_return(high)
    # with Idzorek's omega a single view moves its portfolio exactly a fraction `confidence` of the way
    assert at_low == pytest.approx(start + low * (target - start), abs=1e-12)
    # the view portfolio's return moves from the prior towards the target, never past it, more with confidence
    assert abs(at_high - target) <= abs(at_low - target) + 1e-12
    assert min(start, target) - 1e-12 <= at_low <= max(start, target) + 1e-12
    if high == 1.0:
        assert at_high == pytest.approx(target, abs=1e-12)


# --- check_psd ----------------------------------------------------------------------------------------

NOT_PSD = np.array([[1.0, 0.9, 0.7], [0.9, 1.0, -0.4], [0.7, -0.4, 1.0]])  # a "correlation" matrix, eigenvalue < 0


def test_check_psd_repairs_a_matrix_with_a_negative_eigenvalue() -> None:
    smallest = np.linalg.eigvalsh(NOT_PSD).min()
    assert smallest < -0.1
    repaired = check_psd(NOT_PSD, repair=True)
    np.testing.assert_array_equal(repaired, repaired.T)
    assert np.linalg.eigvalsh(repaired).min() >= PSD_FLOOR
    np.linalg.cholesky(repaired)
    # the positive part of the spectrum is kept
    np.testing.assert_allclose(np.linalg.eigvalsh(repaired)[1:], np.linalg.eigvalsh(NOT_PSD)[1:], rtol=1e-12)


def test_check_psd_refuses_naming_the_smallest_eigenvalue() -> None:
    smallest = np.linalg.eigvalsh(NOT_PSD).min()
    with pytest.raises(CovarianceError, match=f"smallest eigenvalue {smallest:.6g}"):
        check_psd(NOT_PSD, repair=False)
    assert issubclass(CovarianceError, ValueError)


def test_check_psd_lifts_a_singular_matrix_only_when_repairing() -> None:
    singular = np.outer([1.0, 2.0], [1.0, 2.0])  # eigenvalues 0 and 5
    np.testing.assert_array_equal(check_psd(singular, repair=False), singular)
    assert np.linalg.eigvalsh(check_psd(singular, repair=True)).min() >= PSD_FLOOR
    # a healthy matrix comes back unchanged
    np.testing.assert_array_equal(check_psd(sigma(), repair=True), sigma())


def test_check_psd_refuses_asymmetric_and_malformed_matrices() -> None:
    with pytest.raises(CovarianceError, match="not symmetric"):
        check_psd(np.array([[1.0, 0.2], [0.1, 1.0]]), repair=True)
    with pytest.raises(CovarianceError, match="square"):
        check_psd(np.ones((2, 3)), repair=True)
    with pytest.raises(CovarianceError, match="infinite"):
        check_psd(np.array([[1.0, np.nan], [np.nan, 1.0]]), repair=True)


# --- dispatcher -------------------------------------------------------------------------------------


def test_estimate_inputs_dispatches_to_each_method() -> None:
    historical = estimate_inputs(prices(), returns_method="historical_mean", covariance_method="oas")
    assert historical.tickers == tuple(MODEL)
    np.testing.assert_array_equal(historical.mu, historical_mean(prices()))
    np.testing.assert_array_equal(historical.sigma, oas(returns()))

    common = {"covariance_method": CovarianceMethod.LEDOIT_WOLF, "market_weights": MARKET_WEIGHTS, "risk_free": 0.03}
    equilibrium = estimate_inputs(prices(), returns_method=ReturnsMethod.EQUILIBRIUM, **common)
    np.testing.assert_array_equal(equilibrium.mu, prior())
    no_views = estimate_inputs(prices(), returns_method=ReturnsMethod.BLACK_LITTERMAN, **common)
    np.testing.assert_array_equal(no_views.mu, prior())
    views = VIEWS["relative"]
    tilted = estimate_inputs(prices(), returns_method=ReturnsMethod.BLACK_LITTERMAN, views=views, **common)
    np.testing.assert_array_equal(tilted.mu, black_litterman(sigma(), prior(), P=views.picking, Q=views.targets).mean)
    exponential = estimate_inputs(
        prices(), returns_method="historical_mean", covariance_method="exponentially_weighted", half_life_days=63
    )
    np.testing.assert_array_equal(exponential.sigma, exponentially_weighted(returns(), half_life_days=63))


def test_estimate_inputs_refuses_what_it_cannot_do_without_guessing() -> None:
    with pytest.raises(EstimationError, match="need market_weights and risk_free"):
        estimate_inputs(prices(), returns_method="equilibrium", covariance_method="ledoit_wolf", risk_free=0.03)
    with pytest.raises(EstimationError, match="need market_weights and risk_free"):
        estimate_inputs(
            prices(), returns_method="black_litterman", covariance_method="oas", market_weights=MARKET_WEIGHTS
        )
    with pytest.raises(EstimationError, match="Views only apply to black_litterman"):
        estimate_inputs(prices(), returns_method="historical_mean", covariance_method="oas", views=VIEWS["absolute"])
    with pytest.raises(EstimationError, match="Unknown covariance method 'sample'; choose one of: ledoit_wolf"):
        estimate_inputs(prices(), returns_method="historical_mean", covariance_method="sample")


# --- refusals ---------------------------------------------------------------------------------------


def test_too_short_history_is_refused_naming_the_funds() -> None:
    # given VWO and GLD listed only for the last 18 months of the window
    frame = prices().copy()
    cutoff = frame.index[-1] - pd.DateOffset(months=18)
    frame.loc[frame.index <= cutoff, ["VWO", "GLD"]] = np.nan
    with pytest.raises(EstimationError, match=r"Less than 2 years of prices for: GLD \(1\.\d\d years\), VWO"):
        historical_mean(frame)
    # a fund that started later but has enough history is estimated over its own history
    frame.loc[frame.index <= cutoff, ["VWO", "GLD"]] = prices().loc[prices().index <= cutoff, ["VWO", "GLD"]]
    frame.loc[frame.index <= frame.index[-1] - pd.DateOffset(years=4), "VWO"] = np.nan
    own = historical_mean(frame)
    assert own[MODEL.index("VWO")] == pytest.approx(frame["VWO"].pct_change().mean() * 252, rel=1e-12)
    # but the covariance needs every fund over the whole window
    with pytest.raises(EstimationError, match="Prices missing for: VWO"):
        daily_returns(frame)


def test_gaps_and_bad_prices_are_refused_never_filled() -> None:
    frame = prices().copy()
    frame.iloc[100, MODEL.index("TLT")] = np.nan
    with pytest.raises(EstimationError, match="missing inside the history of: TLT"):
        historical_mean(frame)
    with pytest.raises(EstimationError, match="Prices missing inside the history of: TLT"):
        estimate_inputs(frame, returns_method="historical_mean", covariance_method="ledoit_wolf")
    with pytest.raises(EstimationError, match="Prices missing for: TLT"):
        estimate_inputs(
            frame, returns_method="equilibrium", covariance_method="oas", market_weights=MARKET_WEIGHTS, risk_free=0.03
        )
    frame = prices().copy()
    frame.iloc[5, MODEL.index("DBC")] = 0.0
    with pytest.raises(EstimationError, match="positive and finite; not so for: DBC"):
        daily_returns(frame)
    broken = returns().copy()
    broken.iloc[3, MODEL.index("HYG")] = np.inf
    for estimator in (ledoit_wolf, oas, exponentially_weighted):
        with pytest.raises(EstimationError, match="not finite for: HYG"):
            estimator(broken)


def test_mismatched_shapes_are_refused_clearly() -> None:
    n = len(MODEL)
    with pytest.raises(EstimationError, match="market_weights must have 16 entries"):
        equilibrium_returns(sigma(), MARKET_WEIGHTS[:-1], risk_aversion=DELTA, risk_free=RISK_FREE)
    with pytest.raises(EstimationError, match="market_weights must sum to 1"):
        equilibrium_returns(sigma(), 2 * MARKET_WEIGHTS, risk_aversion=DELTA, risk_free=RISK_FREE)
    with pytest.raises(EstimationError, match="covariance must be a square"):
        equilibrium_returns(sigma()[:, :-1], MARKET_WEIGHTS, risk_aversion=DELTA, risk_free=RISK_FREE)
    with pytest.raises(EstimationError, match="prior must have 16 entries"):
        black_litterman(sigma(), prior()[:3], P=np.eye(n)[:1], Q=[0.05])
    with pytest.raises(EstimationError, match=r"P must be K x 16"):
        black_litterman(sigma(), prior(), P=np.ones((1, n - 1)), Q=[0.05])
    with pytest.raises(EstimationError, match=r"Q must have one entry per view \(2\)"):
        black_litterman(sigma(), prior(), P=np.eye(n)[:2], Q=[0.05])
    with pytest.raises(EstimationError, match=r"omega must be 1 x 1"):
        black_litterman(sigma(), prior(), P=np.eye(n)[:1], Q=[0.05], omega=np.eye(2))
    with pytest.raises(EstimationError, match="pick no asset"):
        black_litterman(sigma(), prior(), P=np.zeros((1, n)), Q=[0.05])
    with pytest.raises(EstimationError, match="tau must be in"):
        black_litterman(sigma(), prior(), P=np.eye(n)[:1], Q=[0.05], tau=0.0)
    with pytest.raises(EstimationError, match="outside the universe: XYZ"):
        build_views(MODEL, absolute={"XYZ": 0.05})
    with pytest.raises(EstimationError, match="confidences must be in"):
        idzorek_omega(sigma(), np.eye(n)[:1], [0.0])


def test_contradictory_certain_views_are_refused() -> None:
    views = build_views(MODEL, absolute={"VTI": 0.05}, relative=[("VTI", "BIL", 0.02)])
    doubled = np.vstack([views.picking[:1], views.picking[:1]])
    with pytest.raises(EstimationError, match="cannot be combined"):
        black_litterman(sigma(), prior(), P=doubled, Q=[0.05, 0.06], omega=np.zeros((2, 2)))


def test_implied_risk_aversion_refuses_a_market_that_lost_to_cash() -> None:
    falling = pd.Series([-0.001, 0.0005, -0.002, 0.001])
    with pytest.raises(EstimationError, match="no positive risk aversion"):
        implied_risk_aversion(falling, 0.0)


def test_pypfopt_references_were_not_silently_repaired() -> None:
    # pypfopt clips the eigenvalues of a non-PSD result with only a warning: had it done so, the
    # comparisons above would be against a modified matrix
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pypfopt_risk.CovarianceShrinkage(prices(), frequency=252).ledoit_wolf()
        pypfopt_risk.exp_cov(prices(), span=span_for_half_life(DEFAULT_HALF_LIFE_DAYS))
