"""Personal targets: each account's model portfolio under its investor's constraints, stored per optimization run.

For an optimization run, the expected returns and covariance are rebuilt from the run's own price window
(checked against its data hash), and every account gets the model problem of its effective risk level with:

- the per-asset maximum of the run (``max_asset_weight``), as the model portfolio;
- the ESG exclusions of the owner's current preferences (``personal.exclusions_for``);
- the compliance restricted list (``compliance.services.restricted_tickers``, read once per batch);
- the account's tax type: every account is taxable today, so no municipal-bond rule applies.

Accounts whose constraints have the same signature and level share one solve (``personal_targets_batch``);
the constraints that bind, with what each costs, are explained once per distinct signature and level.
Accounts with the model's own constraints (no exclusions) get the stored model portfolio of their level:
it is the solution of the same problem, so the weights are the model weights exactly.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from django.db import transaction
from django.db.models import OuterRef, Subquery

from compliance.services import restricted_tickers
from profiling.models import Preferences

from ..estimation import estimate, snapshot_hash
from ..models import Account, Asset, ModelPortfolio, OptimizationRun, PersonalTarget
from ..personal import (
    BindingConstraint,
    Constraints,
    InfeasibleConstraintsError,
    PersonalTargetSolver,
    exclusions_for,
    personal_targets_batch,
)
from ..rebalance import WEIGHT_STEP
from ..universe import ESG_FLAGS
from .optimization import ModelPortfolioError, decimal_weights, model_price_window

# Constraints of the model portfolio itself (house policy, not the investor's choice): not explained.
MODEL_CONSTRAINT_KINDS = frozenset({"asset_maximum"})


def _signature_hash(constraints: Constraints) -> str:
    return hashlib.sha256(repr(constraints.signature()).encode()).hexdigest()


def _exclusion_label(reason: str, screens: Sequence[str]) -> str:
    if screens and reason.startswith("ESG exclusions"):
        names = [ESG_FLAGS[s].lower() for s in screens]
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return f"Your exclusion of {listed}"
    return reason[:1].upper() + reason[1:]


def _binding_rows(binding: Sequence[BindingConstraint], screens: Sequence[str]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for b in binding:
        if b.kind in MODEL_CONSTRAINT_KINDS:
            continue
        rows.append(
            {
                "kind": b.kind,
                "name": b.name,
                "label": _exclusion_label(b.name, screens) if b.kind == "exclusion" else b.name,
                "assets": list(b.assets),
                "limit": round(b.limit, 6),
                "value": round(b.value, 6),
                # Relaxing this constraint alone: the expected return it gives up and the volatility it adds.
                "expected_return_cost": None if b.cost is None else round(b.cost.expected_return_gain, 6),
                "volatility_cost": None if b.cost is None else round(-b.cost.volatility_change, 6),
            }
        )
    return rows


def personal_targets_build(
    *,
    optimization_run: OptimizationRun,
    accounts_with_levels: Sequence[tuple[Account, int]],
    failures: list[str] | None = None,
) -> dict[int, PersonalTarget]:
    """The personal target of each account (at its effective risk level) for ``optimization_run``.

    One target per account and run: a stored one is returned as it is, unless the account's level or
    constraints have changed since (then it is rebuilt in place). An account whose constraints no portfolio
    satisfies gets no target; why is appended to ``failures``, naming the account.
    """
    failures = [] if failures is None else failures
    if not accounts_with_levels:
        return {}
    parameters = optimization_run.parameters
    tickers: list[str] = list(parameters["universe"])
    max_weight = float(parameters["max_asset_weight"])

    # Every owner's newest preferences in one query.
    owners = {account.owner_id for account, _ in accounts_with_levels}
    newest = Preferences.objects.filter(investor=OuterRef("investor")).order_by("-version")
    screens_of: dict[int, tuple[str, ...]] = dict.fromkeys(owners, ())
    for owner_id, exclusions in Preferences.objects.filter(
        investor_id__in=owners, pk=Subquery(newest.values("pk")[:1])
    ).values_list("investor_id", "esg_exclusions"):
        screens_of[owner_id] = tuple(sorted(exclusions))
    upper = np.full(len(tickers), max_weight)
    restricted = restricted_tickers()
    constraints_of: dict[int, Constraints] = {}
    for account, _ in accounts_with_levels:
        constraints_of[account.pk] = Constraints(
            upper=upper,
            exclusions=exclusions_for(tickers, esg_exclusions=screens_of[account.owner_id], restricted=restricted),
            account_type=account.account_type,
        )

    stored = {
        t.account_id: t
        for t in PersonalTarget.objects.filter(optimization_run=optimization_run, account_id__in=list(constraints_of))
    }
    # A stored target is kept unless the investor's level or constraints changed since it was built (a
    # re-run on the same optimization run after a new profile or new preferences): then it is rebuilt in place.
    pending = [
        (account, level)
        for account, level in accounts_with_levels
        if account.pk not in stored
        or stored[account.pk].risk_level != level
        or stored[account.pk].signature != _signature_hash(constraints_of[account.pk])
    ]
    if not pending:
        return stored

    class_of = dict(Asset.objects.filter(ticker__in=tickers).values_list("ticker", "asset_class__code"))
    portfolios = {
        p.risk_level: p for p in ModelPortfolio.objects.filter(run=optimization_run).prefetch_related("weights__asset")
    }
    model_constraints = Constraints(upper=upper)
    by_signature: dict[Hashable, list[tuple[Account, int]]] = defaultdict(list)
    for account, level in pending:
        by_signature[constraints_of[account.pk].signature()].append((account, level))

    rows: list[PersonalTarget] = []
    model_signature = model_constraints.signature()
    market: _Market | None = None  # built on the first signature that needs a solve
    for signature, members in by_signature.items():
        constraints = constraints_of[members[0][0].pk]
        signature_hash = _signature_hash(constraints)
        if signature == model_signature:
            for account, level in members:
                portfolio = portfolios[level]
                rows.append(
                    PersonalTarget(
                        account=account,
                        optimization_run=optimization_run,
                        risk_level=level,
                        weights={w.asset.ticker: str(w.weight) for w in portfolio.weights.all()},
                        expected_return=portfolio.expected_return,
                        volatility=portfolio.volatility,
                        binding=[],
                        signature=signature_hash,
                    )
                )
            continue
        if market is None:
            market = _market(optimization_run, tickers, [class_of[t] for t in tickers])
        rows.extend(
            _solved(
                optimization_run=optimization_run,
                members=members,
                constraints=constraints,
                signature_hash=signature_hash,
                screens=screens_of[members[0][0].owner_id],
                portfolios=portfolios,
                market=market,
                max_weight=max_weight,
                failures=failures,
            )
        )

    changed = [row for row in rows if row.account_id in stored]
    for row in changed:
        row.pk = stored[row.account_id].pk
    with transaction.atomic():
        # ignore_conflicts: a concurrent delivery of the same run stored some first.
        PersonalTarget.objects.bulk_create([r for r in rows if r.account_id not in stored], ignore_conflicts=True)
        PersonalTarget.objects.bulk_update(
            changed, ["risk_level", "weights", "expected_return", "volatility", "binding", "signature"]
        )
    failed = {account.pk for account, _ in pending} - {row.account_id for row in rows}
    ids = [a.pk for a, _ in accounts_with_levels if a.pk not in failed]  # never a stale target for those
    return {
        t.account_id: t for t in PersonalTarget.objects.filter(optimization_run=optimization_run, account_id__in=ids)
    }


@dataclass(frozen=True)
class _Market:
    tickers: list[str]
    mu: np.ndarray
    sigma: np.ndarray
    solver: PersonalTargetSolver


def _market(optimization_run: OptimizationRun, tickers: list[str], classes: list[str]) -> _Market:
    """The run's expected returns and covariance, rebuilt exactly as the model build made them."""
    window = model_price_window(
        tickers=tickers, as_of=optimization_run.as_of, years=int(optimization_run.parameters["estimation_years"])
    )
    if snapshot_hash(window) != optimization_run.data_hash:
        raise ModelPortfolioError(
            f"The prices of optimization run {optimization_run.pk} have changed since it was built: "
            "its personal targets cannot be rebuilt."
        )
    estimates = estimate(window)
    return _Market(tickers, estimates.expected_returns, estimates.covariance, PersonalTargetSolver(tickers, classes))


