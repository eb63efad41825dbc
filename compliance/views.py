from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from advisor.errors import DomainError
from advisor.models import Role
from advisor.permissions import role_required

from .audit import audit_verify
from .models import AuditEvent, RestrictedAsset
from .services import UNIVERSE_TICKERS, restricted_add, restricted_remove


@role_required(Role.ADMIN)
def audit_log(request: HttpRequest) -> HttpResponse:
    events = AuditEvent.objects.select_related("actor").order_by("-id")[:200]
    verified = "verify" in request.GET
    count, broken = audit_verify() if verified else (None, None)
    return render(
        request,
        "compliance/audit_log.html",
        {"events": events, "verified": verified, "count": count, "broken": broken},
    )


def _restricted_list_page(
    request: HttpRequest, *, errors: dict[str, str] | None = None, status: int = 200
) -> HttpResponse:
    entries = list(RestrictedAsset.objects.select_related("added_by", "removed_by").order_by("ticker", "-added_at"))
    return render(
        request,
        "compliance/restricted_list.html",
        {
            "active": [e for e in entries if e.removed_at is None],
            "past": [e for e in entries if e.removed_at is not None],
            "tickers": sorted(UNIVERSE_TICKERS),
            "errors": errors or {},
            "form": request.POST if request.method == "POST" else {},
        },
        status=status,
    )


def _error_fields(exc: DomainError) -> dict[str, str]:
    fields = {k: v if isinstance(v, str) else " ".join(v) for k, v in exc.fields.items()}
    return fields or {"__all__": exc.message}


@role_required(Role.ADMIN)
def restricted_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            entry = restricted_add(
                actor=request.user, ticker=request.POST.get("ticker", ""), reason=request.POST.get("reason", "")
            )
        except DomainError as exc:
            return _restricted_list_page(request, errors=_error_fields(exc), status=400)
        messages.success(request, f"{entry.ticker} is now restricted.")
        return redirect("staff-restricted")
    return _restricted_list_page(request)


@require_POST
@role_required(Role.ADMIN)
def restricted_list_remove(request: HttpRequest, ticker: str) -> HttpResponse:
    try:
        entry = restricted_remove(actor=request.user, ticker=ticker, reason=request.POST.get("reason", ""))
    except DomainError as exc:
        errors = {f"remove_{k}" if k == "reason" else k: v for k, v in _error_fields(exc).items()}
        errors["remove_ticker"] = ticker
        return _restricted_list_page(request, errors=errors, status=400)
    messages.success(request, f"{entry.ticker} is no longer restricted.")
    return redirect("staff-restricted")
