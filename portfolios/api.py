"""DRF endpoints of the portfolios app: one view per operation, every list scoped to the user."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from advisor.models import User
from advisor.permissions import IsAdminRole, IsAdvisor, IsInvestor

from .access import accounts_for, recommendations_for
from .models import Account, ModelPortfolio, PipelineRun, Recommendation
from .selectors import account_snapshot, model_portfolios_current, recommendation_detail
from .services.accounts import account_deposit
from .services.recommendations import recommendation_approve, recommendation_reject


class WeightSerializer(serializers.Serializer):
    ticker = serializers.CharField(source="asset.ticker")
    asset_class = serializers.CharField(source="asset.asset_class.code")
    weight = serializers.DecimalField(max_digits=9, decimal_places=6)


class ModelPortfolioSerializer(serializers.ModelSerializer):
    weights = WeightSerializer(many=True)
    optimization_run = serializers.IntegerField(source="run_id")

    class Meta:
        model = ModelPortfolio
        fields = [
            "id", "risk_level", "risk_aversion", "objective", "expected_return", "volatility", "optimization_run",
            "weights",
        ]  # fmt: skip


class ModelPortfolioListApi(APIView):
    @extend_schema(responses=ModelPortfolioSerializer(many=True), summary="Current model portfolios, levels 1-10")
    def get(self, request: Request) -> Response:
        return Response(ModelPortfolioSerializer(model_portfolios_current(), many=True).data)


class AccountSerializer(serializers.ModelSerializer):
    owner = serializers.EmailField(source="owner.email")

    class Meta:
        model = Account
        fields = ["id", "name", "account_type", "owner", "created_at"]


class AccountListApi(generics.ListAPIView):
    serializer_class = AccountSerializer

    def get_queryset(self) -> QuerySet[Account]:
        return accounts_for(self.request.user).order_by("id")  # type: ignore[arg-type]


class AccountDetailApi(APIView):
    class AccountSnapshotSerializer(serializers.Serializer):
        class PositionSerializer(serializers.Serializer):
            ticker = serializers.CharField()
            asset_class = serializers.CharField()
            quantity = serializers.DecimalField(max_digits=20, decimal_places=6)
            price = serializers.DecimalField(max_digits=18, decimal_places=6)
            value = serializers.DecimalField(max_digits=18, decimal_places=2)
            weight = serializers.DecimalField(max_digits=9, decimal_places=4)
            target_weight = serializers.DecimalField(max_digits=9, decimal_places=6)

        class ClassSerializer(serializers.Serializer):
            code = serializers.CharField()
            name = serializers.CharField()
            current = serializers.DecimalField(max_digits=9, decimal_places=6)
            target = serializers.DecimalField(max_digits=9, decimal_places=6)
            drift = serializers.DecimalField(max_digits=9, decimal_places=6)

        id = serializers.IntegerField(source="account.id")
        name = serializers.CharField(source="account.name")
        market_date = serializers.DateField(allow_null=True)
        cash = serializers.DecimalField(max_digits=18, decimal_places=2)
        invested = serializers.DecimalField(max_digits=18, decimal_places=2)
        total = serializers.DecimalField(max_digits=18, decimal_places=2)
        risk_level = serializers.IntegerField(allow_null=True)
        max_drift = serializers.DecimalField(max_digits=9, decimal_places=6)
        positions = PositionSerializer(many=True)
        classes = ClassSerializer(many=True)

    @extend_schema(responses=AccountSnapshotSerializer, summary="Value, cash, positions and drift of one account")
    def get(self, request: Request, pk: int) -> Response:
        account = get_object_or_404(accounts_for(request.user), pk=pk)  # type: ignore[arg-type]
        return Response(self.AccountSnapshotSerializer(account_snapshot(account)).data)


class AccountDepositApi(APIView):
    permission_classes = [IsInvestor]

    class DepositInputSerializer(serializers.Serializer):
        amount = serializers.DecimalField(max_digits=18, decimal_places=2, min_value=Decimal("0.01"))

    class CashMovementSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        kind = serializers.CharField()
        amount = serializers.DecimalField(max_digits=18, decimal_places=2)
        created_at = serializers.DateTimeField()

    @extend_schema(
        request=DepositInputSerializer,
        responses={201: CashMovementSerializer},
        summary="Deposit simulated cash into my account",
        examples=[OpenApiExample("Ten thousand dollars", value={"amount": "10000.00"}, request_only=True)],
    )
    def post(self, request: Request, pk: int) -> Response:
        account = get_object_or_404(accounts_for(request.user), pk=pk)  # type: ignore[arg-type]
        data = self.DepositInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        movement = account_deposit(account=account, amount=data.validated_data["amount"], actor=request.user)  # type: ignore[arg-type]
        return Response(self.CashMovementSerializer(movement).data, status=status.HTTP_201_CREATED)


class FindingSerializer(serializers.Serializer):
    rule_code = serializers.CharField()
    severity = serializers.CharField()
    message = serializers.CharField()


class TradeSerializer(serializers.Serializer):
    ticker = serializers.CharField(source="asset.ticker")
    side = serializers.CharField()
    quantity = serializers.DecimalField(max_digits=20, decimal_places=6)
    price = serializers.DecimalField(max_digits=18, decimal_places=6)
    amount = serializers.DecimalField(max_digits=18, decimal_places=2)


class RecommendationSerializer(serializers.ModelSerializer):
    account = serializers.IntegerField(source="account_id")
    investor = serializers.EmailField(source="account.owner.email")

    class Meta:
        model = Recommendation
        fields = [
            "id", "account", "investor", "kind", "status", "risk_level", "market_date", "triggers",
            "explanation", "total_value", "cash_before", "estimated_cost", "created_at", "decided_at",
            "decision_comment", "executed_at",
        ]  # fmt: skip


class RecommendationDetailSerializer(RecommendationSerializer):
    trades = TradeSerializer(many=True)
    findings = FindingSerializer(many=True)

    class Meta(RecommendationSerializer.Meta):
        fields = [*RecommendationSerializer.Meta.fields, "drift", "trades", "findings"]


class RecommendationListApi(generics.ListAPIView):
    serializer_class = RecommendationSerializer

    def get_queryset(self) -> QuerySet[Recommendation]:
        queryset = recommendations_for(self.request.user).order_by("-created_at", "-id")  # type: ignore[arg-type]
        wanted = self.request.query_params.get("status")
        return queryset.filter(status=wanted) if wanted else queryset


class RecommendationDetailApi(APIView):
    @extend_schema(responses=RecommendationDetailSerializer, summary="One recommendation with trades and findings")
    def get(self, request: Request, pk: int) -> Response:
        rec = get_object_or_404(recommendations_for(request.user), pk=pk)  # type: ignore[arg-type]
        return Response(RecommendationDetailSerializer(recommendation_detail(rec)).data)


class DecisionInputSerializer(serializers.Serializer):
    comment = serializers.CharField(allow_blank=True, required=False, default="", max_length=2000)


class _RecommendationDecisionApi(APIView):
    """One of the assigned advisor's decisions; the service checks assignment and state."""

    permission_classes = [IsAdvisor]
    decide: Callable[..., Recommendation]

    def post(self, request: Request, pk: int) -> Response:
        rec = get_object_or_404(recommendations_for(request.user), pk=pk)  # type: ignore[arg-type]
        data = DecisionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        advisor: User = request.user  # type: ignore[assignment]
        rec = type(self).decide(recommendation_id=rec.pk, advisor=advisor, comment=data.validated_data["comment"])
        return Response(RecommendationSerializer(rec).data)


@extend_schema_view(
    post=extend_schema(
        request=DecisionInputSerializer, responses=RecommendationSerializer, summary="Approve (assigned advisor)"
    )
)
class RecommendationApproveApi(_RecommendationDecisionApi):
    decide = staticmethod(recommendation_approve)


@extend_schema_view(
    post=extend_schema(
        request=DecisionInputSerializer, responses=RecommendationSerializer, summary="Reject with a reason"
    )
)
class RecommendationRejectApi(_RecommendationDecisionApi):
    decide = staticmethod(recommendation_reject)


class PipelineRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = PipelineRun
        fields = [
            "id",
            "book",
            "market_date",
            "status",
            "stage",
            "chunks_total",
            "chunks_finished",
            "started_at",
            "finished_at",
            "optimization_run",
            "counts",
            "timings",
            "notes",
            "error",
        ]


class PipelineRunListApi(generics.ListAPIView):
    permission_classes = [IsAdminRole]
    serializer_class = PipelineRunSerializer
    queryset = PipelineRun.objects.order_by("-market_date", "book")
