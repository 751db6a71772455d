from django.urls import path, re_path

from apps.registry import views

app_name = "registry"

# Model names may hold slashes, dots, spaces and unicode (and Unity Catalog's catalog.schema.model),
# so the name is the greedy part of the path and the fixed suffixes are matched first.
urlpatterns = [
    path("models/", views.model_list, name="model_list"),
    re_path(r"^models/(?P<name>.+)/versions/(?P<version>[^/]+)/$", views.version_detail, name="version_detail"),
    re_path(r"^models/(?P<name>.+)/compare/$", views.model_compare, name="model_compare"),
    re_path(r"^models/(?P<name>.+)/$", views.model_detail, name="model_detail"),
    path("runs/<str:run_id>/", views.run_detail, name="run_detail"),
]
