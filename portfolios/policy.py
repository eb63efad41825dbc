"""House parameters for portfolio construction and rebalancing (pure: no Django).

Two named parameter sets, each a frozen dataclass with documented defaults:

- ``optimization`` (``OptimizationPolicy``): how expected returns and covariance are estimated, the risk
  aversion of each risk level, and the house constraints every model portfolio (and so every personal target)
  obeys: the per-fund maximum, per-class bounds and a minimum bond/cash share that falls as the level rises.
- ``rebalancing`` (``RebalancingPolicy``): drift bands, how far a rebalance trades back into the band, the
  minimum trade, the idle-cash trigger, tax-loss harvesting thresholds, the switch back to primary funds,
  and the short-term-gain limit of a rebalance.

Stored versions live in ``compliance.ParameterVersion`` and change only through a four-eyes
``ParameterChange``; with none stored, the defaults here apply (version 0). ``from_values`` validates a
whole set, as a ParameterChange carries it (JSON: numbers, strings, lists, objects; money as strings), and
raises ``PolicyError`` naming every bad field; ``to_values`` is its inverse.

Why these defaults (see docs/portfolio.md for the numbers they give on the shipped data):

- Expected returns are Black-Litterman over the equilibrium of a neutral benchmark (``NEUTRAL_BENCHMARK``)
  with no house views, which is the equilibrium itself: historical means are too noisy to optimize on (see
  ``estimators``), and the equilibrium returns make an unconstrained optimizer hold the benchmark rather
  than corners. Views, when a change adds them, tilt it with a stated confidence.
- The risk-free rate is the cash fund's (BIL's) total return over the last year of the window: it is in the
  price snapshot, so a run is reproduced from its data hash alone.
- The risk aversion runs geometrically from 10 at level 1 to 1.4 at level 10: on the shipped data this
  spaces the model portfolios' volatility from about 3% to 16% and their equity share from about 14% to 86%.
- The bond/cash minimum (80% at level 1 down to none at level 10) is a floor that binds only when the
  estimates would push a cautious level into risk assets; the class maxima keep narrow, volatile classes
  (real estate, gold, commodities, high yield, emerging markets, small caps) to satellite sizes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from .universe import ASSET_CLASSES, ASSETS

RISK_LEVELS = tuple(range(1, 11))
CLASS_KINDS = frozenset(kind for _, _, kind, _ in ASSET_CLASSES)
CLASS_CODES = frozenset(code for code, *_ in ASSET_CLASSES)
MODEL_TICKERS = tuple(sorted(t for t, _, _, in_model in ASSETS if in_model))
RETURNS_METHODS = ("historical_mean", "equilibrium", "black_litterman")
COVARIANCE_METHODS = ("ledoit_wolf", "oas", "exponentially_weighted")

# A neutral global balanced mix, close to the investable world market of stocks and bonds (about 60/35/5),
# held in the model funds: the portfolio whose returns the equilibrium makes optimal. Illustrative weights.
NEUTRAL_BENCHMARK: Mapping[str, float] = MappingProxyType(
    {
        "VTI": 0.33,
        "IJR": 0.03,
        "VEA": 0.15,
        "VWO": 0.05,
        "VNQ": 0.03,
        "AGG": 0.14,
        "SHY": 0.03,
        "IEF": 0.04,
        "TLT": 0.03,
        "TIP": 0.03,
        "LQD": 0.04,
        "HYG": 0.02,
        "MUB": 0.02,
        "GLD": 0.02,
        "DBC": 0.01,
        "BIL": 0.03,
    }
)


def _geometric_risk_aversion(first: float = 10.0, last: float = 1.4) -> dict[int, float]:
    return {level: round(first * (last / first) ** ((level - 1) / 9), 6) for level in RISK_LEVELS}


DEFAULT_RISK_AVERSION: Mapping[int, float] = MappingProxyType(_geometric_risk_aversion())
DEFAULT_BOND_CASH_MINIMUM: Mapping[int, float] = MappingProxyType(
    {1: 0.80, 2: 0.75, 3: 0.70, 4: 0.60, 5: 0.50, 6: 0.40, 7: 0.30, 8: 0.20, 9: 0.10, 10: 0.0}
)
DEFAULT_CLASS_LIMITS: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "us_small": (0.0, 0.15),
        "emerging": (0.0, 0.15),
        "real_estate": (0.0, 0.10),
        "high_yield": (0.0, 0.10),
        "gold": (0.0, 0.10),
        "commodities": (0.0, 0.05),
        "cash": (0.0, 0.30),
    }
)


class PolicyError(ValueError):
    """Invalid parameters; ``fields`` maps each bad field to what is wrong with it."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.fields = dict(fields)
        super().__init__("Invalid parameters: " + "; ".join(f"{k}: {v}" for k, v in sorted(self.fields.items())))


