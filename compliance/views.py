from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from advisor.models import Role
from advisor.permissions import role_required

from .audit import audit_verify
from .models import AuditEvent


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
