from django.contrib import admin
from django.http import HttpRequest

from .models import AuditEvent, Finding


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only, even for superusers."""

    list_display = ("id", "created_at", "actor_label", "action", "object_type", "object_id")
    list_filter = ("action",)
    search_fields = ("actor_label", "object_id", "hash")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Finding)
class FindingAdmin(admin.ModelAdmin):
    list_display = ("recommendation", "rule_code", "severity", "message")
    list_filter = ("severity", "rule_code")

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
