from django.urls import path

from apps.monitoring.api import baselines, views

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
    path(
        "deployments/<int:pk>/monitoring/thresholds/",
        views.DeploymentDriftThresholdsApi.as_view(),
        name="deployment_drift_thresholds",
    ),
    path(
        "deployments/<int:pk>/monitoring/baseline/",
        views.DeploymentBaselineUploadApi.as_view(),
        name="deployment_baseline_upload",
    ),
    path(
        "deployments/<int:pk>/monitoring/baseline/traffic/",
        baselines.DeploymentBaselineFromTrafficApi.as_view(),
        name="deployment_baseline_from_traffic",
    ),
    path("baseline-uploads/<int:pk>/", views.BaselineUploadStatusApi.as_view(), name="baseline_upload_status"),
    path(
        "deployments/<int:pk>/monitoring/baselines/earlier/",
        baselines.DeploymentEarlierBaselinesApi.as_view(),
        name="deployment_baselines_earlier",
    ),
    path(
        "deployments/<int:pk>/monitoring/baselines/earlier/<int:earlier>/restore/",
        baselines.DeploymentBaselineRestoreApi.as_view(),
        name="deployment_baseline_restore",
    ),
]
