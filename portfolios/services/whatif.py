"""Advisors' what-if: re-solve one level of a stored optimization run under another objective and constraints.

Nothing is written: the result is shown next to the model portfolio of the same level and discarded. The
estimates are rebuilt from the run's own inputs (its universe, price window and policy, checked against its data
hash), so mean-variance with no other constraint reproduces the run's model portfolio exactly.

The constraints start from the house constraints of the level (the run's policy: per-fund maximum, class bounds,
the level's bond/cash floor) and are built by the same function as an account's personal target
(``targets.account_constraints``), so a mean-variance what-if with an investor's screens, account type, tax rate
and the restricted list is that investor's personal target. On top: funds excluded by hand, class limits that
replace or add to the policy's, another bond/cash floor, and an account's current holdings with a transaction
cost or a turnover limit. The objectives are those of ``portfolios/constrained.py``; risk parity and HRP take no
constraint, and asking for one is refused by name rather than ignored.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, Decimal
from typing import Any

import numpy as np

from advisor.errors import InvalidInputError, InvalidStateError, NotAllowedError
from advisor.models import Role, User
from compliance.services import restricted_tickers

from ..access import accounts_for
from ..constrained import BUDGET_ONLY_OBJECTIVES, OBJECTIVES, ObjectiveInputError, ObjectiveSolver, ObjectiveTarget
from ..explain import binding_sentence
from ..models import Account, AccountType, Asset, ModelPortfolio, OptimizationRun
from ..optimize import OptimizationError
from ..outlook import bad_year_return
from ..personal import CLASS_KIND, RESTRICTED_REASON, BindingConstraint, Constraints, InfeasibleConstraintsError
from ..rebalance import WEIGHT_STEP, ZERO
from ..selectors import cash_balances, holdings, market_date_latest, model_portfolio_for, model_universe, prices_as_of
from ..universe import ASSET_CLASSES, ESG_FLAGS
from .optimization import ModelPortfolioError, decimal_weights, run_market
from .targets import InvestorTerms, account_constraints

WHATIF_EXCLUSION = "excluded in this what-if"
CLASS_NAMES = {code: name for code, name, _, _ in ASSET_CLASSES}
# The inputs a what-if may set, by the name of their field (the page's form and the API's query parameters).
CONSTRAINT_FIELDS = {
    "max_weight": "the maximum weight per fund",
    "exclude": "excluded funds",
    "esg": "ESG screens",
    "account_type": "an account type other than taxable",
    "marginal_tax_rate": "the marginal tax rate",
    "class_limits": "class limits",
    "bond_cash_minimum": "the bond/cash minimum",
    "restricted_list": "the compliance restricted list",
    "transaction_cost": "a transaction cost",
    "turnover_limit": "a turnover limit",
}


class WhatIfInfeasibleError(InvalidInputError):
    """The constraints admit no fully invested long-only portfolio; ``problems`` lists each conflict."""

    def __init__(self, message: str, *, problems: Collection[str] = (), fields: Mapping[str, Any] | None = None):
        super().__init__(message, fields=fields)
        self.problems = tuple(problems)


@dataclass(frozen=True)
class WhatIfWeight:
    ticker: str
    name: str
    asset_class: str
    weight: Decimal
    model_weight: Decimal
    excluded: bool
    current_weight: Decimal | None = None  # with an account: its holding as a share of the account

    @property
    def difference(self) -> Decimal:
        return self.weight - self.model_weight


@dataclass(frozen=True)
class WhatIfBinding:
    kind: str
    name: str
    label: str
    assets: tuple[str, ...]
    limit: float
    value: float
    expected_return_cost: float | None  # expected return a year given up (relaxing it alone gains this)
    volatility_cost: float | None  # volatility added (negative: the constraint makes the portfolio calmer)
    sentence: str


@dataclass(frozen=True)
class WhatIf:
    run: OptimizationRun
    risk_level: int
    objective: str
    max_weight: Decimal
    excluded: tuple[str, ...]
    constraints: list[str]  # every constraint applied, in plain words
    notes: list[str]  # what the objective ignores, what the holdings leave out
    weights: list[WhatIfWeight]
    expected_return: Decimal
    volatility: Decimal
    bad_year: Decimal
    binding: list[WhatIfBinding]
    model: ModelPortfolio | None
    model_bad_year: Decimal | None
    risk_free_rate: float
    account: Account | None
    # False when the prices up to the run's date changed since it ran (a re-import): the estimates differ.
    inputs_match_run: bool
    solve_seconds: float  # the optimizer: the objective and each relaxation that prices a binding constraint
    seconds: float  # the whole what-if, rebuilding the run's estimates included

    @property
    def objective_label(self) -> str:
        return OBJECTIVES[self.objective]

    @property
    def total(self) -> Decimal:
        return sum((w.weight for w in self.weights), ZERO)

    @property
    def model_total(self) -> Decimal:
        return sum((w.model_weight for w in self.weights), ZERO)


def _pct(value: float | Decimal, places: int = 1) -> str:
    return f"{float(value) * 100:.{places}f}%"


def _group_name(group: str) -> str:
    return CLASS_NAMES.get(group, group)


def _label(binding: BindingConstraint) -> str:
    kind, name, limit = binding.kind, binding.name, binding.limit
    if kind == "exclusion":
        return name[:1].upper() + name[1:]
    if kind == "asset_maximum":
        return f"The {name} maximum of {_pct(limit)}"
    if kind == "asset_minimum":
        return f"The {name} minimum of {_pct(limit)}"
    if kind == "max_position":
        return f"The maximum position of {_pct(limit)}"
    if kind == "class_minimum":
        return f"The {_group_name(name)} minimum of {_pct(limit)}"
    if kind == "class_maximum":
        return f"The {_group_name(name)} maximum of {_pct(limit)}"
    if kind == "bond_cash_minimum":
        return f"The bond/cash minimum of {_pct(limit)}"
    if kind == "turnover_limit":
        return f"The turnover limit of {_pct(limit)}"
    if kind == "transaction_cost":
        return f"The transaction cost of {_pct(limit, 2)}"
    return name


def _binding_rows(binding: tuple[BindingConstraint, ...]) -> list[WhatIfBinding]:
    rows = []
    for b in binding:
        row: dict[str, Any] = {
            "kind": b.kind,
            "label": _label(b),
            "assets": list(b.assets),
            "expected_return_cost": None if b.cost is None else round(b.cost.expected_return_gain, 6),
            "volatility_cost": None if b.cost is None else round(-b.cost.volatility_change, 6),
        }
        rows.append(
            WhatIfBinding(
                kind=b.kind,
                name=b.name,
                label=row["label"],
                assets=b.assets,
                limit=round(b.limit, 6),
                value=round(b.value, 6),
                expected_return_cost=row["expected_return_cost"],
                volatility_cost=row["volatility_cost"],
                sentence=binding_sentence(row),
            )
        )
    return rows


def _given(**values: object) -> list[str]:
    """The constraint fields that were set (an account type only when it is not taxable)."""
    given = []
    for name, value in values.items():
        if name == "account_type":
            if value not in (None, "", AccountType.TAXABLE):
                given.append(name)
        elif value not in (None, "", (), [], {}, False):
            given.append(name)
    return given


def _current_weights(account: Account, tickers: list[str]) -> tuple[list[Decimal] | None, Decimal, Decimal]:
    """The account's holdings of ``tickers`` as shares of its value (cash included) at the latest prices, its
    value, and the share outside ``tickers`` (other funds and cash); None when it holds nothing."""
    market_date = market_date_latest()
    held = holdings([account.pk]).get(account.pk, {})
    cash = cash_balances([account.pk]).get(account.pk, ZERO)
    prices = prices_as_of(market_date) if market_date else {}
    ticker_of = dict(Asset.objects.filter(pk__in=list(held)).values_list("pk", "ticker"))
    values = {ticker_of[aid]: quantity * prices[aid][0] for aid, quantity in held.items() if aid in prices}
    total = cash + sum(values.values(), ZERO)
    if total <= 0:
        return None, ZERO, ZERO
    # Rounded down: the shares must not sum above one (the optimizer refuses current weights that do).
    shares = [(values.get(t, ZERO) / total).quantize(WEIGHT_STEP, rounding=ROUND_DOWN) for t in tickers]
    return shares, total.quantize(Decimal("0.01")), 1 - sum(shares, ZERO)


def model_portfolio_whatif(
    *,
    run: OptimizationRun,
    risk_level: int,
    objective: str = "mean_variance",
    target_volatility: Decimal | None = None,
    max_weight: Decimal | None = None,
    excluded: Collection[str] = (),
    esg: Collection[str] = (),
    account_type: str | None = None,
    marginal_tax_rate: Decimal | None = None,
    class_limits: Mapping[str, tuple[Decimal | None, Decimal | None]] | None = None,
    bond_cash_minimum: Decimal | None = None,
    restricted_list: bool = False,
    account: Account | None = None,
    transaction_cost: Decimal | None = None,
    turnover_limit: Decimal | None = None,
    actor: User | None = None,
) -> WhatIf:
    """Solve ``risk_level`` of ``run`` for ``objective`` under the house constraints and the ones given.

    ``class_limits`` maps an asset class or kind to (minimum, maximum), None for "no such bound"; it replaces the
    policy's bounds of that group. ``account`` (one ``actor`` may see) supplies current weights, which matter with
    ``transaction_cost`` (a rate per unit of weight traded) or ``turnover_limit`` (the share of the account sold).
    """
    started = time.perf_counter()
    if actor is not None:
        if actor.role not in (Role.ADVISOR, Role.ADMIN):
            raise NotAllowedError("Only advisors and admins compute what-ifs.")
        if account is not None and not accounts_for(actor).filter(pk=account.pk).exists():
            raise NotAllowedError("You cannot see this account.", fields={"account": "Not one of your accounts."})
    if not 1 <= risk_level <= 10:
        raise InvalidInputError("Risk level must be 1-10.", fields={"risk_level": "Choose a level from 1 to 10."})
    if objective not in OBJECTIVES:
        raise InvalidInputError(
            f"Unknown objective {objective!r}.", fields={"objective": f"Choose one of: {', '.join(OBJECTIVES)}."}
        )
    if (target_volatility is None) != (objective != "target_volatility"):
        field_message = (
            "Give the target volatility, for example 0.08 for 8% a year."
            if target_volatility is None
            else "A target volatility applies only to the target-volatility objective."
        )
        raise InvalidInputError("Target volatility mismatch.", fields={"target_volatility": field_message})
    given = _given(
        max_weight=max_weight,
        exclude=tuple(excluded),
        esg=tuple(esg),
        account_type=account_type,
        marginal_tax_rate=marginal_tax_rate,
        class_limits=dict(class_limits or {}),
        bond_cash_minimum=bond_cash_minimum,
        restricted_list=restricted_list,
        transaction_cost=transaction_cost,
        turnover_limit=turnover_limit,
    )
    if objective in BUDGET_ONLY_OBJECTIVES and given:
        label = OBJECTIVES[objective]
        raise InvalidInputError(
            f"{label} allocates by risk alone, long-only and fully invested: it does not support "
            + ", ".join(CONSTRAINT_FIELDS[name] for name in given)
            + ". Remove them, or choose mean-variance, minimum variance, maximum Sharpe or target volatility.",
            fields=dict.fromkeys(given, f"{label} does not support this constraint (long-only budget only)."),
        )
    if (transaction_cost or turnover_limit is not None) and account is None:
        raise InvalidInputError(
            "A transaction cost or turnover limit is measured against an account's holdings.",
            fields={"account": "Choose the account whose holdings the trades start from."},
        )

    assets = model_universe(run)
    tickers = [a.ticker for a in assets]
    classes: list[str] = list(run.parameters["classes"])
    unknown = sorted(set(excluded) - set(tickers))
    if unknown:
        raise InvalidInputError(
            "Only funds of the model universe can be excluded.",
            fields={"exclude": f"Not in the model universe: {', '.join(unknown)}."},
        )
    unknown_screens = sorted(set(esg) - set(ESG_FLAGS))
    if unknown_screens:
        raise InvalidInputError(
            "Unknown ESG screens.",
            fields={"esg": f"Unknown: {', '.join(unknown_screens)}; choose from {sorted(ESG_FLAGS)}."},
        )
    present = set(classes) | {CLASS_KIND[c] for c in classes}
    outside = sorted(set(class_limits or {}) - present)
    if outside:
        raise InvalidInputError(
            "Class limits name groups the run's funds do not belong to.",
            fields={"class_limits": f"No model fund in: {', '.join(outside)}; use {', '.join(sorted(present))}."},
        )

    try:
        policy, inputs = run_market(run)
    except ModelPortfolioError as exc:
        raise InvalidStateError(f"The run's prices cannot be rebuilt: {exc}") from exc
    cap = max_weight if max_weight is not None else Decimal(str(policy.max_asset_weight))
    limits = dict(policy.class_limits)
    for group, (low, high) in (class_limits or {}).items():
        limits[group] = (float(low or 0), 1.0 if high is None else float(high))
    floors = dict(policy.bond_cash_minimum)
    if bond_cash_minimum is not None:
        floors[risk_level] = float(bond_cash_minimum)
    adjusted = replace(policy, max_asset_weight=float(cap), class_limits=limits, bond_cash_minimum=floors)

    notes: list[str] = []
    current: list[Decimal] | None = None
    if account is not None:
        current, value, outside_share = _current_weights(account, tickers)
        if current is None:
            notes.append(f"{account.name} holds nothing yet: every weight is bought new, nothing is sold.")
        elif outside_share > 0:
            notes.append(
                f"{_pct(outside_share)} of {account.name} (${value:,.2f}) is cash or funds outside the model "
                "universe: not a current weight of any model fund."
            )
    constraints = account_constraints(
        policy=adjusted,
        tickers=tickers,
        classes=classes,
        level=risk_level,
        account_type=account_type or AccountType.TAXABLE,
        terms=InvestorTerms(screens=tuple(sorted(set(esg))), marginal_tax_rate=marginal_tax_rate),
        restricted=restricted_tickers() if restricted_list else (),
    )
    exclusions = dict(constraints.exclusions)
    for ticker in excluded:
        exclusions[ticker] = (*exclusions.get(ticker, ()), WHATIF_EXCLUSION)
    constraints = replace(
        constraints,
        exclusions=exclusions,
        # Floats from here on, for the optimizer (weights, not money).
        current_weights=None if current is None else np.array([float(c) for c in current]),
        transaction_cost=float(transaction_cost or 0),
        turnover_limit=None if turnover_limit is None else float(turnover_limit),
    )

    solver = ObjectiveSolver(tickers, classes)
    budget_only = objective in BUDGET_ONLY_OBJECTIVES
    try:
        solution = solver.solve(
            objective,
            None if budget_only else constraints,
            inputs.mu,
            inputs.sigma,
            risk_aversion=policy.gamma(risk_level),
            risk_free_rate=inputs.risk_free,
            target_volatility=None if target_volatility is None else float(target_volatility),
        )
    except InfeasibleConstraintsError as exc:
        raise _infeasible(exc) from exc
    except ObjectiveInputError as exc:
        raise InvalidInputError(str(exc), fields={exc.field: str(exc)}) from exc
    except OptimizationError as exc:
        raise InvalidInputError(f"The optimizer found no portfolio: {exc}", fields={"constraints": str(exc)}) from exc

    notes += _objective_notes(objective, risk_level, policy.max_asset_weight, solution)
    model = model_portfolio_for(risk_level=risk_level, run=run)
    model_weights = {w.asset.ticker: w.weight for w in model.weights.all()} if model else {}
    rounded = decimal_weights(solution.weights, 1.0 if budget_only else float(cap))
    current_decimal: list[Decimal | None] = list(current) if current is not None else [None] * len(tickers)
    weights = [
        WhatIfWeight(
            ticker=asset.ticker,
            name=asset.name,
            asset_class=asset.asset_class.name,
            weight=weight,
            model_weight=model_weights.get(asset.ticker, ZERO),
            excluded=asset.ticker in excluded,
            current_weight=held,
        )
        for asset, weight, held in zip(assets, rounded, current_decimal, strict=True)
    ]
    weights.sort(key=lambda w: (-w.weight, -w.model_weight, w.ticker))
    expected_return = Decimal(repr(solution.expected_return)).quantize(WEIGHT_STEP)
    volatility = Decimal(repr(solution.volatility)).quantize(WEIGHT_STEP)
    return WhatIf(
        run=run,
        risk_level=risk_level,
        objective=objective,
        max_weight=cap,
        excluded=tuple(sorted(set(excluded))),
        constraints=[] if budget_only else _described(constraints, cap, risk_level, restricted_list, target_volatility),
        notes=notes,
        weights=weights,
        expected_return=expected_return,
        volatility=volatility,
        bad_year=bad_year_return(expected_return, volatility),
        binding=_binding_rows(solution.binding),
        model=model,
        model_bad_year=bad_year_return(model.expected_return, model.volatility) if model else None,
        risk_free_rate=round(inputs.risk_free, 6),
        account=account,
        inputs_match_run=True,  # run_market refuses a run whose prices changed
        solve_seconds=round(solution.solve_seconds, 4),
        seconds=round(time.perf_counter() - started, 3),
    )


def _infeasible(exc: InfeasibleConstraintsError) -> WhatIfInfeasibleError:
    """Each conflict, and under the field that sets it where one does."""
    fields: dict[str, list[str]] = {}
    for problem in exc.problems:
        if "bond/cash minimum" in problem:
            name = "bond_cash_minimum"
        elif problem.startswith("class "):
            name = "class_limits"
        elif problem.startswith("turnover limit"):
            name = "turnover_limit"
        else:
            name = "constraints"
        fields.setdefault(name, []).append(problem)
    return WhatIfInfeasibleError(
        "Infeasible: no portfolio satisfies these constraints: " + "; ".join(exc.problems) + ".",
        problems=exc.problems,
        fields=fields,
    )


def _described(
    constraints: Constraints, cap: Decimal, level: int, restricted_list: bool, target: Decimal | None
) -> list[str]:
    lines = [f"At most {_pct(cap)} in any one fund; long-only and fully invested."]
    groups = constraints.class_bounds
    if groups is not None:
        for name, low, high in zip(groups.names, groups.lower, groups.upper, strict=True):
            bounds = [f"at least {_pct(low)}" if low > 0 else "", f"at most {_pct(high)}" if high < 1 else ""]
            lines.append(f"{_group_name(name)}: " + " and ".join(b for b in bounds if b) + ".")
    if constraints.bond_cash_minimum > 0:
        lines.append(f"Bonds and cash at least {_pct(constraints.bond_cash_minimum)} (level {level}).")
    reasons = sorted({r for why in constraints.exclusions.values() for r in why})
    for reason in reasons:
        funds = sorted(t for t, why in constraints.exclusions.items() if reason in why)
        lines.append(f"Excluded by {reason}: {', '.join(funds)}.")
    if restricted_list and not any(RESTRICTED_REASON in why for why in constraints.exclusions.values()):
        lines.append("The compliance restricted list names no model fund.")
    if constraints.account_type != AccountType.TAXABLE:
        lines.append(f"{AccountType(constraints.account_type).label}: no municipal bonds.")
    elif constraints.municipal_rate_floor is not None:
        lines.append(f"No municipal bonds: the marginal tax rate is below {_pct(constraints.municipal_rate_floor, 0)}.")
    if constraints.current_weights is not None and np.any(constraints.costs > 0):
        lines.append(
            f"Trading costs {_pct(float(constraints.costs.max()), 2)} of each trade, against current holdings."
        )
    if constraints.turnover_limit is not None:
        lines.append(f"At most {_pct(constraints.turnover_limit)} of the account sold.")
    if target is not None:
        lines.append(f"Volatility at most {_pct(target)} a year.")
    return lines


def _objective_notes(objective: str, level: int, house_maximum: float, solution: ObjectiveTarget) -> list[str]:
    if objective in BUDGET_ONLY_OBJECTIVES:
        label = OBJECTIVES[objective]
        notes = [
            f"{label} does not use the risk level nor the house constraints of level {level} (the per-fund "
            "maximum, the class limits, the bond/cash floor): it allocates by risk alone."
        ]
        largest = float(solution.weights.max())
        if largest > house_maximum + 1e-9:
            notes.append(f"Its largest weight, {_pct(largest)}, is above the house maximum of {_pct(house_maximum)}.")
        return notes
    if objective == "mean_variance":
        return []
    return [
        f"{OBJECTIVES[objective]} does not depend on the risk level; level {level} enters only through its house "
        "constraints (the bond/cash floor)."
    ]
