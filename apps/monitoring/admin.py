from django.contrib import admin

from apps.monitoring.models import Baseline, DriftThresholds


@admin.register(Baseline)
class BaselineAdmin(admin.ModelAdmin):
    list_display = ["model_name", "model_version", "source", "rows", "created_at"]
    search_fields = ["model_name"]
    readonly_fields = ["model_name", "model_version", "source", "rows", "profile", "created_at"]


@admin.register(DriftThresholds)
class DriftThresholdsAdmin(admin.ModelAdmin):
    list_display = ["deployment", "psi_warn", "psi_alert", "updated_at"]
    readonly_fields = ["deployment", "psi_warn", "psi_alert", "updated_at"]  # changed through the page or the API
