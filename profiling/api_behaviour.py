"""DRF endpoint of the investor's "sell everything" request.

The request is recorded for the investor's advisor to act on: no order is created automatically. During a
drawdown it is also the ``panic_sell_request`` behavioural event (see docs/behaviour.md).
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from advisor.models import User
from advisor.permissions import IsInvestor
from portfolios.access import accounts_for

from .services.behaviour import MAX_REQUEST_REASON, sell_everything_request

NEXT_STEP = (
    "Your advisor has your request and will contact you before anything is sold; no trade is made automatically."
)


class SellEverythingRequestApi(APIView):
    """An investor asks to sell everything in one of their own accounts (other accounts are 404)."""

    permission_classes = [IsInvestor]

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=MAX_REQUEST_REASON)

    class OutputSerializer(serializers.Serializer):
        account = serializers.IntegerField(source="account_id")
        reason = serializers.CharField()
        requested_at = serializers.DateTimeField()
        market_drawdown = serializers.DecimalField(max_digits=6, decimal_places=4)
        in_drawdown = serializers.BooleanField()
        next_step = serializers.SerializerMethodField()

        def get_next_step(self, obj: object) -> str:
            return NEXT_STEP

    @extend_schema(
        request=InputSerializer,
        responses={201: OutputSerializer},
        summary="Ask my advisor to sell everything in my account (no trade is made automatically)",
        examples=[
            OpenApiExample("Worried", value={"reason": "I cannot watch it fall any further."}, request_only=True)
        ],
    )
    def post(self, request: Request, pk: int) -> Response:
        investor: User = request.user  # type: ignore[assignment]
        account = get_object_or_404(accounts_for(investor), pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = sell_everything_request(investor=investor, account_id=account.pk, reason=data.validated_data["reason"])
        return Response(self.OutputSerializer(result).data, status=status.HTTP_201_CREATED)