@dataclass(frozen=True)
class View:
    """A Black-Litterman view: ``ticker`` returns ``value`` a year (absolute), or ``value`` more than
    ``versus`` (relative)."""

    ticker: str
    value: float
    versus: str = ""


@dataclass(frozen=True)
class OptimizationPolicy:
    estimation_years: int = 15
    # A fund with less history shortens the window to the common history (flagged in the run), down to this.
    min_history_years: float = 5.0
    returns_method: str = "black_litterman"
    covariance_method: str = "ledoit_wolf"
    half_life_days: float = 126.0  # for the exponentially weighted covariance
    benchmark: Mapping[str, float] = field(default_factory=lambda: NEUTRAL_BENCHMARK)
    market_risk_aversion: float = 2.5  # delta of the reverse optimization (He and Litterman)
    tau: float = 0.05
    views: tuple[View, ...] = ()
    risk_free_ticker: str = "BIL"
    risk_aversion: Mapping[int, float] = field(default_factory=lambda: DEFAULT_RISK_AVERSION)
    max_asset_weight: float = 0.35
    class_limits: Mapping[str, tuple[float, float]] = field(default_factory=lambda: DEFAULT_CLASS_LIMITS)
    bond_cash_minimum: Mapping[int, float] = field(default_factory=lambda: DEFAULT_BOND_CASH_MINIMUM)
    # A taxable account holds municipal bonds only at this marginal rate or above: below it their lower
    # pre-tax yield is not made up by the exemption. IRAs never hold them.
    municipal_min_tax_rate: float = 0.24

    def gamma(self, level: int) -> float:
        return float(self.risk_aversion[level])

    def bond_floor(self, level: int) -> float:
        return float(self.bond_cash_minimum[level])


@dataclass(frozen=True)
class RebalancingPolicy:
    band_absolute: Decimal = Decimal("0.05")  # a class further than this from target is out of band
    band_relative: Decimal = Decimal("0.25")  # ... or further than this share of its target: the tighter
    # How far back a rebalance trades an out-of-band class: 0 to the target, 1 to the band's edge.
    rebalance_to: Decimal = Decimal("0.5")
    min_trade: Decimal = Decimal("50")
    cash_threshold_amount: Decimal = Decimal("100")
    cash_threshold_weight: Decimal = Decimal("0.01")
    harvest_loss_fraction: Decimal = Decimal("0.05")  # a lot's loss over its basis, to harvest it
    harvest_loss_minimum: Decimal = Decimal("100")  # and at least this many dollars
    switch_back_days: int = 31  # after a harvest, back to the primary fund no sooner than this
    switch_back_max_gain: Decimal = Decimal("50")  # ... and only if selling the substitute gains at most this
    # A rebalance realizing more short-term gains than this is reduced to the lots without them, or waits;
    # beyond hard_band_multiple x the band it goes ahead anyway (risk comes before tax).
    short_term_gain_limit: Decimal = Decimal("500")
    hard_band_multiple: Decimal = Decimal("2")


OPTIMIZATION = "optimization"
REBALANCING = "rebalancing"


# --- validation ----------------------------------------------------------------------------------------


def _number(values: Mapping[str, Any], name: str, errors: dict[str, str], low: float, high: float) -> float:
    raw = values.get(name)
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        errors[name] = "Enter a number."
        return math.nan
    try:
        number = float(raw)
    except ValueError:
        errors[name] = "Enter a number."
        return math.nan
    if not math.isfinite(number) or not low <= number <= high:
        errors[name] = f"Must be between {low:g} and {high:g}."
    return number


