from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from apps.accounts.models import ApiToken, AuditEvent, User


@admin.register(User)
class ModelplaneUserAdmin(UserAdmin):
    fieldsets = UserAdmin.fieldsets + (("Role", {"fields": ("role", "is_service_account", "description")}),)
    list_display = ("username", "email", "role", "is_service_account", "is_active", "last_login")
    list_filter = ("role", "is_service_account", "is_active")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at")
    readonly_fields = ("user", "name", "prefix", "key_hash", "created_at", "last_used_at")
    exclude = ("key_hash",)

    def has_add_permission(self, request) -> bool:
        return False  # keys are created by `manage.py api_token` or the UI, which show them once


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only for everyone, superusers included: the audit trail is append-only (see the model)."""

    list_display = (
        "occurred_at",
        "actor_name",
        "source",
        "via",
        "credential",
        "ip",
        "action",
        "target_type",
        "target_id",
    )
    list_filter = ("action", "source", "via")
    search_fields = ("actor_name", "action", "target_id")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
