"""API plumbing shared by the apps: the exception handler and the identity endpoints."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import DomainError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Domain errors become 400 / 403 / 409 with a ``detail`` and per-field messages."""
    if isinstance(exc, DomainError):
        body: dict[str, Any] = {"detail": exc.message}
        body.update({k: v if isinstance(v, list) else [v] for k, v in exc.fields.items()})
        return Response(body, status=exc.status_code)
    return drf_exception_handler(exc, context)


class MeApi(APIView):
    class MeOutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        email = serializers.EmailField()
        full_name = serializers.CharField()
        role = serializers.CharField()
        advisor_id = serializers.IntegerField(allow_null=True)

    @extend_schema(responses=MeOutputSerializer, summary="The logged-in user")
    def get(self, request: Request) -> Response:
        return Response(self.MeOutputSerializer(request.user).data)


class TokenApi(APIView):
    """Exchange email and password for an API token (``Authorization: Token <key>``)."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []

    class TokenInputSerializer(serializers.Serializer):
        email = serializers.EmailField()
        password = serializers.CharField(write_only=True, style={"input_type": "password"})

    @extend_schema(
        request=TokenInputSerializer,
        responses={200: inline_serializer("Token", {"token": serializers.CharField()})},
        summary="Obtain an API token",
    )
    def post(self, request: Request) -> Response:
        from django.contrib.auth import authenticate
        from rest_framework.authtoken.models import Token

        data = self.TokenInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(
            request._request, username=data.validated_data["email"], password=data.validated_data["password"]
        )
        if user is None:
            return Response({"detail": "Invalid email or password."}, status=status.HTTP_400_BAD_REQUEST)
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})
