"""DRF endpoints of profiling: questionnaires, responses, profiles, goals, preferences, behaviour, clients."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from advisor.models import Role, User
from advisor.permissions import IsAdvisor, IsInvestor

from .models import BehaviorEvent, Goal, Preferences, Questionnaire, RiskProfile
from .scoring import InvalidAnswersError
from .selectors import behavior_score_latest, goals_for, profile_current, profile_history, segment_current
from .services import (
    goal_create,
    goal_deactivate,
    goal_update,
    preferences_update,
    profile_confirm,
    profile_override,
    profile_review,
    profile_submit,
)
from .services.goals import preferences_current

BALANCED_EXAMPLE = {
    "age": "30to44",
    "dependents": "one",
    "income": "60to120k",
    "income_stability": "stable",
    "emergency_savings": "3to6",
    "invested_share": "25to50",
    "liquidity_3y": "little",
    "horizon": "10to20",
    "knowledge": "moderate",
    "experience": "some",
    "past_downturn": "held",
    "objective": "balanced",
    "fall_10": "hold",
    "fall_20": "hold",
    "fall_35": "hold",
    "sure_gain": "even",
    "trade_off": "medium_range",
}


def _user(request: Request) -> User:
    return request.user  # type: ignore[return-value]


class QuestionnaireSerializer(serializers.ModelSerializer):
    class Meta:
        model = Questionnaire
        fields = ["version", "title", "is_default", "created_at", "definition"]


class QuestionnaireListApi(generics.ListAPIView):
    """Every questionnaire version; old versions stay so old responses can be read as they were scored."""

    serializer_class = QuestionnaireSerializer
    queryset = Questionnaire.objects.order_by("version")
    pagination_class = None


class QuestionnaireDetailApi(APIView):
    @extend_schema(responses=QuestionnaireSerializer, summary="One questionnaire version with its questions")
    def get(self, request: Request, version: str) -> Response:
        return Response(QuestionnaireSerializer(get_object_or_404(Questionnaire, version=version)).data)


class ProfileSerializer(serializers.ModelSerializer):
    class Meta:
        model = RiskProfile
        fields = [
            "id", "version", "source", "reason", "questionnaire_version", "answers", "tolerance_score",
            "capacity_score", "tolerance_level", "capacity_level", "capacity_cap", "risk_level",
            "behavioural_adjustment", "effective_risk_level", "limited_by", "drivers", "flags", "confirmed_at",
            "reviewed_at", "review_comment", "created_at",
        ]  # fmt: skip


class ProfileApi(APIView):
    permission_classes = [IsInvestor]

    class ResponseInputSerializer(serializers.Serializer):
        version = serializers.CharField(required=False, help_text="questionnaire version; the default if omitted")
        answers = serializers.DictField(child=serializers.CharField(allow_blank=True))

    @extend_schema(responses={200: ProfileSerializer, 404: None}, summary="My current profile version")
    def get(self, request: Request) -> Response:
        profile = profile_current(investor=_user(request))
        if profile is None:
            return Response({"detail": "No questionnaire answered yet."}, status=status.HTTP_404_NOT_FOUND)
        return Response(ProfileSerializer(profile).data)

    @extend_schema(
        request=ResponseInputSerializer,
        responses={201: ProfileSerializer, 400: None},
        summary="Answer a questionnaire version; returns the new profile version",
        examples=[
            OpenApiExample(
                "A balanced investor",
                request_only=True,
                value={"version": "2026.2", "answers": BALANCED_EXAMPLE},
            ),
            OpenApiExample(
                "Missing and invalid answers",
                response_only=True,
                status_codes=["400"],
                value={
                    "answers": {"age": "This question must be answered.", "horizon": "'soon' is not a valid choice"}
                },
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        data = self.ResponseInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            profile = profile_submit(
                investor=_user(request),
                answers=data.validated_data["answers"],
                version=data.validated_data.get("version"),
            )
        except InvalidAnswersError as exc:
            return Response({"answers": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
        return Response(ProfileSerializer(profile).data, status=status.HTTP_201_CREATED)


class ProfileHistoryApi(APIView):
    permission_classes = [IsInvestor]

    @extend_schema(responses=ProfileSerializer(many=True), summary="All my profile versions, newest first")
    def get(self, request: Request) -> Response:
        return Response(ProfileSerializer(profile_history(investor=_user(request)), many=True).data)


class ProfileConfirmApi(APIView):
    permission_classes = [IsInvestor]

    @extend_schema(request=None, responses=ProfileSerializer, summary="Confirm flagged (inconsistent) answers")
    def post(self, request: Request, pk: int) -> Response:
        get_object_or_404(RiskProfile, pk=pk, investor=_user(request))
        return Response(ProfileSerializer(profile_confirm(investor=_user(request), profile_id=pk)).data)


class GoalSerializer(serializers.ModelSerializer):
    class Meta:
        model = Goal
        fields = [
            "id", "goal_type", "name", "target_amount", "target_date", "initial_amount", "monthly_contribution",
            "priority", "account", "is_active", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["is_active", "created_at", "updated_at"]


GOAL_EXAMPLE = OpenApiExample(
    "A home deposit",
    request_only=True,
    value={"goal_type": "home", "name": "Flat deposit", "target_amount": "60000.00", "target_date": "2031-06-30",
           "initial_amount": "10000.00", "monthly_contribution": "500.00", "priority": 1},
)  # fmt: skip


class GoalListApi(APIView):
    permission_classes = [IsInvestor]

    @extend_schema(responses=GoalSerializer(many=True), summary="My active goals")
    def get(self, request: Request) -> Response:
        return Response(GoalSerializer(goals_for(investor=_user(request)), many=True).data)

    @extend_schema(
        request=GoalSerializer, responses={201: GoalSerializer}, examples=[GOAL_EXAMPLE], summary="Add a goal"
    )
    def post(self, request: Request) -> Response:
        goal = goal_create(investor=_user(request), data=request.data)
        return Response(GoalSerializer(goal).data, status=status.HTTP_201_CREATED)


class GoalDetailApi(APIView):
    permission_classes = [IsInvestor]

    def _goal(self, request: Request, pk: int) -> Goal:
        return get_object_or_404(Goal, pk=pk, investor=_user(request), is_active=True)

    @extend_schema(responses=GoalSerializer, summary="One of my goals")
    def get(self, request: Request, pk: int) -> Response:
        return Response(GoalSerializer(self._goal(request, pk)).data)

    @extend_schema(request=GoalSerializer, responses=GoalSerializer, examples=[GOAL_EXAMPLE], summary="Change a goal")
    def put(self, request: Request, pk: int) -> Response:
        goal = goal_update(investor=_user(request), goal_id=self._goal(request, pk).pk, data=request.data)
        return Response(GoalSerializer(goal).data)

    @extend_schema(request=None, responses={204: None}, summary="Remove a goal (kept in history)")
    def delete(self, request: Request, pk: int) -> Response:
        goal_deactivate(investor=_user(request), goal_id=self._goal(request, pk).pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PreferencesSerializer(serializers.ModelSerializer):
    class Meta:
        model = Preferences
        fields = ["version", "esg_exclusions", "account_types", "marginal_tax_rate", "liquidity_need", "created_at"]
        read_only_fields = ["version", "created_at"]


class PreferencesApi(APIView):
    permission_classes = [IsInvestor]

    @extend_schema(responses={200: PreferencesSerializer, 404: None}, summary="My current preferences")
    def get(self, request: Request) -> Response:
        current = preferences_current(_user(request))
        if current is None:
            return Response({"detail": "No preferences saved yet."}, status=status.HTTP_404_NOT_FOUND)
        return Response(PreferencesSerializer(current).data)

    @extend_schema(
        request=PreferencesSerializer,
        responses=PreferencesSerializer,
        summary="Save my preferences (a new version)",
        examples=[
            OpenApiExample(
                "No fossil fuels, 24% bracket",
                request_only=True,
                value={
                    "esg_exclusions": ["fossil_fuels"],
                    "account_types": ["taxable", "roth_ira"],
                    "marginal_tax_rate": "0.24",
                    "liquidity_need": "low",
                },
            )
        ],
    )
    def put(self, request: Request) -> Response:
        return Response(PreferencesSerializer(preferences_update(investor=_user(request), data=request.data)).data)


class BehaviorEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = BehaviorEvent
        fields = ["id", "investor", "event_type", "occurred_at", "details"]


class BehaviorEventListApi(generics.ListAPIView):
    """Read-only: events are recorded by the product's own actions, never posted by investors."""

    serializer_class = BehaviorEventSerializer

    def get_queryset(self) -> QuerySet[BehaviorEvent]:
        user = _user(self.request)
        events = BehaviorEvent.objects.order_by("-occurred_at", "-id")
        if user.role == Role.INVESTOR:
            return events.filter(investor=user)
        if user.role == Role.ADVISOR:
            return events.filter(investor__advisor=user)
        if user.role == Role.ADMIN:
            return events
        return events.none()


