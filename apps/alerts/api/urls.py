from django.urls import path

from apps.alerts.api import views

app_name = "alerts-api"

urlpatterns = [
    path("slos/", views.SloListCreateApi.as_view(), name="slo_list"),
    path("slos/<int:pk>/", views.SloDetailApi.as_view(), name="slo_detail"),
    path("alert-rules/", views.AlertRuleListCreateApi.as_view(), name="rule_list"),
    path("alert-rules/<int:pk>/", views.AlertRuleDetailApi.as_view(), name="rule_detail"),
    path("alerts/", views.AlertListApi.as_view(), name="alert_list"),
    path("alerts/<int:pk>/", views.AlertDetailApi.as_view(), name="alert_detail"),
    path("alerts/<int:pk>/ack/", views.AlertAcknowledgeApi.as_view(), name="alert_ack"),
    path("silences/", views.SilenceListCreateApi.as_view(), name="silence_list"),
]
