from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.db import connection
from django.db.utils import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from kombu import Connection
from kombu.exceptions import KombuError

from .errors import DomainError
from .forms import AssignAdvisorForm, SignupForm
from .models import Role, User
from .permissions import role_required
from .services import investor_assign_advisor, investor_signup


def home(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not user.is_authenticated:
        return render(request, "home.html")
    if user.role == Role.ADVISOR:
        return redirect("advisor-queue")
    if user.role == Role.ADMIN:
        return redirect("staff-investors")
    return redirect("dashboard")


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = investor_signup(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
                full_name=form.cleaned_data["full_name"],
            )
        except DomainError as exc:
            for field, message in exc.fields.items():
                form.add_error(field if field in form.fields else None, message)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, "Welcome to Advisor. Start with the risk questionnaire.")
            return redirect("questionnaire")
    return render(request, "registration/signup.html", {"form": form}, status=400 if form.errors else 200)


def _broker_reachable() -> tuple[bool, str]:
    url = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        folder = str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        ok = Path(folder).is_dir()
        return ok, "filesystem broker folder present" if ok else f"missing folder {folder}"
    try:
        with Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except (OSError, KombuError) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return True, "connected"


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        database = {"ok": True, "vendor": connection.vendor}
    except DatabaseError as exc:
        database = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    broker_ok, broker_detail = _broker_reachable()
    ok = database["ok"] and broker_ok
    body = {
        "status": "ok" if ok else "unavailable",
        "database": database,
        "broker": {"ok": broker_ok, "detail": broker_detail},
        "seconds": round(time.perf_counter() - started, 4),
    }
    return JsonResponse(body, status=200 if ok else 503)


@role_required(Role.ADMIN)
def staff_investors(request: HttpRequest) -> HttpResponse:
    investors = User.objects.filter(role=Role.INVESTOR).select_related("advisor").order_by("email")
    advisors = User.objects.filter(role=Role.ADVISOR).order_by("email")
    return render(request, "staff/investors.html", {"investors": investors, "advisors": advisors})


@require_POST
@role_required(Role.ADMIN)
def staff_assign_advisor(request: HttpRequest, pk: int) -> HttpResponse:
    investor = get_object_or_404(User, pk=pk, role=Role.INVESTOR)
    form = AssignAdvisorForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose an advisor from the list.")
        return redirect("staff-investors")
    try:
        investor_assign_advisor(investor=investor, advisor=form.cleaned_data["advisor"], actor=request.user)  # type: ignore[arg-type]
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Advisor for {investor.email} updated.")
    return redirect("staff-investors")