def _decimal(values: Mapping[str, Any], name: str, errors: dict[str, str], low: str, high: str) -> Decimal:
    raw = values.get(name)
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        errors[name] = 'Enter a decimal number as a string, for example "0.05".'
        return Decimal(0)
    try:
        number = Decimal(str(raw))
    except InvalidOperation:
        errors[name] = "Enter a decimal number."
        return Decimal(0)
    if not number.is_finite() or not Decimal(low) <= number <= Decimal(high):
        errors[name] = f"Must be between {low} and {high}."
    return number


def _choice(values: Mapping[str, Any], name: str, errors: dict[str, str], choices: tuple[str, ...]) -> str:
    raw = values.get(name)
    if raw not in choices:
        errors[name] = f"Choose one of: {', '.join(choices)}."
        return choices[0]
    return str(raw)


def _per_level(
    values: Mapping[str, Any], name: str, errors: dict[str, str], low: float, high: float
) -> dict[int, float]:
    raw = values.get(name)
    if not isinstance(raw, Mapping) or {str(k) for k in raw} != {str(level) for level in RISK_LEVELS}:
        errors[name] = "Give one value for each risk level 1 to 10."
        return {}
    result: dict[int, float] = {}
    for level in RISK_LEVELS:
        value = raw.get(str(level), raw.get(level))
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            errors[name] = f"Level {level}: enter a number."
            return {}
        if not low <= value <= high:
            errors[name] = f"Level {level}: must be between {low:g} and {high:g}."
            return {}
        result[level] = float(value)
    return result


def _unknown(values: Mapping[str, Any], known: set[str], errors: dict[str, str]) -> None:
    for name in sorted(set(values) - known):
        errors[name] = "Unknown parameter."
    for name in sorted(known - set(values)):
        errors.setdefault(name, "Missing.")


