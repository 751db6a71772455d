from django import forms
from django.contrib import admin

from apps.common.errors import ApplicationError
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
        help_texts = {
            "rollout_strategy": (
                "How deploys here take traffic unless a request says otherwise; a request's keys go on top. "
                'Examples: {"type": "canary", "steps": [10, 25, 50], "step_seconds": 60}, '
                '{"type": "blue_green", "intervals": 3, "keep_warm_seconds": 300}, {"type": "shadow", '
                '"mirror_percent": 50}; thresholds: max_error_rate (0.01 = 1%), max_p99_ms, max_drift, '
                "min_agreement, min_compared, min_requests, max_failed_checks. {} means all at once. "
                "docs/deployments.md."
            ),
            "gateway": (
                "Kubernetes only: namespace/name of the Gateway API Gateway the deployments' HTTPRoutes attach to "
                "(e.g. gateway-system/models). Blank: no Gateway API on the cluster, so canary runs by replica "
                "ratios (approximate) and shadow is refused. The local target ignores it."
            ),
        }

    def clean_rollout_strategy(self) -> dict:
        return self.cleaned_data.get("rollout_strategy") or {}  # an emptied box: all at once, not NULL

    def clean(self):
        """The default strategy must parse and suit the target, as a deploy would check it (a refusal names the
        key or the target's limit)."""
        from apps.deployments.services import rollout_strategy

        data = super().clean()
        if self.has_error("rollout_strategy") or self.has_error("target") or self.has_error("cluster"):
            return data
        trial = Environment(
            target=data.get("target") or "",
            cluster=data.get("cluster") or "",
            gateway=data.get("gateway") or "",
            rollout_strategy=data.get("rollout_strategy") or {},
        )
        try:
            rollout_strategy(trial, None)
        except ApplicationError as exc:
            self.add_error("rollout_strategy", exc.message)
        return data


def _strategy(environment: Environment) -> str:
    return (environment.rollout_strategy or {}).get("type", "all_at_once")


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    form = EnvironmentForm
    list_display = ("name", "target", "cluster", "namespace", "image_builder", "rollout", "gateway", "gated")
    list_editable = ("gated",)
    fieldsets = (
        (None, {"fields": ("name", "description", "order", "gated")}),
        ("Where models run", {"fields": ("target", "cluster", "namespace", "image_builder", "image_registry")}),
        (
            "Size",
            {
                "fields": (
                    "replicas",
                    "min_replicas",
                    "max_replicas",
                    "cpu_request",
                    "cpu_limit",
                    "memory_request",
                    "memory_limit",
                )
            },
        ),
        ("Rollouts", {"fields": ("rollout_strategy", "gateway")}),
    )

    @admin.display(description="rollout")
    def rollout(self, environment: Environment) -> str:
        return _strategy(environment)
