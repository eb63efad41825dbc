"""Pages about taxes: an investor's yearly summary, and the same summary of a client for advisors and admins."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render

from advisor.errors import InvalidInputError
from advisor.models import Role, User
from advisor.permissions import role_required

from .access import clients_for
from .selectors_tax import market_year, tax_year_summary, year_parse


def _render(request: HttpRequest, investor: User, *, own: bool) -> HttpResponse:
    try:
        year = year_parse(request.GET.get("year"), default=market_year())
    except InvalidInputError as exc:
        return HttpResponseBadRequest(str(exc.fields["year"]))
    summary = tax_year_summary(investor=investor, year=year)
    return render(request, "portfolios/tax_summary.html", {"summary": summary, "own": own, "client": investor})


@role_required(Role.INVESTOR)
def tax_summary(request: HttpRequest) -> HttpResponse:
    investor: User = request.user  # type: ignore[assignment]
    return _render(request, investor, own=True)


@role_required(Role.ADVISOR, Role.ADMIN)
def client_tax_summary(request: HttpRequest, pk: int) -> HttpResponse:
    investor = get_object_or_404(clients_for(request.user), pk=pk)  # type: ignore[arg-type]
    return _render(request, investor, own=False)
