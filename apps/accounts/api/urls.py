from django.urls import path

from apps.accounts.api import views

app_name = "accounts-api"

urlpatterns = [
    path("tokens/", views.TokenListCreateApi.as_view(), name="token_list"),
    path("tokens/<int:pk>/", views.TokenDetailApi.as_view(), name="token_detail"),
    path("tokens/<int:pk>/revoke/", views.TokenRevokeApi.as_view(), name="token_revoke"),
    path("service-accounts/", views.ServiceAccountListCreateApi.as_view(), name="service_account_list"),
    path("service-accounts/<int:pk>/", views.ServiceAccountDetailApi.as_view(), name="service_account_detail"),
    path(
        "service-accounts/<int:pk>/tokens/",
        views.ServiceAccountTokenListCreateApi.as_view(),
        name="service_account_token_list",
    ),
    path(
        "service-accounts/<int:pk>/tokens/<int:token_pk>/",
        views.ServiceAccountTokenDetailApi.as_view(),
        name="service_account_token_detail",
    ),
    path(
        "service-accounts/<int:pk>/tokens/<int:token_pk>/revoke/",
        views.ServiceAccountTokenRevokeApi.as_view(),
        name="service_account_token_revoke",
    ),
    path("audit/", views.AuditEventListApi.as_view(), name="audit_list"),
    path("audit/export.csv", views.AuditExportCsvApi.as_view(), name="audit_export_csv"),
    path("audit/export.json", views.AuditExportJsonApi.as_view(), name="audit_export_json"),
]
