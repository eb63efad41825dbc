"""The admin page of portfolio construction: parameters in force, four-eyes changes, runs, re-optimize now."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from advisor.errors import DomainError
from advisor.models import Role
from advisor.permissions import role_required
from portfolios.policy import OPTIMIZATION, REBALANCING
from portfolios.selectors import optimization_runs_recent
from portfolios.services.reoptimization import optimization_rerun_queue

from .models import ParameterChange
from .parameters import (
    PARAMETER_SETS,
    ParameterSetState,
    parameter_change_approve,
    parameter_change_diffs,
    parameter_change_propose,
    parameter_change_reject,
    parameter_changes_pending,
    parameter_changes_recent,
    parameter_sets_current,
    parameter_versions_history,
)

OPTIMIZATION_LABELS = {
    "estimation_years": "Estimation window (years)",
    "min_history_years": "Shortest window when a fund starts later (years)",
    "returns_method": "Expected returns",
    "covariance_method": "Covariance",
    "half_life_days": "Half-life of the weighted covariance (days)",
    "market_risk_aversion": "Market risk aversion (reverse optimization)",
    "tau": "Black-Litterman tau",
    "risk_free_ticker": "Risk-free rate: trailing year of",
    "max_asset_weight": "Largest weight of one fund",
    "municipal_min_tax_rate": "Municipal bonds from a marginal tax rate of",
}
REBALANCING_LABELS = {
    "band_absolute": "Drift band, absolute (share of the account)",
    "band_relative": "Drift band, relative (share of the class's target)",
    "rebalance_to": "Rebalance back to (0 = the target, 1 = the band's edge)",
    "min_trade": "Smallest trade ($)",
    "cash_threshold_amount": "Idle cash to invest, at least ($)",
    "cash_threshold_weight": "Idle cash to invest, at least (share of the account)",
    "harvest_loss_fraction": "Harvest a lot's loss from (share of its basis)",
    "harvest_loss_minimum": "Harvest a lot's loss from ($)",
    "switch_back_days": "Back to the primary fund after (days)",
    "switch_back_max_gain": "Back to the primary fund if the gain is at most ($)",
    "short_term_gain_limit": "Short-term gains a rebalance may realize ($)",
    "hard_band_multiple": "Rebalance regardless of tax beyond (x the band)",
}


@dataclass
class OptimizationTables:
    settings: list[tuple[str, Any]]
    levels: list[tuple[str, Any, Any]]  # level, risk aversion, bond/cash minimum
    class_limits: list[tuple[str, Any, Any]]
    benchmark: list[tuple[str, Any]]
    views: list[dict[str, Any]]


def _optimization_tables(values: dict[str, Any]) -> OptimizationTables:
    gammas, floors = values.get("risk_aversion", {}), values.get("bond_cash_minimum", {})
    return OptimizationTables(
        settings=[(label, values.get(key)) for key, label in OPTIMIZATION_LABELS.items()],
        levels=[(level, gammas.get(level), floors.get(level)) for level in sorted(gammas, key=int)],
        class_limits=[(group, low, high) for group, (low, high) in sorted(values.get("class_limits", {}).items())],
        benchmark=sorted(values.get("benchmark", {}).items(), key=lambda item: (-item[1], item[0])),
        views=list(values.get("views", [])),
    )


def _set_json(values: dict[str, Any]) -> str:
    return json.dumps(values, indent=2, sort_keys=True)


def _error_fields(exc: DomainError) -> dict[str, str]:
    fields = {k: v if isinstance(v, str) else " ".join(v) for k, v in exc.fields.items()}
    return fields or {"__all__": exc.message}


def _page(
    request: HttpRequest,
    *,
    errors: dict[str, str] | None = None,
    errors_for: str = "",
    status: int = 200,
) -> HttpResponse:
    """``errors_for`` names what the errors are about: a set's propose form (its name), or change-<id>."""
    current: dict[str, ParameterSetState] = parameter_sets_current()
    pending = parameter_changes_pending()
    shown_in_place = {*PARAMETER_SETS, "decided", *(f"change-{c.pk}" for c in pending)}
    if errors and errors_for not in shown_in_place:
        errors_for = "top"
    recent = parameter_changes_recent(limit=30)
    diffs = parameter_change_diffs(pending)
    posted = request.POST if request.method == "POST" else {}
    forms = []
    for name in PARAMETER_SETS:
        resubmitted = errors_for == name
        forms.append(
            {
                "name": name,
                "values": posted.get("values", "") if resubmitted else _set_json(current[name].values),
                "reason": posted.get("reason", "") if resubmitted else "",
                "errors": errors if resubmitted else {},
                "pending": next((c for c in pending if c.name == name), None),
            }
        )
    context = {
        "optimization": current[OPTIMIZATION],
        "optimization_tables": _optimization_tables(current[OPTIMIZATION].values),
        "rebalancing": current[REBALANCING],
        "rebalancing_rows": [(label, current[REBALANCING].values.get(k)) for k, label in REBALANCING_LABELS.items()],
        "pending": [{"change": c, "key": f"change-{c.pk}", "diff": diffs.get(c.pk, {})} for c in pending],
        "forms": forms,
        "versions": parameter_versions_history(limit=30),
        "decisions": [c for c in recent if c.status != "pending"],
        "runs": optimization_runs_recent(10),
        "errors_for": errors_for,
        "errors": errors or {},
    }
    return render(request, "compliance/optimization.html", context, status=status)