def optimization_policy_from_values(values: Mapping[str, Any]) -> OptimizationPolicy:
    """A whole optimization parameter set from plain values; ``PolicyError`` names every bad field."""
    errors: dict[str, str] = {}
    if not isinstance(values, Mapping):
        raise PolicyError({"values": "Expected an object of parameters."})
    _unknown(values, {f.name for f in fields(OptimizationPolicy)}, errors)
    years = _number(values, "estimation_years", errors, 1, 40)
    if math.isfinite(years) and years != int(years):
        errors["estimation_years"] = "Enter a whole number of years."
    min_history = _number(values, "min_history_years", errors, 1, 40)
    returns_method = _choice(values, "returns_method", errors, RETURNS_METHODS)
    covariance_method = _choice(values, "covariance_method", errors, COVARIANCE_METHODS)
    half_life = _number(values, "half_life_days", errors, 5, 2520)
    delta = _number(values, "market_risk_aversion", errors, 0.1, 20)
    tau = _number(values, "tau", errors, 0.001, 1)
    max_weight = _number(values, "max_asset_weight", errors, 0.01, 1)
    muni = _number(values, "municipal_min_tax_rate", errors, 0, 0.6)

    benchmark: dict[str, float] = {}
    raw_benchmark = values.get("benchmark")
    if not isinstance(raw_benchmark, Mapping) or not raw_benchmark:
        errors["benchmark"] = "Give the benchmark as {ticker: weight}."
    else:
        for ticker, weight in raw_benchmark.items():
            if ticker not in MODEL_TICKERS:
                errors["benchmark"] = f"{ticker} is not a model fund ({', '.join(MODEL_TICKERS)})."
                break
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 1:
                errors["benchmark"] = f"{ticker}: a weight between 0 and 1."
                break
            benchmark[str(ticker)] = float(weight)
        else:
            if abs(sum(benchmark.values()) - 1) > 1e-6:
                errors["benchmark"] = f"Weights must sum to 1, they sum to {sum(benchmark.values()):.6f}."

    views: list[View] = []
    raw_views = values.get("views")
    if not isinstance(raw_views, list):
        errors["views"] = "Give a list of views (it may be empty)."
    else:
        for i, raw in enumerate(raw_views, start=1):
            if not isinstance(raw, Mapping) or raw.get("ticker") not in MODEL_TICKERS:
                errors["views"] = f"View {i}: name a model fund as ticker."
                break
            versus = raw.get("versus", "") or ""
            value = raw.get("value")
            if versus and (versus not in MODEL_TICKERS or versus == raw["ticker"]):
                errors["views"] = f"View {i}: versus must be another model fund."
                break
            if isinstance(value, bool) or not isinstance(value, int | float) or not -0.5 <= value <= 0.5:
                errors["views"] = f"View {i}: value must be a yearly return between -0.5 and 0.5."
                break
            views.append(View(str(raw["ticker"]), float(value), str(versus)))
        if views and returns_method != "black_litterman":
            errors["views"] = "Views apply only to black_litterman returns."

    risk_free = values.get("risk_free_ticker")
    if risk_free not in MODEL_TICKERS:
        errors["risk_free_ticker"] = "Name the model fund whose trailing return is the risk-free rate."

    gammas = _per_level(values, "risk_aversion", errors, 0.05, 1000)
    if gammas and any(gammas[level + 1] > gammas[level] for level in RISK_LEVELS[:-1]):
        errors["risk_aversion"] = "Risk aversion must not rise with the risk level."
    floors = _per_level(values, "bond_cash_minimum", errors, 0, 1)
    if floors and any(floors[level + 1] > floors[level] for level in RISK_LEVELS[:-1]):
        errors["bond_cash_minimum"] = "The bond/cash minimum must not rise with the risk level."

    limits: dict[str, tuple[float, float]] = {}
    raw_limits = values.get("class_limits")
    if not isinstance(raw_limits, Mapping):
        errors["class_limits"] = "Give {class or kind: [minimum, maximum]}."
    else:
        for group, bounds in raw_limits.items():
            ok = (
                isinstance(bounds, list | tuple)
                and len(bounds) == 2
                and all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
            )
            if group not in CLASS_CODES and group not in CLASS_KINDS:
                errors["class_limits"] = f"{group} is neither an asset class nor a kind of class."
                break
            if not ok or not 0 <= bounds[0] <= bounds[1] <= 1:
                errors["class_limits"] = f"{group}: [minimum, maximum] with 0 <= minimum <= maximum <= 1."
                break
            limits[str(group)] = (float(bounds[0]), float(bounds[1]))
    if errors:
        raise PolicyError(errors)
    return OptimizationPolicy(
        estimation_years=int(years),
        min_history_years=min_history,
        returns_method=returns_method,
        covariance_method=covariance_method,
        half_life_days=half_life,
        benchmark=MappingProxyType(benchmark),
        market_risk_aversion=delta,
        tau=tau,
        views=tuple(views),
        risk_free_ticker=str(risk_free),
        risk_aversion=MappingProxyType(gammas),
        max_asset_weight=max_weight,
        class_limits=MappingProxyType(limits),
        bond_cash_minimum=MappingProxyType(floors),
        municipal_min_tax_rate=muni,
    )


def optimization_policy_values(policy: OptimizationPolicy) -> dict[str, Any]:
    """Plain JSON values of a policy: the inverse of ``optimization_policy_from_values``."""
    return {
        "estimation_years": policy.estimation_years,
        "min_history_years": policy.min_history_years,
        "returns_method": policy.returns_method,
        "covariance_method": policy.covariance_method,
        "half_life_days": policy.half_life_days,
        "benchmark": dict(policy.benchmark),
        "market_risk_aversion": policy.market_risk_aversion,
        "tau": policy.tau,
        "views": [{"ticker": v.ticker, "value": v.value, "versus": v.versus} for v in policy.views],
        "risk_free_ticker": policy.risk_free_ticker,
        "risk_aversion": {str(k): v for k, v in sorted(policy.risk_aversion.items())},
        "max_asset_weight": policy.max_asset_weight,
        "class_limits": {k: [lo, hi] for k, (lo, hi) in policy.class_limits.items()},
        "bond_cash_minimum": {str(k): v for k, v in sorted(policy.bond_cash_minimum.items())},
        "municipal_min_tax_rate": policy.municipal_min_tax_rate,
    }


