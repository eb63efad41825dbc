"""Investor profiles: versioned questionnaires, scored responses (profile versions), goals, preferences,
behavioural events and scores, and investor segments."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class Questionnaire(models.Model):
    """A questionnaire version. Its definition never changes once stored: new wording is a new version."""

    version = models.CharField(max_length=16, unique=True)
    title = models.CharField(max_length=200)
    definition = models.JSONField()
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["version"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_questionnaire"
            )
        ]

    def __str__(self) -> str:
        return f"questionnaire {self.version}"


class ProfileSource(models.TextChoices):
    QUESTIONNAIRE = "questionnaire", "Questionnaire answered"
    GOALS = "goals", "Goals changed"
    BEHAVIOUR = "behaviour", "Behavioural adjustment"
    ADVISOR_OVERRIDE = "advisor_override", "Advisor override"


class RiskProfile(models.Model):
    """One version of an investor's profile. The newest is current; older versions are the history.

    ``risk_level`` is what the questionnaire (and goal horizons) give; ``effective_risk_level`` is what
    portfolios use, after a behavioural adjustment or an advisor override.
    """

    investor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="risk_profiles")
    version = models.PositiveIntegerField(default=1)
    source = models.CharField(max_length=20, choices=ProfileSource.choices, default=ProfileSource.QUESTIONNAIRE)
    reason = models.TextField(blank=True)
    questionnaire = models.ForeignKey(Questionnaire, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    questionnaire_version = models.CharField(max_length=16)
    answers = models.JSONField()
    tolerance_score = models.DecimalField(max_digits=5, decimal_places=2)
    capacity_score = models.DecimalField(max_digits=5, decimal_places=2)
    tolerance_level = models.PositiveSmallIntegerField()
    capacity_level = models.PositiveSmallIntegerField()
    capacity_cap = models.PositiveSmallIntegerField(null=True, blank=True)
    risk_level = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(10)])
    behavioural_adjustment = models.SmallIntegerField(default=0)
    effective_risk_level = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(10)])
    limited_by = models.CharField(max_length=16)
    drivers = models.JSONField(default=list)
    flags = models.JSONField(default=list)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_comment = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version", "-id"]
        get_latest_by = ["version"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(risk_level__gte=1, risk_level__lte=10), name="risk_level_1_to_10"
            ),
            models.CheckConstraint(
                condition=models.Q(effective_risk_level__gte=1, effective_risk_level__lte=10),
                name="effective_risk_level_1_to_10",
            ),
            models.UniqueConstraint(fields=["investor", "version"], name="one_profile_per_investor_version"),
        ]

    def __str__(self) -> str:
        return f"{self.investor} v{self.version} level {self.effective_risk_level}"

    @property
    def is_flagged(self) -> bool:
        return bool(self.flags)

    @property
    def needs_confirmation(self) -> bool:
        return self.is_flagged and self.confirmed_at is None

    @property
    def needs_advisor_review(self) -> bool:
        return self.is_flagged and self.reviewed_at is None


class GoalType(models.TextChoices):
    RETIREMENT = "retirement", "Retirement"
    HOME = "home", "Buy a home"
    EDUCATION = "education", "Education"
    WEALTH = "wealth", "Build wealth"
    INCOME = "income", "Income"
    EMERGENCY_FUND = "emergency_fund", "Emergency fund"


class Goal(models.Model):
    investor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="goals")
    account = models.ForeignKey(
        "portfolios.Account", null=True, blank=True, on_delete=models.PROTECT, related_name="goals"
    )
    goal_type = models.CharField(max_length=20, choices=GoalType.choices)
    name = models.CharField(max_length=80)
    target_amount = models.DecimalField(max_digits=18, decimal_places=2)
    target_date = models.DateField()
    initial_amount = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    monthly_contribution = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    priority = models.PositiveSmallIntegerField(default=3)  # 1 = most important
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "target_date", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(target_amount__gt=0), name="goal_target_positive"),
            models.CheckConstraint(condition=Q(initial_amount__gte=0), name="goal_initial_not_negative"),
            models.CheckConstraint(condition=Q(monthly_contribution__gte=0), name="goal_contribution_not_negative"),
            models.CheckConstraint(condition=Q(priority__gte=1, priority__lte=5), name="goal_priority_1_to_5"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_goal_type_display()})"


class LiquidityNeed(models.TextChoices):
    NONE = "none", "None expected"
    LOW = "low", "Low: under 10% a year"
    MEDIUM = "medium", "Medium: 10-25% a year"
    HIGH = "high", "High: more than 25% a year"


class Preferences(models.Model):
    """One version of an investor's preferences; the newest is current."""

    investor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="preferences")
    version = models.PositiveIntegerField()
    esg_exclusions = models.JSONField(default=list)
    account_types = models.JSONField(default=list)  # taxable / traditional_ira / roth_ira
    marginal_tax_rate = models.DecimalField(max_digits=5, decimal_places=4)
    liquidity_need = models.CharField(max_length=8, choices=LiquidityNeed.choices, default=LiquidityNeed.NONE)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        verbose_name_plural = "preferences"
        constraints = [
            models.UniqueConstraint(fields=["investor", "version"], name="one_preferences_per_investor_version"),
            models.CheckConstraint(
                condition=Q(marginal_tax_rate__gte=0, marginal_tax_rate__lte="0.6"), name="tax_rate_0_to_60_percent"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.investor} preferences v{self.version}"


class BehaviorEventType(models.TextChoices):
    PANIC_SELL_REQUEST = "panic_sell_request", "Asked to sell everything or withdraw during a drawdown"
    RECOMMENDATION_REJECTED = "recommendation_rejected", "A recommendation was rejected"
    LOGIN_SPIKE_IN_DRAWDOWN = "login_spike_in_drawdown", "Logged in far more often while the market was down"
    CONTRIBUTIONS_PAUSED = "contributions_paused", "Paused contributions after losses"
    ADDED_MONEY_IN_FALL = "added_money_in_fall", "Added money during a market fall"
    ANSWERS_CHANGED_AFTER_LOSS = "answers_changed_after_loss", "Lowered questionnaire answers after losses"


class BehaviorEvent(models.Model):
    """Something the investor did, recorded by the product itself (never written by the investor directly)."""

    investor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="behavior_events")
    event_type = models.CharField(max_length=32, choices=BehaviorEventType.choices)
    occurred_at = models.DateTimeField()
    details = models.JSONField(default=dict)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["investor", "occurred_at"])]

    def __str__(self) -> str:
        return f"{self.investor_id} {self.event_type} {self.occurred_at:%Y-%m-%d}"


