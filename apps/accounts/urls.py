from django.contrib.auth import views as auth_views
from django.urls import path

from apps.accounts import oidc_views, views

app_name = "accounts"

urlpatterns = [
    path("login/", oidc_views.LoginView.as_view(), name="login"),
    path("login/sso/", oidc_views.oidc_login, name="oidc_login"),
    path("login/sso/callback/", oidc_views.oidc_callback, name="oidc_callback"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("tokens/", views.token_list, name="token_list"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token_revoke"),
    path("service-accounts/", views.service_account_list, name="service_account_list"),
    path("service-accounts/<int:pk>/", views.service_account_detail, name="service_account_detail"),
    path("service-accounts/<int:pk>/edit/", views.service_account_update, name="service_account_update"),
    path("service-accounts/<int:pk>/tokens/", views.service_account_token_create, name="service_account_token_create"),
    path(
        "service-accounts/<int:pk>/tokens/<int:token_pk>/revoke/",
        views.service_account_token_revoke,
        name="service_account_token_revoke",
    ),
]
