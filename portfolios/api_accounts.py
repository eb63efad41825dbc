"""API of accounts and their cash: open an account, the cash ledger, recurring deposits and withdrawals.

One thin view per operation: validate the input, scope the account through ``portfolios/access.py`` (other
people's accounts are 404), call one service or selector. Writes are the owner's (investor role); advisors
and admins read their scope.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from advisor.models import User
from advisor.permissions import IsInvestor

from .access import accounts_for, recurring_deposits_for, withdrawals_for
from .models import Account, AccountType, CashMovement, DepositFrequency, RecurringDeposit, WithdrawalRequest
from .selectors_accounts import cash_ledger, recurring_deposits_of, withdrawals_of
from .services.accounts import ACCOUNT_NAME_MAX_LENGTH, account_open
from .services.cashflows import (
    recurring_deposit_cancel,
    recurring_deposit_create,
    withdrawal_cancel,
    withdrawal_request,
)


def _user(request: Request) -> User:
    user: User = request.user  # type: ignore[assignment]
    return user


class _ReadAnyoneWriteInvestor(APIView):
    """GET for any logged-in user (the queryset scopes what they see), POST for investors only."""

    def get_permissions(self) -> list[BasePermission]:
        if self.request.method == "POST":
            return [IsInvestor()]
        return [IsAuthenticated()]


def _account(request: Request, pk: int) -> Account:
    account: Account = get_object_or_404(accounts_for(_user(request)), pk=pk)
    return account


class AccountOutputSerializer(serializers.ModelSerializer):
    owner = serializers.EmailField(source="owner.email")

    class Meta:
        model = Account
        fields = ["id", "name", "account_type", "lot_method", "owner", "created_at"]


class AccountInputSerializer(serializers.Serializer):
    account_type = serializers.ChoiceField(choices=AccountType.choices, default=AccountType.TAXABLE)
    name = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=ACCOUNT_NAME_MAX_LENGTH,
        help_text="Unique among your accounts; empty or absent: the type's default name.",
    )


@extend_schema_view(
    get=extend_schema(summary="Accounts I may see (mine; my clients' for advisors; all for admins)"),
    post=extend_schema(
        request=AccountInputSerializer,
        responses={201: AccountOutputSerializer},
        summary="Open another account (investors)",
        description="Taxable accounts sell tax-minimizing lots first (`tax_min`); IRAs sell first in, first out "
        "(`fifo`). A name you already use (ignoring case) is refused with 400.",
        examples=[
            OpenApiExample("A Roth IRA", value={"account_type": "roth_ira", "name": "Retirement (Roth)"}),
            OpenApiExample(
                "Name taken",
                value={"detail": "Name taken.", "name": ["You already have an account named 'Retirement (Roth)'."]},
                response_only=True,
                status_codes=["400"],
            ),
        ],
    ),
)
class AccountListCreateApi(_ReadAnyoneWriteInvestor, generics.ListAPIView):
    serializer_class = AccountOutputSerializer

    def get_queryset(self) -> QuerySet[Account]:
        return accounts_for(_user(self.request)).order_by("id")

    def post(self, request: Request) -> Response:
        data = AccountInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        account = account_open(
            owner=_user(request),
            name=data.validated_data.get("name") or None,
            account_type=data.validated_data["account_type"],
            actor=_user(request),
        )
        return Response(AccountOutputSerializer(account).data, status=status.HTTP_201_CREATED)


class LedgerEntrySerializer(serializers.ModelSerializer):
    amount = serializers.DecimalField(max_digits=18, decimal_places=2, help_text="Signed: positive adds cash.")
    running_balance = serializers.DecimalField(
        max_digits=18, decimal_places=2, help_text="The cash balance just after this movement."
    )
    recurring_deposit = serializers.IntegerField(source="recurring_deposit_id", allow_null=True)
    withdrawal = serializers.IntegerField(source="withdrawal_id", allow_null=True)
    fill = serializers.IntegerField(source="fill_id", allow_null=True)

    class Meta:
        model = CashMovement
        fields = [
            "id", "created_at", "kind", "amount", "running_balance", "description", "recurring_deposit", "due_on",
            "withdrawal", "fill",
        ]  # fmt: skip


@extend_schema_view(
    get=extend_schema(
        summary="The cash ledger of one account, newest first, with the running balance",
        description="Every movement, signed: deposit, sell and dividend add cash; withdrawal, buy and fee take it. "
        "`running_balance` is the balance right after the movement, over the whole ledger (pages included).",
        examples=[
            OpenApiExample(
                "A recurring deposit",
                value={
                    "id": 42,
                    "created_at": "2026-07-31T22:31:04Z",
                    "kind": "deposit",
                    "amount": "500.00",
                    "running_balance": "1500.00",
                    "description": "Recurring deposit (monthly) due 2026-07-31",
                    "recurring_deposit": 7,
                    "due_on": "2026-07-31",
                    "withdrawal": None,
                    "fill": None,
                },
                response_only=True,
            )
        ],
    )
)
class AccountLedgerApi(generics.ListAPIView):
    serializer_class = LedgerEntrySerializer

    def get_queryset(self) -> QuerySet[CashMovement]:
        return cash_ledger(_account(self.request, self.kwargs["pk"]))


class RecurringDepositOutputSerializer(serializers.ModelSerializer):
    account = serializers.IntegerField(source="account_id")

    class Meta:
        model = RecurringDeposit
        fields = [
            "id", "account", "amount", "frequency", "start_date", "next_date", "active", "created_at", "cancelled_at",
        ]  # fmt: skip


class RecurringDepositInputSerializer(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=18, decimal_places=2, min_value=Decimal("0.01"))
    frequency = serializers.ChoiceField(choices=DepositFrequency.choices)
    start_date = serializers.DateField(help_text="The first deposit; on or after the current market date.")


@extend_schema_view(
    get=extend_schema(summary="Recurring deposits of one account (active and cancelled)"),
    post=extend_schema(
        request=RecurringDepositInputSerializer,
        responses={201: RecurringDepositOutputSerializer},
        summary="Schedule a recurring deposit (the account's owner)",
        description="The nightly pipeline deposits `amount` on every due date from `start_date`: every 7 days, or "
        "monthly on the start date's day (the month's last day when it is shorter). Each due date is deposited "
        "exactly once, missed ones included.",
        examples=[
            OpenApiExample(
                "Monthly on the 31st", value={"amount": "500.00", "frequency": "monthly", "start_date": "2026-08-31"}
            ),
            OpenApiExample(
                "Start in the past",
                value={
                    "detail": "Invalid start date.",
                    "start_date": ["On or after 2026-07-31 (the current market date)."],
                },
                response_only=True,
                status_codes=["400"],
            ),
        ],
    ),
)
class AccountRecurringDepositsApi(_ReadAnyoneWriteInvestor, generics.ListAPIView):
    serializer_class = RecurringDepositOutputSerializer

    def get_queryset(self) -> QuerySet[RecurringDeposit]:
        return recurring_deposits_of(_account(self.request, self.kwargs["pk"]))

    def post(self, request: Request, pk: int) -> Response:
        account = _account(request, pk)
        data = RecurringDepositInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        schedule = recurring_deposit_create(account=account, actor=_user(request), **data.validated_data)
        return Response(RecurringDepositOutputSerializer(schedule).data, status=status.HTTP_201_CREATED)


class RecurringDepositCancelApi(APIView):
    permission_classes = [IsInvestor]

    @extend_schema(
        request=None,
        responses={200: RecurringDepositOutputSerializer},
        summary="Cancel a recurring deposit (the account's owner); 409 if already cancelled",
    )
    def post(self, request: Request, pk: int) -> Response:
        schedule = get_object_or_404(recurring_deposits_for(_user(request)), pk=pk)
        schedule = recurring_deposit_cancel(schedule_id=schedule.pk, actor=_user(request))
        return Response(RecurringDepositOutputSerializer(schedule).data)


class WithdrawalOutputSerializer(serializers.ModelSerializer):
    account = serializers.IntegerField(source="account_id")
    cash_movement = serializers.SerializerMethodField(help_text="The ledger entry that paid it (completed only).")

    class Meta:
        model = WithdrawalRequest
        fields = ["id", "account", "amount", "status", "requested_at", "completed_at", "cash_movement"]

    def get_cash_movement(self, withdrawal: WithdrawalRequest) -> int | None:
        movement: Any = getattr(withdrawal, "cash_movement", None)
        return movement.pk if movement is not None else None


class WithdrawalInputSerializer(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=18, decimal_places=2, min_value=Decimal("0.01"))


@extend_schema_view(
    get=extend_schema(summary="Withdrawals of one account, newest first"),
    post=extend_schema(
        request=WithdrawalInputSerializer,
        responses={201: WithdrawalOutputSerializer},
        summary="Request a withdrawal (the account's owner)",
        description="At most the account's value at the latest prices less the withdrawals already pending. Paid "
        "at once (`completed`) when the cash covers it and no earlier withdrawal waits; otherwise `pending`: the "
        "pipeline proposes sales (overweight classes first, losses harvested where possible) and the withdrawal "
        "is paid, oldest first, once they have filled.",
        examples=[
            OpenApiExample("Two thousand dollars", value={"amount": "2000.00"}, request_only=True),
            OpenApiExample(
                "Paid at once",
                value={
                    "id": 3,
                    "account": 12,
                    "amount": "2000.00",
                    "status": "completed",
                    "requested_at": "2026-08-01T09:12:00Z",
                    "completed_at": "2026-08-01T09:12:00Z",
                    "cash_movement": 57,
                },
                response_only=True,
                status_codes=["201"],
            ),
            OpenApiExample(
                "More than the account is worth",
                value={"detail": "Amount too large.", "amount": ["At most $1,000.00: the account is worth $1,000.00."]},
                response_only=True,
                status_codes=["400"],
            ),
        ],
    ),
)
class AccountWithdrawalsApi(_ReadAnyoneWriteInvestor, generics.ListAPIView):
    serializer_class = WithdrawalOutputSerializer

    def get_queryset(self) -> QuerySet[WithdrawalRequest]:
        return withdrawals_of(_account(self.request, self.kwargs["pk"]))

    def post(self, request: Request, pk: int) -> Response:
        account = _account(request, pk)
        data = WithdrawalInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        withdrawal = withdrawal_request(account=account, amount=data.validated_data["amount"], actor=_user(request))
        withdrawal = withdrawals_of(account).get(pk=withdrawal.pk)
        return Response(WithdrawalOutputSerializer(withdrawal).data, status=status.HTTP_201_CREATED)


class WithdrawalCancelApi(APIView):
    permission_classes = [IsInvestor]

    @extend_schema(
        request=None,
        responses={200: WithdrawalOutputSerializer},
        summary="Cancel a pending withdrawal (the account's owner); 409 once paid or cancelled",
    )
    def post(self, request: Request, pk: int) -> Response:
        withdrawal = get_object_or_404(withdrawals_for(_user(request)), pk=pk)
        withdrawal = withdrawal_cancel(withdrawal_id=withdrawal.pk, actor=_user(request))
        return Response(WithdrawalOutputSerializer(withdrawal).data)
