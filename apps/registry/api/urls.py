from django.urls import path, re_path

from apps.registry.api import views

app_name = "registry-api"

urlpatterns = [
    path("models/", views.ModelListApi.as_view(), name="model_list"),
    re_path(
        r"^models/(?P<name>.+)/versions/(?P<version>[^/]+)/$", views.VersionDetailApi.as_view(), name="version_detail"
    ),
    re_path(r"^models/(?P<name>.+)/versions/$", views.VersionListApi.as_view(), name="version_list"),
    re_path(r"^models/(?P<name>.+)/compare/$", views.ModelCompareApi.as_view(), name="model_compare"),
    re_path(r"^models/(?P<name>.+)/$", views.ModelDetailApi.as_view(), name="model_detail"),
    path("runs/<str:run_id>/", views.RunDetailApi.as_view(), name="run_detail"),
]
