from django.apps import AppConfig
from django.core import checks


class DeploymentsConfig(AppConfig):
    name = "apps.deployments"
    label = "deployments"

    def ready(self) -> None:
        checks.register(_clusters_check, checks.Tags.compatibility)


def _clusters_check(app_configs: object = None, **kwargs: object) -> list[checks.CheckMessage]:
    """``manage.py check`` (and every server start) names what is wrong in KUBERNETES_CLUSTERS."""
    from apps.deployments.clusters import clusters_problems

    return [checks.Error(problem, id="deployments.E001") for problem in clusters_problems()]
