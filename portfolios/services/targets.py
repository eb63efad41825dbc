"""Personal targets: the model portfolio of an account's risk level under its investor's constraints.

For an optimization run, every account gets the model problem of its effective risk level (the house
constraints of the run's policy: per-fund maximum, class bounds, the level's bond/cash floor) with:

- the ESG exclusions of the owner's current preferences (``personal.exclusions_for``);
- the compliance restricted list (``compliance.services.restricted_tickers``, read once per batch);
- the account's tax type: no municipal bonds in a traditional or Roth IRA, nor in a taxable account whose
  owner's marginal tax rate is below the policy's ``municipal_min_tax_rate``.

A target is stored once per (run, constraint signature, level) and shared by every account with that
signature and level: a million accounts with a thousand distinct signatures store about ten thousand rows,
and each is solved and explained once. Accounts with only the house constraints get the stored model
portfolio of their level: it is the solution of the same problem, so the weights are the model's exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import OuterRef, Subquery

from compliance.audit import PendingEvent, audit_record_many
from compliance.services import restricted_tickers
from profiling.models import Preferences

from ..explain import binding_sentence
from ..models import TAX_ADVANTAGED_ACCOUNT_TYPES, Account, ModelPortfolio, OptimizationRun, PersonalTarget
from ..personal import (
    BindingConstraint,
    Constraints,
    InfeasibleConstraintsError,
    PersonalTargetSolver,
    exclusions_for,
    house_constraints,
)
from ..policy import OptimizationPolicy
from ..rebalance import WEIGHT_STEP
from ..universe import ESG_FLAGS
from .optimization import ModelInputs, decimal_weights, run_market, run_policy

# Constraints of the model portfolio itself (house policy, not the investor's choice): not explained.
MODEL_CONSTRAINT_KINDS = frozenset({"asset_maximum", "class_minimum", "class_maximum", "bond_cash_minimum"})


@dataclass(frozen=True)
class InvestorTerms:
    """What of an investor shapes their targets: ESG screens and marginal tax rate (None: not given)."""

    screens: tuple[str, ...] = ()
    marginal_tax_rate: Decimal | None = None


def investor_terms(owner_ids: Iterable[int]) -> dict[int, InvestorTerms]:
    """Every owner's newest preferences, in one query (owners without preferences get the defaults)."""
    owners = set(owner_ids)
    newest = Preferences.objects.filter(investor=OuterRef("investor")).order_by("-version")
    terms = dict.fromkeys(owners, InvestorTerms())
    for owner_id, exclusions, rate in Preferences.objects.filter(
        investor_id__in=owners, pk=Subquery(newest.values("pk")[:1])
    ).values_list("investor_id", "esg_exclusions", "marginal_tax_rate"):
        terms[owner_id] = InvestorTerms(tuple(sorted(exclusions)), rate)
    return terms


def account_constraints(
    *,
    policy: OptimizationPolicy,
    tickers: Sequence[str],
    classes: Sequence[str],
    level: int,
    account_type: str,
    terms: InvestorTerms,
    restricted: Iterable[str],
) -> Constraints:
    """The house constraints of ``level`` plus one account's: exclusions, account type and the municipal rule."""
    low_bracket = (
        account_type not in TAX_ADVANTAGED_ACCOUNT_TYPES
        and terms.marginal_tax_rate is not None
        and float(terms.marginal_tax_rate) < policy.municipal_min_tax_rate
    )
    return replace(
        house_constraints(policy, classes, level),
        exclusions=exclusions_for(tickers, esg_exclusions=terms.screens, restricted=restricted),
        account_type=account_type,
        municipal_rate_floor=policy.municipal_min_tax_rate if low_bracket else None,
    )


def signature_hash(constraints: Constraints) -> str:
    return hashlib.sha256(repr(constraints.signature()).encode()).hexdigest()


def describe_constraints(constraints: Constraints) -> dict[str, Any]:
    """The investor's part of a signature in plain values, stored with the target."""
    return {
        "exclusions": {ticker: list(reasons) for ticker, reasons in constraints.exclusions.items()},
        "account_type": constraints.account_type,
        "municipal_rate_floor": constraints.municipal_rate_floor,
        "bond_cash_minimum": constraints.bond_cash_minimum,
    }


def _exclusion_label(reason: str, screens: Sequence[str]) -> str:
    if screens and reason.startswith("ESG exclusions"):
        names = [ESG_FLAGS[s].lower() for s in screens]
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return f"Your exclusion of {listed}"
    return reason[:1].upper() + reason[1:]