@role_required(Role.ADMIN)
def optimization_page(request: HttpRequest) -> HttpResponse:
    """GET: the page. POST: propose a change (``name``, ``values`` as JSON, ``reason``)."""
    if request.method != "POST":
        return _page(request)
    name = request.POST.get("name", "")
    try:
        values = json.loads(request.POST.get("values", ""))
    except json.JSONDecodeError as exc:
        errors = {"values": f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."}
        return _page(request, errors=errors, errors_for=name, status=400)
    try:
        change = parameter_change_propose(
            actor=request.user, name=name, values=values, reason=request.POST.get("reason", "")
        )
    except DomainError as exc:
        return _page(request, errors=_error_fields(exc), errors_for=name, status=exc.status_code)
    messages.success(request, f"Change #{change.pk} to the {change.name} parameters proposed: another admin decides.")
    return redirect("staff-optimization")


@require_POST
@role_required(Role.ADMIN)
def parameter_change_decide(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    change = get_object_or_404(ParameterChange, pk=pk)
    comment = request.POST.get("comment", "")
    try:
        if decision == "approve":
            version = parameter_change_approve(actor=request.user, change_id=change.pk, comment=comment)
            queued = " A re-optimization is queued." if version.name == OPTIMIZATION else ""
            messages.success(
                request, f"Version {version.version} of the {version.name} parameters is in force.{queued}"
            )
        else:
            parameter_change_reject(actor=request.user, change_id=change.pk, comment=comment)
            messages.success(request, f"Change #{change.pk} rejected.")
    except DomainError as exc:
        # A change no longer pending is not listed with the pending ones: its errors go under the list.
        still_pending = ParameterChange.objects.filter(pk=change.pk, status="pending").exists()
        errors_for = f"change-{change.pk}" if still_pending else "decided"
        return _page(request, errors=_error_fields(exc), errors_for=errors_for, status=exc.status_code)
    return redirect("staff-optimization")


@require_POST
@role_required(Role.ADMIN)
def optimization_rerun(request: HttpRequest) -> HttpResponse:
    try:
        market_date, version = optimization_rerun_queue(actor=request.user)
    except DomainError as exc:
        return _page(request, errors=_error_fields(exc), errors_for="top", status=exc.status_code)
    messages.success(
        request,
        f"Re-optimization queued: prices up to {market_date:%Y-%m-%d}, optimization parameters version {version}. "
        "Reload this page in a moment to see the run.",
    )
    return redirect("staff-optimization")
