"""Audit log (append-only, hash-chained) and the compliance findings of recommendations."""

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """One decision. ``hash`` = SHA-256 over ``prev_hash`` and the event's canonical JSON.

    Rows are never updated or deleted: on Postgres a trigger rejects both.
    """

    created_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Kept beside the FK so the event still reads right if the user is renamed.
    actor_label = models.CharField(max_length=254)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    # The investor whose money or profile the event is about, for scoping reads.
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    payload = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.object_type}:{self.object_id}"


class Severity(models.TextChoices):
    PASS = "pass", "Pass"
    WARN = "warn", "Warning"
    BLOCK = "block", "Blocking"


class Finding(models.Model):
    """The result of one compliance rule on one recommendation."""

    recommendation = models.ForeignKey("portfolios.Recommendation", on_delete=models.CASCADE, related_name="findings")
    rule_code = models.CharField(max_length=64)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    message = models.TextField()
    details = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["recommendation", "rule_code"], name="one_finding_per_rule"),
        ]

    def __str__(self) -> str:
        return f"{self.rule_code}: {self.severity}"
