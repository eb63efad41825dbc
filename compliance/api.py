from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from advisor.permissions import IsAdminRole

from .audit import audit_verify
from .models import AuditEvent


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
