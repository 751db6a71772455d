from django.urls import path

from apps.monitoring import views

app_name = "monitoring"

urlpatterns = [
    path("deployments/<int:pk>/monitoring/", views.deployment_monitoring, name="deployment_monitoring"),
    path("monitoring/plotly-<str:version>.min.js", views.plotly_js, name="plotly_js"),
]