class BehaviorScore(models.Model):
    """The behavioural score of one investor on one date; computed in bulk, once per date."""

    investor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="behavior_scores")
    as_of = models.DateField()
    score = models.DecimalField(max_digits=8, decimal_places=4)
    adjustment = models.SmallIntegerField(default=0)
    events_counted = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-as_of"]
        constraints = [models.UniqueConstraint(fields=["investor", "as_of"], name="one_behavior_score_per_day")]

    def __str__(self) -> str:
        return f"{self.investor_id} {self.as_of} {self.score}"


class LoginRecord(models.Model):
    """One investor login, kept for two days only: enough to spot a login spike during a drawdown.

    Counted by id here rather than from django-axes' AccessLog, which is keyed by username, can be switched off
    (AXES_DISABLE_ACCESS_LOG) or purged by operators, and is written by a receiver whose order we do not own.
    """

    investor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    logged_in_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["investor", "logged_in_at"])]

    def __str__(self) -> str:
        return f"{self.investor_id} {self.logged_in_at:%Y-%m-%d %H:%M}"


class SegmentationModel(models.Model):
    """A fitted segmentation (scaler + clustering) with the metrics that chose it."""

    version = models.PositiveIntegerField(unique=True)
    algorithm = models.CharField(max_length=64)
    features = models.JSONField()
    n_segments = models.PositiveSmallIntegerField()
    silhouette_scores = models.JSONField()  # {k: score} for every k tried
    parameters = models.JSONField()  # scaler mean/scale and cluster centres, enough to assign new investors
    profiles = models.JSONField()  # per segment: size and typical (median) feature values
    n_investors = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"segmentation v{self.version} ({self.n_segments} segments)"


class InvestorSegment(models.Model):
    model = models.ForeignKey(SegmentationModel, on_delete=models.CASCADE, related_name="assignments")
    investor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="segments")
    segment = models.PositiveSmallIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "investor"], name="one_segment_per_model_investor")]

    def __str__(self) -> str:
        return f"{self.investor_id} in segment {self.segment} of v{self.model_id}"

    @property
    def typical_profile(self) -> dict[str, Any] | None:
        """The segment's stored typical profile (size, label, medians), plus the medians under display names."""
        from .segmentation import FEATURE_LABELS  # scikit-learn is imported only when a segment is shown

        profile = self.model.profiles.get(str(self.segment))
        if profile is None:
            return None
        medians = profile.get("medians", {})  # jsonb does not keep key order: show them in feature order
        shown = [{"label": FEATURE_LABELS.get(name, name), "median": medians[name]}
                 for name in self.model.features if medians.get(name) is not None]  # fmt: skip
        return {**profile, "shown": shown}