def binding_rows(binding: Sequence[BindingConstraint], screens: Sequence[str]) -> list[dict[str, object]]:
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
    audit_events: list[PendingEvent] | None = None,
) -> dict[int, PersonalTarget]:
    """The personal target of each account (at its effective risk level) for ``optimization_run``.

    Targets are shared per (run, signature, level): a stored one is reused, a missing one is solved once for
    all the accounts that need it. An account whose constraints no portfolio satisfies gets no target; why is
    appended to ``failures``, naming the account. One audit event records each batch that stored new targets
    (appended to ``audit_events`` when given, for a caller that appends them to the chain at its end).
    """
    failures = [] if failures is None else failures
    if not accounts_with_levels:
        return {}
    policy = run_policy(optimization_run)
    tickers: list[str] = list(optimization_run.parameters["universe"])
    classes: list[str] = list(optimization_run.parameters["classes"])
    terms = investor_terms(account.owner_id for account, _ in accounts_with_levels)
    restricted = restricted_tickers()

    # One Constraints object per distinct (account type, screens, bracket rule, level): accounts share them.
    cache: dict[tuple[object, ...], tuple[Constraints, str]] = {}
    key_of: dict[int, tuple[str, int]] = {}  # account -> (signature hash, level)
    constraints_of: dict[tuple[str, int], Constraints] = {}
    screens_of: dict[tuple[str, int], tuple[str, ...]] = {}
    for account, level in accounts_with_levels:
        owner_terms = terms[account.owner_id]
        low = (
            owner_terms.marginal_tax_rate is not None
            and float(owner_terms.marginal_tax_rate) < policy.municipal_min_tax_rate
        )
        cache_key = (account.account_type, owner_terms.screens, low, level)
        if cache_key not in cache:
            constraints = account_constraints(
                policy=policy,
                tickers=tickers,
                classes=classes,
                level=level,
                account_type=account.account_type,
                terms=owner_terms,
                restricted=restricted,
            )
            cache[cache_key] = (constraints, signature_hash(constraints))
        constraints, signature = cache[cache_key]
        key_of[account.pk] = (signature, level)
        constraints_of[(signature, level)] = constraints
        screens_of.setdefault((signature, level), owner_terms.screens)

    signatures = {signature for signature, _ in constraints_of}
    stored = {
        (t.signature, t.risk_level): t
        for t in PersonalTarget.objects.filter(optimization_run=optimization_run, signature__in=signatures)
    }
    missing = [key for key in constraints_of if key not in stored]
    failed_keys: dict[tuple[str, int], str] = {}
    if missing:
        rows, failed_keys = _solve_missing(
            optimization_run=optimization_run,
            policy=policy,
            keys=missing,
            constraints_of=constraints_of,
            screens_of=screens_of,
            tickers=tickers,
            classes=classes,
        )
        if rows:
            new_keys = {(r.signature, r.risk_level) for r in rows}
            with transaction.atomic():
                # ignore_conflicts: a concurrent chunk of the same run may store some first. In key order, so
                # two chunks storing some of the same targets wait for each other without a deadlock.
                rows.sort(key=lambda r: (r.signature, r.risk_level))
                PersonalTarget.objects.bulk_create(rows, ignore_conflicts=True)
                event = PendingEvent(
                    action="personal_targets.built",
                    object_type=optimization_run._meta.label_lower,
                    object_id=optimization_run.pk,
                    payload={
                        "targets": len(rows),
                        "accounts": sum(1 for key in key_of.values() if key in new_keys),
                        "binding": sorted({b["kind"] for r in rows for b in r.binding}),
                    },
                )
                if audit_events is None:
                    audit_record_many([event])
                else:
                    audit_events.append(event)
            stored = {
                (t.signature, t.risk_level): t
                for t in PersonalTarget.objects.filter(optimization_run=optimization_run, signature__in=signatures)
            }
    result: dict[int, PersonalTarget] = {}
    for account, _ in accounts_with_levels:
        key = key_of[account.pk]
        if key in failed_keys:
            failures.append(
                f"account {account.pk} ({account.name}): no personal target satisfies the investor's constraints: "
                f"{failed_keys[key]}"
            )
        elif key in stored:
            result[account.pk] = stored[key]
    return result