def _solved(
    *,
    optimization_run: OptimizationRun,
    members: list[tuple[Account, int]],
    constraints: Constraints,
    signature_hash: str,
    screens: Sequence[str],
    portfolios: dict[int, ModelPortfolio],
    market: _Market,
    max_weight: float,
    failures: list[str],
) -> list[PersonalTarget]:
    """Targets for the accounts of one signature: one solve per level, explained once per level."""
    try:
        # solve() checks the constraints first (personal.diagnose) and names each conflict it finds.
        explained = {
            level: market.solver.solve(
                constraints, market.mu, market.sigma, portfolios[level].risk_aversion, explain=True
            )
            for level in sorted({level for _, level in members})
        }
        weights = personal_targets_batch(
            [constraints] * len(members),
            market.mu,
            market.sigma,
            [portfolios[level].risk_aversion for _, level in members],
            solver=market.solver,
        )
    except InfeasibleConstraintsError as exc:
        reasons = "; ".join(exc.problems)
        failures.extend(
            f"account {account.pk} ({account.name}): no personal target satisfies the investor's constraints: {reasons}"
            for account, _ in members
        )
        return []
    rows = []
    for (account, level), row in zip(members, weights, strict=True):
        rounded = decimal_weights(row, max_weight)
        rows.append(
            PersonalTarget(
                account=account,
                optimization_run=optimization_run,
                risk_level=level,
                weights={t: str(w) for t, w in zip(market.tickers, rounded, strict=True) if w > 0},
                expected_return=Decimal(repr(float(market.mu @ row))).quantize(WEIGHT_STEP),
                volatility=Decimal(repr(float(np.sqrt(row @ market.sigma @ row)))).quantize(WEIGHT_STEP),
                binding=_binding_rows(explained[level].binding, screens),
                signature=signature_hash,
            )
        )
    return rows
