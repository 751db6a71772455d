from django.urls import path

from apps.monitoring.api import views

app_name = "monitoring-api"

urlpatterns = [
    path(
        "deployments/<int:pk>/metrics/latency/",
        views.DeploymentLatencyMetricsApi.as_view(),
        name="deployment_metrics_latency",
    ),
    path(
        "deployments/<int:pk>/metrics/drift/",
        views.DeploymentDriftMetricsApi.as_view(),
        name="deployment_metrics_drift",
    ),
]
