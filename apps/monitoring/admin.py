from django.contrib import admin

from apps.monitoring.models import Baseline


@admin.register(Baseline)
class BaselineAdmin(admin.ModelAdmin):
    list_display = ["model_name", "model_version", "source", "rows", "created_at"]
    search_fields = ["model_name"]
    readonly_fields = ["model_name", "model_version", "source", "rows", "profile", "created_at"]
