"""Parameter governance over the API (admins only): the sets in force, and four-eyes changes to them.

One thin view per operation; the services in ``compliance/parameters.py`` enforce the rules (proposer never
decides, stale base version, whole-set validation) and their errors map to 400 / 403 / 409 with field messages.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from advisor.permissions import IsAdminRole
from portfolios.policy import OPTIMIZATION, REBALANCING, OptimizationPolicy, RebalancingPolicy, policy_values

from .models import ParameterChange
from .parameters import (
    PARAMETER_SETS,
    ParameterSetState,
    parameter_change_approve,
    parameter_change_diffs,
    parameter_change_propose,
    parameter_change_reject,
    parameter_changes_recent,
    parameter_sets_current,
)


class ParameterSetSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="0: the defaults in code, with the deployment's settings.")
    values = serializers.JSONField()
    in_force_since = serializers.DateTimeField(source="stored.created_at", allow_null=True, default=None)
    change = serializers.IntegerField(source="stored.change_id", allow_null=True, default=None)


class ParameterChangeOutputSerializer(serializers.ModelSerializer):
    proposed_by = serializers.EmailField(source="proposed_by.email")
    decided_by = serializers.EmailField(source="decided_by.email", allow_null=True, default=None)
    version = serializers.SerializerMethodField(help_text="The version the approval created (approved only).")
    changes = serializers.SerializerMethodField(
        help_text="Each changed parameter with its value in the base version (old) and the proposed value (new)."
    )

    class Meta:
        model = ParameterChange
        fields = [
            "id", "name", "base_version", "status", "reason", "values", "changes", "proposed_by", "proposed_at",
            "decided_by", "decided_at", "decision_comment", "version",
        ]  # fmt: skip

    def get_version(self, change: ParameterChange) -> int | None:
        created = getattr(change, "version_created", None)
        return created.version if created is not None else None

    def get_changes(self, change: ParameterChange) -> dict[str, dict[str, Any]]:
        diffs = self.context.get("diffs")
        if diffs is None:
            diffs = parameter_change_diffs([change])
        return dict(diffs.get(change.pk, {}))


def _change_data(change: ParameterChange) -> dict[str, Any]:
    change = ParameterChange.objects.select_related("proposed_by", "decided_by", "version_created").get(pk=change.pk)
    return dict(ParameterChangeOutputSerializer(change).data)


_RISK_AVERSION_CHANGE = policy_values(OptimizationPolicy()) | {
    "risk_aversion": {str(level): round(12.0 * (1.4 / 12.0) ** ((level - 1) / 9), 6) for level in range(1, 11)}
}
PROPOSE_EXAMPLES = [
    OpenApiExample(
        "More cautious low levels",
        summary="A whole optimization set: the defaults with risk aversion 12 at level 1",
        value={
            "name": OPTIMIZATION,
            "values": _RISK_AVERSION_CHANGE,
            "reason": "Level 1 clients should hold less equity after the 2026 review.",
        },
        request_only=True,
    ),
    OpenApiExample(
        "Wider drift bands",
        summary="A whole rebalancing set (money and fractions as strings)",
        value={
            "name": REBALANCING,
            "values": policy_values(RebalancingPolicy()) | {"band_absolute": "0.06"},
            "reason": "Fewer small rebalances: trading costs outweigh the drift at 5 points.",
        },
        request_only=True,
    ),
    OpenApiExample(
        "Refused: bad values",
        value={
            "detail": "The parameter change is not valid.",
            "values.max_asset_weight": ["Must be between 0.01 and 1."],
        },
        response_only=True,
        status_codes=["400"],
    ),
]


class ParametersCurrentApi(APIView):
    """The optimization and rebalancing parameters in force, each with its version."""

    permission_classes = [IsAdminRole]

    @extend_schema(
        responses=inline_serializer(
            "ParametersInForce", {OPTIMIZATION: ParameterSetSerializer(), REBALANCING: ParameterSetSerializer()}
        ),
        summary="Parameters in force",
        examples=[
            OpenApiExample(
                "Defaults in force",
                value={
                    OPTIMIZATION: {
                        "version": 0,
                        "values": {"estimation_years": 15, "...": "..."},
                        "in_force_since": None,
                        "change": None,
                    },
                    REBALANCING: {
                        "version": 2,
                        "values": {"band_absolute": "0.06", "...": "..."},
                        "in_force_since": "2026-08-03T09:12:00Z",
                        "change": 7,
                    },
                },
                response_only=True,
            )
        ],
    )
    def get(self, request: Request) -> Response:
        current: dict[str, ParameterSetState] = parameter_sets_current()
        return Response({name: ParameterSetSerializer(state).data for name, state in current.items()})


class ParameterChangeListApi(APIView):
    """Recent parameter changes (newest first); an admin proposes one for another admin to decide."""

    permission_classes = [IsAdminRole]

    class ProposeInputSerializer(serializers.Serializer):
        name = serializers.ChoiceField(choices=PARAMETER_SETS)
        values = serializers.JSONField(help_text="The whole proposed set, as GET /api/parameters/ shows it.")
        reason = serializers.CharField(allow_blank=True, trim_whitespace=True)

    @extend_schema(responses=ParameterChangeOutputSerializer(many=True), summary="Recent parameter changes")
    def get(self, request: Request) -> Response:
        changes = parameter_changes_recent(limit=100)
        context = {"diffs": parameter_change_diffs(changes)}
        return Response(ParameterChangeOutputSerializer(changes, many=True, context=context).data)

    @extend_schema(
        request=ProposeInputSerializer,
        responses={201: ParameterChangeOutputSerializer},
        summary="Propose a new version of a parameter set (four eyes: another admin decides)",
        examples=PROPOSE_EXAMPLES,
    )
    def post(self, request: Request) -> Response:
        data = self.ProposeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        change = parameter_change_propose(actor=request.user, **data.validated_data)
        return Response(_change_data(change), status=status.HTTP_201_CREATED)


class ParameterChangeApproveApi(APIView):
    """Approve a pending change: its values become the next version, in force at once."""

    permission_classes = [IsAdminRole]

    class ApproveInputSerializer(serializers.Serializer):
        comment = serializers.CharField(allow_blank=True, required=False, default="")

    @extend_schema(
        request=ApproveInputSerializer,
        responses=ParameterChangeOutputSerializer,
        summary="Approve a parameter change (not its proposer)",
        examples=[
            OpenApiExample("Approve", value={"comment": "Checked against the review minutes."}, request_only=True),
            OpenApiExample(
                "Refused: own change",
                value={"detail": "You proposed this change: another admin must approve or reject it (four eyes)."},
                response_only=True,
                status_codes=["403"],
            ),
        ],
    )
    def post(self, request: Request, pk: int) -> Response:
        change = get_object_or_404(ParameterChange, pk=pk)
        data = self.ApproveInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        parameter_change_approve(actor=request.user, change_id=change.pk, comment=data.validated_data["comment"])
        return Response(_change_data(change))


class ParameterChangeRejectApi(APIView):
    """Reject a pending change, saying why; nothing else changes."""

    permission_classes = [IsAdminRole]

    class RejectInputSerializer(serializers.Serializer):
        comment = serializers.CharField(allow_blank=True)

    @extend_schema(
        request=RejectInputSerializer,
        responses=ParameterChangeOutputSerializer,
        summary="Reject a parameter change with a reason (not its proposer)",
        examples=[OpenApiExample("Reject", value={"comment": "Not discussed in committee."}, request_only=True)],
    )
    def post(self, request: Request, pk: int) -> Response:
        change = get_object_or_404(ParameterChange, pk=pk)
        data = self.RejectInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        parameter_change_reject(actor=request.user, change_id=change.pk, comment=data.validated_data["comment"])
        return Response(_change_data(change))
