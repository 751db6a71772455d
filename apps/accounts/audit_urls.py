from django.urls import path

from apps.accounts import views

app_name = "audit"

urlpatterns = [
    path("", views.audit_list, name="event_list"),
    path("export.csv", views.audit_export_csv, name="export_csv"),
    path("export.json", views.audit_export_json, name="export_json"),
]
