from django import forms
from django.contrib import admin

from apps.deployments.clusters import cluster_names
from apps.deployments.models import Environment


def _cluster_choices() -> list[tuple[str, str]]:
    return [("", "default (KUBERNETES_API_URL / KUBECONFIG / in-cluster)")] + [(n, n) for n in cluster_names()]


class EnvironmentForm(forms.ModelForm):
    # The clusters the settings define (KUBERNETES_CLUSTERS), by name only: their credentials never reach a page.
    # The model's clean() refuses an unknown name from any other path (services, the demo seed).
    cluster = forms.ChoiceField(choices=_cluster_choices, required=False)

    class Meta:
        model = Environment
        fields = "__all__"


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    form = EnvironmentForm
    list_display = ("name", "target", "cluster", "namespace", "image_builder", "image_registry", "replicas", "gated")
    list_editable = ("gated",)
