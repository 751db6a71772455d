from django.contrib import admin

from apps.deployments.models import Environment


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ("name", "target", "namespace", "image_builder", "image_registry", "replicas", "gated")
    list_editable = ("gated",)
