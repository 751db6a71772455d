from django.contrib import admin

from apps.promotions.models import PromotionPolicy, PromotionRequest, PromotionReview


@admin.register(PromotionPolicy)
class PromotionPolicyAdmin(admin.ModelAdmin):
    list_display = (
        "environment",
        "approvals_required",
        "approver_role",
        "require_live_in",
        "max_age_hours",
        "required_strategy",
    )


class ReviewInline(admin.TabularInline):
    model = PromotionReview
    extra = 0
    can_delete = False
    readonly_fields = ("reviewer", "decision", "comment", "created_at")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PromotionRequest)
class PromotionRequestAdmin(admin.ModelAdmin):
    """Read-only: decisions go through the service layer (the pages or the API), never through the admin."""

    list_display = ("id", "model_name", "version", "environment", "status", "requested_by", "created_at")
    list_filter = ("status", "environment")
    inlines = [ReviewInline]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
