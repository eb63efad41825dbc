"""DRF endpoints about taxes: yearly summaries, an account's open lots and its realized gains."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from advisor.models import User
from advisor.permissions import IsAdminRole, IsAdvisor, IsInvestor

from .access import accounts_for, clients_for
from .selectors_tax import (
    TaxYearSummary,
    account_lots,
    account_realized_gains,
    market_year,
    tax_year_summary,
    year_parse,
)

YEAR = OpenApiParameter("year", OpenApiTypes.INT, description="Calendar year (default: the market date's year).")


def money() -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=18, decimal_places=2)


class RealizedGainSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    account = serializers.IntegerField(source="account_id")
    lot = serializers.IntegerField(source="lot_id")
    ticker = serializers.CharField(source="asset.ticker")
    quantity = serializers.DecimalField(max_digits=20, decimal_places=6)
    proceeds = money()
    cost_basis = money()
    gain = money()
    term = serializers.CharField()
    acquired_on = serializers.DateField()
    sold_on = serializers.DateField()
    harvest = serializers.BooleanField()
    wash_sale_disallowed = money()
    replacement_lot = serializers.IntegerField(source="replacement_lot_id", allow_null=True)


class TaxTotalsSerializer(serializers.Serializer):
    short_term_gains = money()
    short_term_losses = money()
    short_term_net = money()
    long_term_gains = money()
    long_term_losses = money()
    long_term_net = money()
    net = money()
    wash_sale_disallowed = money()
    losses_harvested = money()
    estimated_tax_saved = serializers.DecimalField(max_digits=18, decimal_places=2, allow_null=True)


class AccountTaxSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="account.id")
    name = serializers.CharField(source="account.name")
    account_type = serializers.CharField(source="account.account_type")
    tax_advantaged = serializers.BooleanField()
    totals = TaxTotalsSerializer()
    sales = RealizedGainSerializer(many=True)


class TaxYearSummarySerializer(serializers.Serializer):
    investor = serializers.IntegerField(source="investor.id")
    year = serializers.IntegerField()
    years = serializers.ListField(child=serializers.IntegerField())
    marginal_rate = serializers.DecimalField(max_digits=5, decimal_places=4, allow_null=True)
    short_term_rate = serializers.DecimalField(max_digits=5, decimal_places=4, allow_null=True)
    long_term_rate = serializers.DecimalField(max_digits=5, decimal_places=4, allow_null=True)
    accounts = AccountTaxSerializer(many=True)
    total = TaxTotalsSerializer(help_text="Taxable accounts only: gains inside an IRA are not taxed.")


def _summary(request: Request, investor: User) -> TaxYearSummary:
    year = year_parse(request.query_params.get("year"), default=market_year())
    return tax_year_summary(investor=investor, year=year)


class TaxSummaryApi(APIView):
    permission_classes = [IsInvestor]

    @extend_schema(parameters=[YEAR], responses=TaxYearSummarySerializer, summary="My realized gains in a year")
    def get(self, request: Request) -> Response:
        investor: User = request.user  # type: ignore[assignment]
        return Response(TaxYearSummarySerializer(_summary(request, investor)).data)


class ClientTaxSummaryApi(APIView):
    permission_classes = [IsAdvisor | IsAdminRole]

    @extend_schema(parameters=[YEAR], responses=TaxYearSummarySerializer, summary="A client's realized gains in a year")
    def get(self, request: Request, pk: int) -> Response:
        investor = get_object_or_404(clients_for(request.user), pk=pk)  # type: ignore[arg-type]
        return Response(TaxYearSummarySerializer(_summary(request, investor)).data)


class OpenLotSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="lot.id")
    ticker = serializers.CharField()
    quantity = serializers.DecimalField(source="lot.quantity", max_digits=20, decimal_places=6)
    original_quantity = serializers.DecimalField(source="lot.original_quantity", max_digits=20, decimal_places=6)
    cost_per_share = serializers.DecimalField(source="lot.cost_per_share", max_digits=18, decimal_places=6)
    cost_basis = money()
    acquired_on = serializers.DateField(source="lot.acquired_on")
    holding_start = serializers.DateField()
    long_term_from = serializers.DateField()
    term_if_sold = serializers.CharField(allow_null=True, help_text="The term of a sale at the market date.")
    price = serializers.DecimalField(max_digits=18, decimal_places=6, allow_null=True)
    market_value = serializers.DecimalField(max_digits=18, decimal_places=2, allow_null=True)
    unrealized_gain = serializers.DecimalField(max_digits=18, decimal_places=2, allow_null=True)
    wash_sale_adjustment = serializers.DecimalField(source="lot.wash_sale_adjustment", max_digits=18, decimal_places=2)


class AccountLotsSerializer(serializers.Serializer):
    account = serializers.IntegerField()
    market_date = serializers.DateField(allow_null=True)
    lots = OpenLotSerializer(many=True)


class AccountLotsApi(APIView):
    @extend_schema(responses=AccountLotsSerializer, summary="Open tax lots of one account at the latest close")
    def get(self, request: Request, pk: int) -> Response:
        account = get_object_or_404(accounts_for(request.user), pk=pk)  # type: ignore[arg-type]
        market_date, rows = account_lots(account)
        return Response(AccountLotsSerializer({"account": account.pk, "market_date": market_date, "lots": rows}).data)


class AccountRealizedGainsApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("year", OpenApiTypes.INT, description="Calendar year (default: all years).")],
        responses=RealizedGainSerializer(many=True),
        summary="Realized gains of one account (paged: limit, offset)",
    )
    def get(self, request: Request, pk: int) -> Response:
        account = get_object_or_404(accounts_for(request.user), pk=pk)  # type: ignore[arg-type]
        wanted = request.query_params.get("year")
        year = year_parse(wanted, default=0) if wanted else None
        # Years of harvesting make a long list: paged like every list of the API (?limit=&offset=).
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(account_realized_gains(account, year), request, view=self) or []
        return paginator.get_paginated_response(RealizedGainSerializer(page, many=True).data)