def _client(request: Request, pk: int) -> User:
    user = _user(request)
    clients = User.objects.filter(role=Role.INVESTOR)
    if user.role == Role.ADVISOR:
        clients = clients.filter(advisor=user)
    elif user.role != Role.ADMIN:
        clients = clients.none()
    return get_object_or_404(clients, pk=pk)


class ClientProfileApi(APIView):
    @extend_schema(
        responses=inline_serializer(
            "ClientProfile",
            {
                "investor": serializers.EmailField(),
                "profile": ProfileSerializer(allow_null=True),
                "history": ProfileSerializer(many=True),
                "behavior_score": serializers.DecimalField(max_digits=8, decimal_places=4, allow_null=True),
                "segment": serializers.DictField(allow_null=True),
            },
        ),
        summary="A client's scores, flags, history and segment (assigned advisor or admin)",
    )
    def get(self, request: Request, pk: int) -> Response:
        client = _client(request, pk)
        profile = profile_current(investor=client)
        score = behavior_score_latest(investor=client)
        segment = segment_current(investor=client)
        return Response(
            {
                "investor": client.email,
                "profile": ProfileSerializer(profile).data if profile else None,
                "history": ProfileSerializer(profile_history(investor=client), many=True).data,
                "behavior_score": score.score if score else None,
                "segment": (
                    {
                        "model_version": segment.model.version,
                        "segment": segment.segment,
                        "typical_profile": segment.model.profiles.get(str(segment.segment)),
                    }
                    if segment
                    else None
                ),
            }
        )


