"""Optimization runs over the API: advisors and admins read them; admins ask for a re-optimization.

A run stores what reproduces it: the data snapshot hash of the exact prices, the parameters (the policy's
values and version), the solver, per level the objective and binding constraints, the estimates and the timings.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from advisor.permissions import IsAdminRole, IsAdvisor

from .api import WeightSerializer
from .models import ModelPortfolio, OptimizationRun
from .selectors import optimization_run_detail
from .services.reoptimization import optimization_rerun_queue


class OptimizationRunSerializer(serializers.ModelSerializer):
    policy_version = serializers.SerializerMethodField(help_text="Version of the optimization parameters used.")
    flags = serializers.SerializerMethodField(help_text="Why the estimates deserve a second look (a shortened window).")

    class Meta:
        model = OptimizationRun
        fields = [
            "id", "created_at", "as_of", "status", "data_hash", "fingerprint", "policy_version", "solver", "timings",
            "flags", "error",
        ]  # fmt: skip

    def get_policy_version(self, run: OptimizationRun) -> int | None:
        version = run.parameters.get("policy_version")
        return int(version) if version is not None else None

    def get_flags(self, run: OptimizationRun) -> list[str]:
        return [str(flag) for flag in run.estimates.get("flags", [])]


class BindingSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="asset_maximum, class_maximum, class_minimum or bond_cash_minimum")
    name = serializers.CharField()
    limit = serializers.FloatField()


class RunModelPortfolioSerializer(serializers.ModelSerializer):
    weights = WeightSerializer(many=True)
    binding = serializers.SerializerMethodField(help_text="The house constraints at their limit in this level.")

    class Meta:
        model = ModelPortfolio
        fields = [
            "risk_level", "risk_aversion", "objective", "expected_return", "volatility", "solver_status", "weights",
            "binding",
        ]  # fmt: skip

    @extend_schema_field(BindingSerializer(many=True))
    def get_binding(self, portfolio: ModelPortfolio) -> list[dict[str, Any]]:
        binding: dict[str, list[dict[str, Any]]] = portfolio.run.estimates.get("binding", {})
        return list(binding.get(str(portfolio.risk_level), []))


class OptimizationRunDetailSerializer(OptimizationRunSerializer):
    model_portfolios = RunModelPortfolioSerializer(many=True)

    class Meta(OptimizationRunSerializer.Meta):
        fields = [*OptimizationRunSerializer.Meta.fields, "parameters", "estimates", "model_portfolios"]


class _ReadOrAdminWrite(BasePermission):
    """Advisors and admins read; only admins write."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method == "POST":
            return IsAdminRole().has_permission(request, view)
        return IsAdvisor().has_permission(request, view) or IsAdminRole().has_permission(request, view)


RUN_EXAMPLE = {
    "id": 42,
    "created_at": "2026-08-01T06:00:03Z",
    "as_of": "2026-07-31",
    "status": "succeeded",
    "data_hash": "9f2c1e0b7d5a4c3e8b6f1a2d3c4e5f60718293a4b5c6d7e8f9012a3b4c5d6e7f",
    "fingerprint": "1b7e4c2d9a8f6e5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918f7e6d5c",
    "policy_version": 1,
    "solver": "CLARABEL (cvxpy, DPP)",
    "timings": {"load_seconds": 0.41, "estimate_seconds": 0.09, "optimize_seconds": 0.12, "total_seconds": 0.63},
    "flags": [],
    "error": "",
}


class OptimizationRunListApi(generics.ListAPIView):
    """Optimization runs, newest first (advisors and admins); an admin queues a re-optimization (POST)."""

    permission_classes = [_ReadOrAdminWrite]
    serializer_class = OptimizationRunSerializer

    def get_queryset(self) -> QuerySet[OptimizationRun]:
        return OptimizationRun.objects.order_by("-created_at", "-id")

    @extend_schema(
        summary="Optimization runs",
        examples=[OpenApiExample("A run", value=RUN_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=None,
        responses={
            202: inline_serializer(
                "ReoptimizationQueued",
                {
                    "detail": serializers.CharField(),
                    "market_date": serializers.DateField(),
                    "policy_version": serializers.IntegerField(),
                },
            )
        },
        summary="Re-optimize now (admins): model portfolios of the latest prices, then every live account's target",
        examples=[
            OpenApiExample(
                "Queued",
                value={
                    "detail": "Re-optimization queued: prices up to 2026-07-31, optimization parameters version 1.",
                    "market_date": "2026-07-31",
                    "policy_version": 1,
                },
                response_only=True,
                status_codes=["202"],
            )
        ],
    )
    def post(self, request: Request) -> Response:
        market_date, version = optimization_rerun_queue(actor=request.user)
        return Response(
            {
                "detail": (
                    f"Re-optimization queued: prices up to {market_date.isoformat()}, "
                    f"optimization parameters version {version}."
                ),
                "market_date": market_date,
                "policy_version": version,
            },
            status=status.HTTP_202_ACCEPTED,
        )


class OptimizationRunDetailApi(generics.GenericAPIView):
    """One run with its parameters, estimates and model portfolios: enough to reproduce it."""

    permission_classes = [IsAdvisor | IsAdminRole]
    serializer_class = OptimizationRunDetailSerializer

    @extend_schema(summary="One optimization run, with its model portfolios")
    def get(self, request: Request, pk: int) -> Response:
        run = optimization_run_detail(run_id=pk)
        if run is None:
            raise Http404
        return Response(self.get_serializer(run).data)
