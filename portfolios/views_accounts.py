"""Pages for accounts and their cash: open an account, the account page with its ledger, recurring deposits and
withdrawals. Investors act on their own accounts; advisors (their clients') and admins read the same pages."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from advisor.errors import DomainError
from advisor.models import Role, User
from advisor.permissions import role_required
from profiling.services.goals import preferences_current

from .access import accounts_for, recurring_deposits_for, withdrawals_for
from .forms import AccountOpenForm
from .models import Account, WithdrawalStatus
from .selectors_accounts import account_summaries, cash_ledger, recurring_deposits_of, withdrawals_of
from .services.accounts import account_open
from .services.cashflows import (
    recurring_deposit_cancel,
    recurring_deposit_create,
    withdrawal_cancel,
    withdrawal_request,
)

LEDGER_PAGE_SIZE = 100


def _user(request: HttpRequest) -> User:
    user: User = request.user  # type: ignore[assignment]
    return user


def _error_text(exc: DomainError) -> str:
    detail = " ".join(str(v) for v in exc.fields.values())
    return detail or exc.message


def _back(request: HttpRequest, account_id: int) -> HttpResponse:
    """Back to the page the form was on: the dashboard or the account page."""
    if request.POST.get("return_to") == "dashboard":
        return redirect(reverse("dashboard") + f"#account-row-{account_id}")
    return redirect("account-detail", pk=account_id)


@role_required(Role.INVESTOR)
def account_new(request: HttpRequest) -> HttpResponse:
    investor = _user(request)
    form = AccountOpenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            account = account_open(
                owner=investor,
                name=form.cleaned_data["name"] or None,
                account_type=form.cleaned_data["account_type"],
                actor=investor,
            )
        except DomainError as exc:
            for name, message in exc.fields.items():
                form.add_error(name if name in form.fields else None, message)
            if not exc.fields:
                form.add_error(None, exc.message)
        else:
            messages.success(request, f"Opened {account.name} ({account.get_account_type_display()}).")
            return redirect("account-detail", pk=account.pk)
    preferences = preferences_current(investor)
    return render(
        request,
        "portfolios/account_new.html",
        {"form": form, "accounts": accounts_for(investor), "preferences": preferences},
        status=400 if form.is_bound and form.errors else 200,
    )


@role_required(Role.INVESTOR, Role.ADVISOR, Role.ADMIN)
def account_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    account: Account = get_object_or_404(accounts_for(user), pk=pk)
    ledger = Paginator(cash_ledger(account), LEDGER_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "portfolios/account_detail.html",
        {
            "summary": account_summaries([account])[0],
            "ledger": ledger,
            "schedules": recurring_deposits_of(account),
            "withdrawals": withdrawals_of(account),
            "can_act": user.pk == account.owner_id,
            "pending": WithdrawalStatus.PENDING,
        },
    )


@require_POST
@role_required(Role.INVESTOR)
def recurring_deposit_new(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(accounts_for(_user(request)), pk=pk)
    try:
        schedule = recurring_deposit_create(
            account=account,
            amount=request.POST.get("amount", ""),
            frequency=request.POST.get("frequency", ""),
            start_date=request.POST.get("start_date", ""),
            actor=_user(request),
        )
    except DomainError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(
            request,
            f"Scheduled ${schedule.amount:,.2f} {schedule.get_frequency_display().lower()}, "
            f"the first on {schedule.start_date.isoformat()}.",
        )
    return _back(request, account.pk)


@require_POST
@role_required(Role.INVESTOR)
def recurring_deposit_stop(request: HttpRequest, pk: int) -> HttpResponse:
    schedule = get_object_or_404(recurring_deposits_for(_user(request)), pk=pk)
    try:
        recurring_deposit_cancel(schedule_id=schedule.pk, actor=_user(request))
    except DomainError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, "Recurring deposit cancelled; the deposits it made stay in your account.")
    return _back(request, schedule.account_id)


@require_POST
@role_required(Role.INVESTOR)
def withdrawal_new(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(accounts_for(_user(request)), pk=pk)
    try:
        withdrawal = withdrawal_request(account=account, amount=request.POST.get("amount", ""), actor=_user(request))
    except DomainError as exc:
        messages.error(request, _error_text(exc))
    else:
        if withdrawal.status == WithdrawalStatus.COMPLETED:
            messages.success(request, f"Withdrew ${withdrawal.amount:,.2f}.")
        else:
            messages.success(
                request,
                f"Withdrawal of ${withdrawal.amount:,.2f} requested. Your cash does not cover it yet: the nightly "
                "pipeline proposes the sales that raise it, and it is paid once they have filled.",
            )
    return _back(request, account.pk)


@require_POST
@role_required(Role.INVESTOR)
def withdrawal_stop(request: HttpRequest, pk: int) -> HttpResponse:
    withdrawal = get_object_or_404(withdrawals_for(_user(request)), pk=pk)
    try:
        withdrawal_cancel(withdrawal_id=withdrawal.pk, actor=_user(request))
    except DomainError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, "Withdrawal cancelled.")
    return _back(request, withdrawal.account_id)
