from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class RiskProfile(models.Model):
    """One scored questionnaire response. The newest is the investor's current profile."""

    investor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="risk_profiles")
    questionnaire_version = models.CharField(max_length=16)
    answers = models.JSONField()
    tolerance_score = models.DecimalField(max_digits=5, decimal_places=2)
    capacity_score = models.DecimalField(max_digits=5, decimal_places=2)
    tolerance_level = models.PositiveSmallIntegerField()
    capacity_level = models.PositiveSmallIntegerField()
    risk_level = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(10)])
    limited_by = models.CharField(max_length=16)
    drivers = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(risk_level__gte=1, risk_level__lte=10), name="risk_level_1_to_10"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.investor} level {self.risk_level}"
