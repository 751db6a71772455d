from django.urls import path

from apps.monitoring import views

app_name = "monitoring"

urlpatterns = [
    path("deployments/<int:pk>/monitoring/", views.deployment_monitoring, name="deployment_monitoring"),
    path("deployments/<int:pk>/monitoring/thresholds/", views.drift_thresholds_set, name="drift_thresholds_set"),
    path("deployments/<int:pk>/monitoring/baseline/", views.baseline_upload, name="baseline_upload"),
    path(
        "deployments/<int:pk>/monitoring/baseline/traffic/",
        views.baseline_from_traffic,
        name="baseline_from_traffic",
    ),
    path(
        "deployments/<int:pk>/monitoring/baselines/earlier/<int:earlier>/restore/",
        views.baseline_restore,
        name="baseline_restore",
    ),
    path("monitoring/plotly-<str:version>.min.js", views.plotly_js, name="plotly_js"),
]
