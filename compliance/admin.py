from django.contrib import admin

from advisor.admin_mixins import ReadOnlyAdminMixin

from .models import AuditEvent, Finding


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: the audit log is append-only, even for superusers."""

    list_display = ("id", "created_at", "actor_label", "action", "object_type", "object_id")
    list_filter = ("action",)
    search_fields = ("actor_label", "object_id", "hash")


@admin.register(Finding)
class FindingAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("recommendation", "rule_code", "severity", "message")
    list_filter = ("severity", "rule_code")
