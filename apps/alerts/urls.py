from django.urls import path

from apps.alerts import views

app_name = "alerts"

urlpatterns = [
    path("alerts/", views.alert_list, name="alert_list"),
    path("alerts/<int:pk>/", views.alert_detail, name="alert_detail"),
    path("alerts/<int:pk>/ack/", views.alert_acknowledge, name="alert_acknowledge"),
    path("alerts/silences/", views.silence_create, name="silence_create"),
    path("deployments/<int:pk>/alerts/", views.deployment_alerts, name="deployment_alerts"),
    path("deployments/<int:pk>/alerts/slos/", views.slo_create, name="slo_create"),
    path("deployments/<int:pk>/alerts/rules/", views.rule_create, name="rule_create"),
    path("alerts/slos/<int:pk>/delete/", views.slo_delete, name="slo_delete"),
    path("alerts/rules/<int:pk>/delete/", views.rule_delete, name="rule_delete"),
]
