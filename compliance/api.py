from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from advisor.permissions import IsAdminRole

from .audit import audit_verify
from .models import AuditEvent, RestrictedAsset
from .services import restricted_add


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id", "created_at", "actor", "actor_label", "action", "object_type", "object_id", "subject",
            "payload", "prev_hash", "hash",
        ]  # fmt: skip


class AuditEventListApi(generics.ListAPIView):
    """The audit log, read-only, for admins."""

    permission_classes = [IsAdminRole]
    serializer_class = AuditEventSerializer
    queryset = AuditEvent.objects.order_by("-id")


class AuditVerifyApi(APIView):
    permission_classes = [IsAdminRole]

    @extend_schema(
        responses=inline_serializer(
            "AuditVerification",
            {
                "events": serializers.IntegerField(),
                "intact": serializers.BooleanField(),
                "broken_event_id": serializers.IntegerField(allow_null=True),
                "reason": serializers.CharField(allow_null=True),
            },
        ),
        summary="Recompute the hash chain",
    )
    def get(self, request: Request) -> Response:
        count, broken = audit_verify()
        return Response(
            {
                "events": count,
                "intact": broken is None,
                "broken_event_id": broken.event_id if broken else None,
                "reason": broken.reason if broken else None,
            }
        )


class RestrictedAssetOutputSerializer(serializers.ModelSerializer):
    added_by = serializers.CharField(source="added_by.email")
    removed_by = serializers.CharField(source="removed_by.email", allow_null=True, default=None)

    class Meta:
        model = RestrictedAsset
        fields = ["id", "ticker", "reason", "added_by", "added_at", "removed_by", "removed_at", "removal_reason"]


class RestrictedAssetListApi(APIView):
    """The compliance restricted list (active and past entries, newest first); admins add funds to it."""

    permission_classes = [IsAdminRole]

    class RestrictedAssetInputSerializer(serializers.Serializer):
        ticker = serializers.CharField(max_length=16)
        reason = serializers.CharField()

    @extend_schema(responses=RestrictedAssetOutputSerializer(many=True), summary="The restricted list")
    def get(self, request: Request) -> Response:
        entries = RestrictedAsset.objects.select_related("added_by", "removed_by").order_by("-added_at", "-id")
        return Response(RestrictedAssetOutputSerializer(entries, many=True).data)

    @extend_schema(
        request=RestrictedAssetInputSerializer,
        responses={201: RestrictedAssetOutputSerializer},
        summary="Restrict a fund",
    )
    def post(self, request: Request) -> Response:
        data = self.RestrictedAssetInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        entry = restricted_add(actor=request.user, **data.validated_data)
        return Response(RestrictedAssetOutputSerializer(entry).data, status=201)
