from django.urls import path

from apps.deployments import views

app_name = "deployments"

urlpatterns = [
    path("deployments/", views.deployment_list, name="deployment_list"),
    path("deployments/new/", views.deployment_create, name="deployment_create"),
    path("deployments/<int:pk>/", views.deployment_detail, name="deployment_detail"),
    path("deployments/<int:pk>/rollback/", views.deployment_rollback, name="deployment_rollback"),
    path("deployments/<int:pk>/delete/", views.deployment_delete, name="deployment_delete"),
    path("deployments/<int:pk>/test/", views.deployment_test, name="deployment_test"),
    path("revisions/<int:pk>/", views.revision_detail, name="revision_detail"),
    path("revisions/<int:pk>/rollout/", views.revision_rollout, name="revision_rollout"),
    path("revisions/<int:pk>/promote/", views.revision_promote, name="revision_promote"),
    path("revisions/<int:pk>/pause/", views.revision_pause, name="revision_pause"),
    path("revisions/<int:pk>/resume/", views.revision_resume, name="revision_resume"),
    path("revisions/<int:pk>/abort/", views.revision_abort, name="revision_abort"),
    path("access/", views.access, name="access"),
    path("access/grants/", views.access_grant_add, name="access_grant_add"),
    path("access/grants/<int:pk>/delete/", views.access_grant_remove, name="access_grant_remove"),
    path("access/users/<str:username>/role/", views.access_role_set, name="access_role_set"),
]