class ClientOverrideApi(APIView):
    permission_classes = [IsAdvisor]

    class OverrideInputSerializer(serializers.Serializer):
        risk_level = serializers.IntegerField()
        reason = serializers.CharField(allow_blank=True)

    @extend_schema(
        request=OverrideInputSerializer,
        responses={201: ProfileSerializer},
        summary="Override the client's effective risk level (reason required, audited)",
        examples=[
            OpenApiExample(
                "Lower after a call",
                request_only=True,
                value={"risk_level": 4, "reason": "Client plans to buy a house in 2 years."},
            )
        ],
    )
    def post(self, request: Request, pk: int) -> Response:
        client = _client(request, pk)
        data = self.OverrideInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        profile = profile_override(
            advisor=_user(request),
            investor=client,
            risk_level=data.validated_data["risk_level"],
            reason=data.validated_data["reason"],
        )
        return Response(ProfileSerializer(profile).data, status=status.HTTP_201_CREATED)


class ClientReviewApi(APIView):
    permission_classes = [IsAdvisor]

    class ReviewInputSerializer(serializers.Serializer):
        comment = serializers.CharField(allow_blank=True)

    @extend_schema(request=ReviewInputSerializer, responses=ProfileSerializer, summary="Mark flagged answers reviewed")
    def post(self, request: Request, pk: int) -> Response:
        client = _client(request, pk)
        data = self.ReviewInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        profile = profile_current(investor=client)
        if profile is None:
            return Response({"detail": "No profile to review."}, status=status.HTTP_409_CONFLICT)
        reviewed = profile_review(advisor=_user(request), profile_id=profile.pk, comment=data.validated_data["comment"])
        return Response(ProfileSerializer(reviewed).data)
