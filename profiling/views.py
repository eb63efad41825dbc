from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from advisor.errors import DomainError
from advisor.models import Role, User
from advisor.permissions import role_required
from portfolios.selectors import target_preview
from portfolios.universe import ESG_FLAGS

from .models import Goal, GoalType, LiquidityNeed, RiskProfile
from .scoring import Definition
from .selectors import (
    behavior_events_for,
    behavior_score_latest,
    goals_for,
    profile_current,
    profile_history,
    segment_current,
    sell_everything_requests_for,
)
from .services import (
    goal_create,
    goal_deactivate,
    preferences_update,
    profile_confirm,
    profile_override,
    profile_review,
    questionnaire_definition,
    questionnaire_get,
)
from .services.behaviour import behaviour_step_restorable
from .services.goals import ACCOUNT_TYPES, preferences_current


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def drivers_for(profile: RiskProfile, definition: Definition) -> list[dict[str, Any]]:
    rows = []
    for d in profile.drivers:
        question = definition.question(d["question"])
        rows.append(
            {
                "question": question.text,
                "answer": question.choice(d["answer"]).label,
                "dimension": d["dimension"],
                "effect": float(d["effect"]),
            }
        )
    return rows


@role_required(Role.INVESTOR)
def result(request: HttpRequest) -> HttpResponse:
    profile = profile_current(investor=_user(request))
    if profile is None:
        return redirect("questionnaire")
    definition = questionnaire_definition(profile.questionnaire or questionnaire_get(profile.questionnaire_version))
    preview = target_preview(profile.effective_risk_level)
    return render(
        request,
        "profiling/result.html",
        {
            "profile": profile,
            "drivers": drivers_for(profile, definition),
            "portfolio": preview.portfolio,
            "outlook": preview.outlook,
            "preview": preview,
            "restorable": behaviour_step_restorable(investor=_user(request)),
        },
    )


@require_POST
@role_required(Role.INVESTOR)
def restore_level(request: HttpRequest) -> HttpResponse:
    from .services.behaviour import behaviour_step_restore

    try:
        behaviour_step_restore(investor=_user(request))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Your risk level is back to the level your answers give.")
    return redirect("profile-result")


@require_POST
@role_required(Role.INVESTOR)
def confirm(request: HttpRequest, pk: int) -> HttpResponse:
    get_object_or_404(RiskProfile, pk=pk, investor=_user(request))
    try:
        profile_confirm(investor=_user(request), profile_id=pk)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Thank you: your answers are confirmed. Your advisor will review them with you.")
    return redirect("profile-result")


@role_required(Role.INVESTOR)
def history(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "profiling/history.html",
        {"profiles": profile_history(investor=_user(request)), "events": behavior_events_for(investor=_user(request))},
    )


@role_required(Role.INVESTOR)
@require_http_methods(["GET", "POST"])
def goals(request: HttpRequest) -> HttpResponse:
    errors: dict[str, Any] = {}
    if request.method == "POST":
        try:
            goal_create(investor=_user(request), data=request.POST)
        except DomainError as exc:
            errors = exc.fields
        else:
            messages.success(request, "Goal added.")
            return redirect("goals")
    return render(
        request,
        "profiling/goals.html",
        {
            "goals": goals_for(investor=_user(request)),
            "goal_types": GoalType.choices,
            "accounts": _user(request).accounts.all(),
            "errors": errors,
            "data": request.POST,
            "profile": profile_current(investor=_user(request)),
        },
        status=400 if errors else 200,
    )


@require_POST
@role_required(Role.INVESTOR)
def goal_remove(request: HttpRequest, pk: int) -> HttpResponse:
    get_object_or_404(Goal, pk=pk, investor=_user(request), is_active=True)
    try:
        goal_deactivate(investor=_user(request), goal_id=pk)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Goal removed.")
    return redirect("goals")


@role_required(Role.INVESTOR)
@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest) -> HttpResponse:
    errors: dict[str, Any] = {}
    if request.method == "POST":
        data = {
            "esg_exclusions": request.POST.getlist("esg_exclusions"),
            "account_types": request.POST.getlist("account_types"),
            "marginal_tax_rate": request.POST.get("marginal_tax_rate", ""),
            "liquidity_need": request.POST.get("liquidity_need", ""),
        }
        try:
            preferences_update(investor=_user(request), data=data)
        except DomainError as exc:
            errors = exc.fields
        else:
            messages.success(request, "Preferences saved.")
            return redirect("preferences")
    return render(
        request,
        "profiling/preferences.html",
        {
            "current": preferences_current(_user(request)),
            "esg_flags": ESG_FLAGS.items(),
            "account_types": ACCOUNT_TYPES,
            "liquidity_needs": LiquidityNeed.choices,
            "errors": errors,
        },
        status=400 if errors else 200,
    )


@role_required(Role.ADVISOR, Role.ADMIN)
def client(request: HttpRequest, pk: int) -> HttpResponse:
    """An advisor's view of one client: scores, flags, history, behaviour, segment; override and review."""
    user = _user(request)
    clients = User.objects.filter(role=Role.INVESTOR)
    if user.role == Role.ADVISOR:
        clients = clients.filter(advisor=user)
    investor = get_object_or_404(clients, pk=pk)
    profile = profile_current(investor=investor)
    definition = (
        questionnaire_definition(profile.questionnaire or questionnaire_get(profile.questionnaire_version))
        if profile
        else None
    )
    return render(
        request,
        "profiling/client.html",
        {
            "client": investor,
            "profile": profile,
            "drivers": drivers_for(profile, definition) if profile and definition else [],
            "history": profile_history(investor=investor),
            "events": behavior_events_for(investor=investor),
            "sell_requests": sell_everything_requests_for(investor=investor),
            "behavior_score": behavior_score_latest(investor=investor),
            "segment": segment_current(investor=investor),
            "goals": goals_for(investor=investor),
            "preferences": preferences_current(investor),
            "can_act": user.role == Role.ADVISOR,
            "levels": range(1, 11),
        },
    )


@require_POST
@role_required(Role.ADVISOR)
def client_override(request: HttpRequest, pk: int) -> HttpResponse:
    investor = get_object_or_404(User.objects.filter(role=Role.INVESTOR, advisor=_user(request)), pk=pk)
    try:
        profile_override(
            advisor=_user(request),
            investor=investor,
            risk_level=request.POST.get("risk_level", ""),
            reason=request.POST.get("reason", ""),
        )
    except DomainError as exc:
        messages.error(request, " ".join(str(v) for v in exc.fields.values()) or exc.message)
    else:
        messages.success(request, "Risk level overridden; the change is in the profile history and the audit log.")
    return redirect("advisor-client", pk=pk)


@require_POST
@role_required(Role.ADVISOR)
def client_review(request: HttpRequest, pk: int) -> HttpResponse:
    investor = get_object_or_404(User.objects.filter(role=Role.INVESTOR, advisor=_user(request)), pk=pk)
    profile = profile_current(investor=investor)
    try:
        if profile is None:
            raise DomainError("Nothing to review.")
        profile_review(advisor=_user(request), profile_id=profile.pk, comment=request.POST.get("comment", ""))
    except DomainError as exc:
        messages.error(request, " ".join(str(v) for v in exc.fields.values()) or exc.message)
    else:
        messages.success(request, "Profile reviewed: recommendations for this client can be approved again.")
    return redirect("advisor-client", pk=pk)
