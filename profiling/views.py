from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from advisor.models import Role
from advisor.permissions import role_required
from portfolios.selectors import model_portfolio_for

from .forms import QuestionnaireForm
from .scoring import QUESTIONS_BY_KEY
from .selectors import profile_current, profile_history
from .services import profile_submit


@role_required(Role.INVESTOR)
@require_http_methods(["GET", "POST"])
def questionnaire(request: HttpRequest) -> HttpResponse:
    current = profile_current(investor=request.user)  # type: ignore[arg-type]
    initial = current.answers if current else None
    form = QuestionnaireForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        profile_submit(investor=request.user, answers=form.cleaned_data)  # type: ignore[arg-type]
        messages.success(request, "Your risk profile is scored.")
        return redirect("profile-result")
    return render(request, "profiling/questionnaire.html", {"form": form}, status=400 if form.errors else 200)


@role_required(Role.INVESTOR)
def result(request: HttpRequest) -> HttpResponse:
    profile = profile_current(investor=request.user)  # type: ignore[arg-type]
    if profile is None:
        return redirect("questionnaire")
    drivers = []
    for d in profile.drivers:
        question = QUESTIONS_BY_KEY[d["question"]]
        drivers.append(
            {
                "question": question.text,
                "answer": question.choice(d["answer"]).label,
                "dimension": d["dimension"],
                "effect": float(d["effect"]),
            }
        )
    portfolio = model_portfolio_for(risk_level=profile.risk_level)
    return render(
        request,
        "profiling/result.html",
        {
            "profile": profile,
            "drivers": drivers,
            "portfolio": portfolio,
            "history": profile_history(investor=request.user)[1:6],  # type: ignore[arg-type]
        },
    )
