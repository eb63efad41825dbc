from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from advisor.permissions import IsInvestor

from .scoring import QUESTIONNAIRE_VERSION, QUESTIONS, InvalidAnswersError
from .selectors import profile_current, profile_history
from .services import profile_submit


class ProfileOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    questionnaire_version = serializers.CharField()
    answers = serializers.DictField(child=serializers.CharField())
    tolerance_score = serializers.DecimalField(max_digits=5, decimal_places=2)
    capacity_score = serializers.DecimalField(max_digits=5, decimal_places=2)
    tolerance_level = serializers.IntegerField()
    capacity_level = serializers.IntegerField()
    risk_level = serializers.IntegerField()
    limited_by = serializers.CharField()
    drivers = serializers.ListField(child=serializers.DictField())
    created_at = serializers.DateTimeField()


class QuestionnaireApi(APIView):
    class QuestionnaireOutputSerializer(serializers.Serializer):
        version = serializers.CharField()
        questions = serializers.ListField(child=serializers.DictField())

    @extend_schema(responses=QuestionnaireOutputSerializer, summary="The current risk questionnaire")
    def get(self, request: Request) -> Response:
        questions = [
            {
                "key": q.key,
                "text": q.text,
                "dimension": q.dimension.value,
                "choices": [{"key": c.key, "label": c.label} for c in q.choices],
            }
            for q in QUESTIONS
        ]
        return Response({"version": QUESTIONNAIRE_VERSION, "questions": questions})


class ProfileApi(APIView):
    permission_classes = [IsInvestor]

    class ProfileInputSerializer(serializers.Serializer):
        answers = serializers.DictField(child=serializers.CharField(allow_blank=True))

    @extend_schema(responses={200: ProfileOutputSerializer, 404: None}, summary="My current risk profile")
    def get(self, request: Request) -> Response:
        profile = profile_current(investor=request.user)  # type: ignore[arg-type]
        if profile is None:
            return Response({"detail": "No questionnaire answered yet."}, status=status.HTTP_404_NOT_FOUND)
        return Response(ProfileOutputSerializer(profile).data)

    @extend_schema(
        request=ProfileInputSerializer,
        responses={201: ProfileOutputSerializer, 400: None},
        summary="Answer the questionnaire; returns the scored profile",
        examples=[
            OpenApiExample(
                "A balanced investor",
                request_only=True,
                value={
                    "answers": {
                        "horizon": "10to20",
                        "age": "30to44",
                        "income_stability": "stable",
                        "emergency_savings": "3to6",
                        "fall_reaction": "hold",
                        "experience": "some",
                        "objective": "balanced",
                        "trade_off": "medium_range",
                    }
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data = self.ProfileInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            profile = profile_submit(investor=request.user, answers=data.validated_data["answers"])  # type: ignore[arg-type]
        except InvalidAnswersError as exc:
            return Response({"answers": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
        return Response(ProfileOutputSerializer(profile).data, status=status.HTTP_201_CREATED)


class ProfileHistoryApi(APIView):
    permission_classes = [IsInvestor]

    @extend_schema(responses=ProfileOutputSerializer(many=True), summary="All my scored profiles, newest first")
    def get(self, request: Request) -> Response:
        return Response(ProfileOutputSerializer(profile_history(investor=request.user), many=True).data)  # type: ignore[arg-type]