def _solve_missing(
    *,
    optimization_run: OptimizationRun,
    policy: OptimizationPolicy,
    keys: list[tuple[str, int]],
    constraints_of: dict[tuple[str, int], Constraints],
    screens_of: dict[tuple[str, int], tuple[str, ...]],
    tickers: list[str],
    classes: list[str],
) -> tuple[list[PersonalTarget], dict[tuple[str, int], str]]:
    portfolios = {
        p.risk_level: p for p in ModelPortfolio.objects.filter(run=optimization_run).prefetch_related("weights__asset")
    }
    house = {level: signature_hash(house_constraints(policy, classes, level)) for level in portfolios}
    rows: list[PersonalTarget] = []
    failed: dict[tuple[str, int], str] = {}
    market: tuple[ModelInputs, PersonalTargetSolver] | None = None  # built on the first key that needs a solve
    for signature, level in keys:
        constraints = constraints_of[(signature, level)]
        portfolio = portfolios[level]
        common = {
            "optimization_run": optimization_run,
            "risk_level": level,
            "signature": signature,
            "constraints": describe_constraints(constraints),
        }
        if signature == house[level]:
            rows.append(
                PersonalTarget(
                    **common,
                    weights={w.asset.ticker: str(w.weight) for w in portfolio.weights.all()},
                    expected_return=portfolio.expected_return,
                    volatility=portfolio.volatility,
                    binding=[],
                )
            )
            continue
        if market is None:
            _, inputs = run_market(optimization_run)
            market = (inputs, PersonalTargetSolver(tickers, classes))
        inputs, solver = market
        try:
            # solve() checks the constraints first (personal.diagnose) and names each conflict it finds.
            solved = solver.solve(constraints, inputs.mu, inputs.sigma, portfolio.risk_aversion, explain=True)
        except InfeasibleConstraintsError as exc:
            failed[(signature, level)] = "; ".join(exc.problems)
            continue
        weights = solved.weights
        rounded = decimal_weights(weights, policy.max_asset_weight)
        rows.append(
            PersonalTarget(
                **common,
                weights={t: str(w) for t, w in zip(tickers, rounded, strict=True) if w > 0},
                expected_return=Decimal(repr(float(inputs.mu @ weights))).quantize(WEIGHT_STEP),
                volatility=Decimal(repr(float(np.sqrt(weights @ inputs.sigma @ weights)))).quantize(WEIGHT_STEP),
                binding=binding_rows(solved.binding, screens_of[(signature, level)]),
            )
        )
    return rows, failed


def personal_targets_lookup(*, accounts: Sequence[Account], risk_level: int) -> dict[int, PersonalTarget]:
    """The stored target of each account at ``risk_level``, from the newest run that has one for its signature
    (read only: the pipeline builds targets; an account missing from the result has none for its constraints
    yet). A fixed number of queries, whatever the number of accounts."""
    if not accounts:
        return {}
    with_targets = (
        OptimizationRun.objects.filter(status="succeeded", personal_targets__isnull=False)
        .order_by("-as_of", "-id")
        .first()
    )
    current = OptimizationRun.objects.filter(status="succeeded").order_by("-as_of", "-id").first()
    terms = investor_terms({a.owner_id for a in accounts})
    restricted = restricted_tickers()
    found: dict[int, PersonalTarget] = {}
    for candidate in dict.fromkeys(r for r in (current, with_targets) if r is not None):
        policy = run_policy(candidate)
        signature_of = {
            a.pk: signature_hash(
                account_constraints(
                    policy=policy,
                    tickers=list(candidate.parameters["universe"]),
                    classes=list(candidate.parameters["classes"]),
                    level=risk_level,
                    account_type=a.account_type,
                    terms=terms[a.owner_id],
                    restricted=restricted,
                )
            )
            for a in accounts
            if a.pk not in found
        }
        stored = {
            t.signature: t
            for t in PersonalTarget.objects.filter(
                optimization_run=candidate, signature__in=set(signature_of.values()), risk_level=risk_level
            )
        }
        for account_id, signature in signature_of.items():
            if signature in stored:
                found[account_id] = stored[signature]
    return found


def personal_target_lookup(*, account: Account, risk_level: int) -> PersonalTarget | None:
    """``personal_targets_lookup`` for one account."""
    return personal_targets_lookup(accounts=[account], risk_level=risk_level).get(account.pk)


@dataclass(frozen=True)
class TargetExplanation:
    """Why an account's personal target differs from the model portfolio of its level, in plain words."""

    account: Account
    risk_level: int
    target: PersonalTarget
    sentences: list[str]  # one per binding constraint of the investor, with its cost; empty: the model itself


def target_explanations(
    *, accounts: Sequence[Account], risk_level: int, targets: Mapping[int, PersonalTarget] | None = None
) -> list[TargetExplanation]:
    """For each account that has a personal target at ``risk_level``: its binding constraints as sentences.
    ``targets`` are the accounts' targets when the caller has looked them up already."""
    if targets is None:
        targets = personal_targets_lookup(accounts=accounts, risk_level=risk_level)
    found = []
    for account in accounts:
        target = targets.get(account.pk)
        if target is not None:
            sentences = [binding_sentence(b) for b in target.binding]
            found.append(TargetExplanation(account=account, risk_level=risk_level, target=target, sentences=sentences))
    return found