_REBALANCING_BOUNDS: dict[str, tuple[str, str]] = {
    "band_absolute": ("0.001", "0.5"),
    "band_relative": ("0.01", "1"),
    "rebalance_to": ("0", "1"),
    "min_trade": ("0", "100000"),
    "cash_threshold_amount": ("0", "1000000"),
    "cash_threshold_weight": ("0", "1"),
    "harvest_loss_fraction": ("0.001", "0.9"),
    "harvest_loss_minimum": ("0", "1000000"),
    "switch_back_max_gain": ("0", "1000000"),
    "short_term_gain_limit": ("0", "100000000"),
    "hard_band_multiple": ("1", "10"),
}


def rebalancing_policy_from_values(values: Mapping[str, Any]) -> RebalancingPolicy:
    """A whole rebalancing parameter set from plain values (decimals as strings); ``PolicyError`` if bad."""
    errors: dict[str, str] = {}
    if not isinstance(values, Mapping):
        raise PolicyError({"values": "Expected an object of parameters."})
    _unknown(values, {f.name for f in fields(RebalancingPolicy)}, errors)
    decimals = {name: _decimal(values, name, errors, low, high) for name, (low, high) in _REBALANCING_BOUNDS.items()}
    days = values.get("switch_back_days")
    if isinstance(days, bool) or not isinstance(days, int) or not 31 <= days <= 365:
        # Fewer than 31 days would buy the harvested fund back inside the wash-sale window.
        errors["switch_back_days"] = "A whole number of days from 31 to 365."
        days = 31
    if errors:
        raise PolicyError(errors)
    return RebalancingPolicy(switch_back_days=days, **decimals)


def rebalancing_policy_values(policy: RebalancingPolicy) -> dict[str, Any]:
    values: dict[str, Any] = {name: str(getattr(policy, name)) for name in _REBALANCING_BOUNDS}
    values["switch_back_days"] = policy.switch_back_days
    return values


def policy_from_values(name: str, values: Mapping[str, Any]) -> OptimizationPolicy | RebalancingPolicy:
    if name == OPTIMIZATION:
        return optimization_policy_from_values(values)
    if name == REBALANCING:
        return rebalancing_policy_from_values(values)
    raise PolicyError({"name": f"Unknown parameter set {name!r}; choose {OPTIMIZATION} or {REBALANCING}."})


def policy_values(policy: OptimizationPolicy | RebalancingPolicy) -> dict[str, Any]:
    if isinstance(policy, OptimizationPolicy):
        return optimization_policy_values(policy)
    return rebalancing_policy_values(policy)


def default_optimization_policy(
    *, estimation_years: int | None = None, max_asset_weight: float | None = None
) -> OptimizationPolicy:
    """Version 0. Deployment settings (``ADVISOR_ESTIMATION_YEARS``, ``ADVISOR_MAX_ASSET_WEIGHT``) may set
    its window and per-fund maximum; stored versions carry their own."""
    policy = OptimizationPolicy()
    if estimation_years is not None:
        policy = replace(policy, estimation_years=int(estimation_years))
    if max_asset_weight is not None:
        policy = replace(policy, max_asset_weight=float(max_asset_weight))
    return policy


def default_rebalancing_policy(
    *,
    band_absolute: Decimal | None = None,
    min_trade: Decimal | None = None,
    cash_threshold_amount: Decimal | None = None,
    cash_threshold_weight: Decimal | None = None,
) -> RebalancingPolicy:
    """Version 0; deployment settings (``ADVISOR_DRIFT_BAND``, ``ADVISOR_MIN_TRADE_AMOUNT``, the cash
    thresholds) may set the matching fields."""
    policy = RebalancingPolicy()
    if band_absolute is not None:
        policy = replace(policy, band_absolute=band_absolute)
    if min_trade is not None:
        policy = replace(policy, min_trade=min_trade)
    if cash_threshold_amount is not None:
        policy = replace(policy, cash_threshold_amount=cash_threshold_amount)
    if cash_threshold_weight is not None:
        policy = replace(policy, cash_threshold_weight=cash_threshold_weight)
    return policy


@dataclass(frozen=True)
class PolicyVersion:
    """A policy as in force: its values and the version number (0 = the defaults in code)."""

    name: str
    version: int
    policy: OptimizationPolicy | RebalancingPolicy = field(compare=False)
