from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from advisor.errors import DomainError
from advisor.models import Role, User
from advisor.permissions import role_required

from .access import accounts_for, can_decide, recommendations_for
from .forms import WhatIfForm, whatif_from_query
from .models import PipelineRun, RecommendationStatus
from .selectors import (
    AccountSnapshot,
    account_snapshot,
    current_risk_levels,
    model_portfolio_statistics,
    model_portfolios_current,
    model_universe,
    optimization_run_current,
    optimization_runs_recent,
    recommendation_detail,
    target_preview,
)
from .selectors_accounts import account_summaries
from .services.accounts import account_deposit
from .services.recommendations import recommendation_approve, recommendation_reject
from .services.targets import personal_targets_lookup, target_explanations


def _chart(snapshot: AccountSnapshot) -> dict[str, object]:
    classes = snapshot.classes
    return {
        "canvas": f"chart-{snapshot.account.pk}",
        "labels": [c.name for c in classes],
        "current": [round(float(c.current) * 100, 2) for c in classes],
        "target": [round(float(c.target) * 100, 2) for c in classes],
    }


@role_required(Role.INVESTOR)
def dashboard(request: HttpRequest) -> HttpResponse:
    accounts = list(accounts_for(request.user))  # type: ignore[arg-type]
    investor: User = request.user  # type: ignore[assignment]
    risk_level = current_risk_levels([investor.pk]).get(investor.pk)
    # One look-up of every account's target, shared by the snapshots and "Why this target".
    targets = personal_targets_lookup(accounts=accounts, risk_level=risk_level) if risk_level else {}
    snapshots = [account_snapshot(a, personal_target=targets.get(a.pk)) for a in accounts]
    recommendations = recommendations_for(request.user).order_by("-created_at")[:20]  # type: ignore[arg-type]
    return render(
        request,
        "portfolios/dashboard.html",
        {
            "snapshots": snapshots,
            "account_rows": account_summaries(accounts),
            "charts": [_chart(s) for s in snapshots if s.classes],
            "recommendations": recommendations,
            "preview": target_preview(risk_level) if risk_level else None,
            "why_targets": (
                target_explanations(accounts=accounts, risk_level=risk_level, targets=targets) if risk_level else []
            ),
        },
    )


@require_POST
@role_required(Role.INVESTOR)
def deposit(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(accounts_for(request.user), pk=pk)  # type: ignore[arg-type]
    try:
        movement = account_deposit(account=account, amount=request.POST.get("amount", ""), actor=request.user)  # type: ignore[arg-type]
    except DomainError as exc:
        messages.error(request, " ".join(str(v) for v in exc.fields.values()) or exc.message)
        return redirect("dashboard")
    messages.success(request, f"Deposited ${movement.amount:,.2f}. The nightly pipeline will propose how to invest it.")
    return redirect("dashboard")


@role_required(Role.INVESTOR, Role.ADVISOR, Role.ADMIN)
def recommendation(request: HttpRequest, pk: int) -> HttpResponse:
    rec = get_object_or_404(recommendations_for(request.user), pk=pk)  # type: ignore[arg-type]
    rec = recommendation_detail(rec)
    return render(
        request,
        "portfolios/recommendation.html",
        {
            "rec": rec,
            "can_decide": can_decide(request.user, rec) and rec.status in ("pending", "blocked"),  # type: ignore[arg-type]
            "snapshot": account_snapshot(rec.account),
            "show_numbers": request.user.role != Role.INVESTOR,  # type: ignore[union-attr]
        },
    )


@require_POST
@role_required(Role.ADVISOR)
def recommendation_decide(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    rec = get_object_or_404(recommendations_for(request.user), pk=pk)  # type: ignore[arg-type]
    comment = request.POST.get("comment", "")
    advisor: User = request.user  # type: ignore[assignment]
    try:
        if decision == "approve":
            recommendation_approve(recommendation_id=rec.pk, advisor=advisor, comment=comment)
            messages.success(request, "Approved. The orders go to the broker now.")
        else:
            recommendation_reject(recommendation_id=rec.pk, advisor=advisor, comment=comment)
            messages.success(request, "Rejected.")
    except DomainError as exc:
        detail = " ".join(str(v) for v in exc.fields.values())
        messages.error(request, f"{exc.message} {detail}".strip())
    return redirect("recommendation", pk=rec.pk)


@role_required(Role.ADVISOR)
def advisor_queue(request: HttpRequest) -> HttpResponse:
    recs = recommendations_for(request.user)  # type: ignore[arg-type]
    pending = recs.filter(status__in=[RecommendationStatus.PENDING, RecommendationStatus.BLOCKED]).order_by(
        "created_at"
    )
    recent = recs.exclude(status__in=[RecommendationStatus.PENDING, RecommendationStatus.BLOCKED]).order_by(
        "-decided_at"
    )[:20]
    clients = User.objects.filter(advisor_id=request.user.pk).order_by("email")
    return render(request, "portfolios/advisor_queue.html", {"pending": pending, "recent": recent, "clients": clients})


@role_required(Role.INVESTOR, Role.ADVISOR, Role.ADMIN)
def model_portfolios(request: HttpRequest) -> HttpResponse:
    portfolios = model_portfolios_current()
    frontier = [
        {"x": round(float(p.volatility) * 100, 2), "y": round(float(p.expected_return) * 100, 2), "level": p.risk_level}
        for p in portfolios
    ]
    run = optimization_run_current()
    context: dict[str, object] = {"portfolios": portfolios, "run": run, "frontier": frontier}
    if request.user.role != Role.INVESTOR:  # type: ignore[union-attr]
        context |= {
            "staff": True,
            "statistics": model_portfolio_statistics(portfolios),
            "runs": optimization_runs_recent(10),
            "whatif_form": WhatIfForm(universe=model_universe(run)) if run else None,
        }
    return render(request, "portfolios/model_portfolios.html", context)


@role_required(Role.ADVISOR, Role.ADMIN)
def model_whatif(request: HttpRequest) -> HttpResponse:
    """One level re-solved on demand under another objective and constraints; nothing stored."""
    outcome = whatif_from_query(request.GET, user=request.user)  # type: ignore[arg-type]
    context = {"run": outcome.run, "form": outcome.form, "whatif": outcome.whatif, "errors": outcome.messages}
    return render(request, "portfolios/model_whatif.html", context, status=outcome.status)


@role_required(Role.ADMIN)
def pipeline_runs(request: HttpRequest) -> HttpResponse:
    return render(request, "portfolios/pipeline_runs.html", {"runs": PipelineRun.objects.all()[:50]})
