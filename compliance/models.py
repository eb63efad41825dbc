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


class RestrictedAsset(models.Model):
    """A fund on the compliance restricted list: no client may be advised to buy it.

    An entry is removed by setting ``removed_by``/``removed_at``, never deleted, so the history is kept.
    The ticker is a plain string (compliance does not depend on portfolios' models); services validate it.
    """

    ticker = models.CharField(max_length=16)
    reason = models.TextField()
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    added_at = models.DateTimeField()
    removed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    removed_at = models.DateTimeField(null=True, blank=True)
    removal_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-added_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["ticker"], condition=models.Q(removed_at__isnull=True), name="one_active_restriction_per_ticker"
            ),
            models.CheckConstraint(
                condition=models.Q(removed_at__isnull=True, removed_by__isnull=True)
                | models.Q(removed_at__isnull=False, removed_by__isnull=False),
                name="restriction_removed_by_and_at_together",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.ticker} ({'active' if self.removed_at is None else 'removed'})"

    @property
    def is_active(self) -> bool:
        return self.removed_at is None


class ParameterVersion(models.Model):
    """One version of a named parameter set (``optimization``, ``rebalancing``); the newest is in force.

    Versions are only ever added, by an approved ``ParameterChange`` (four eyes); with none stored the
    defaults in code apply (``portfolios/policy.py``), and they are version 0.
    """

    name = models.CharField(max_length=32)
    version = models.PositiveIntegerField()
    values = models.JSONField()
    change = models.OneToOneField(
        "ParameterChange", null=True, blank=True, on_delete=models.PROTECT, related_name="version_created"
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["name", "-version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="one_parameter_version_per_number")]

    def __str__(self) -> str:
        return f"{self.name} parameters v{self.version}"


class ChangeStatus(models.TextChoices):
    PENDING = "pending", "Awaiting a second admin"
    APPROVED = "approved", "Approved and in force"
    REJECTED = "rejected", "Rejected"


class ParameterChange(models.Model):
    """A proposed new version of a parameter set: one admin proposes it with a reason, another approves or
    rejects it (never the proposer). ``values`` is the whole proposed set, validated when proposed and again
    when approved; ``base_version`` is the version it was written against (approval refuses a stale one).
    """

    name = models.CharField(max_length=32)
    base_version = models.PositiveIntegerField()
    values = models.JSONField()
    reason = models.TextField()
    status = models.CharField(max_length=16, choices=ChangeStatus.choices, default=ChangeStatus.PENDING)
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    proposed_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_comment = models.TextField(blank=True)

    class Meta:
        ordering = ["-proposed_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(decided_by=models.F("proposed_by")), name="parameter_change_four_eyes"
            ),
            models.UniqueConstraint(
                fields=["name"], condition=models.Q(status="pending"), name="one_pending_change_per_parameter_set"
            ),
        ]

    def __str__(self) -> str:
        return f"change to {self.name} parameters ({self.status})"
