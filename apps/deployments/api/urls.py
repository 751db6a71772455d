from django.urls import path

from apps.deployments.api import access, views

app_name = "deployments-api"

urlpatterns = [
    path("environments/", views.EnvironmentListApi.as_view(), name="environment_list"),
    path("deployments/", views.DeploymentListCreateApi.as_view(), name="deployment_list"),
    path("deployments/<int:pk>/", views.DeploymentDetailApi.as_view(), name="deployment_detail"),
    path("deployments/<int:pk>/rollback/", views.DeploymentRollbackApi.as_view(), name="deployment_rollback"),
    path("deployments/<int:pk>/test/", views.DeploymentTestApi.as_view(), name="deployment_test"),
    path(
        "deployments/<int:pk>/revisions/<str:ref>/",
        views.DeploymentRevisionApi.as_view(),
        name="deployment_revision_detail",
    ),
    path("revisions/<int:pk>/", views.RevisionDetailApi.as_view(), name="revision_detail"),
    path("revisions/<int:pk>/promote/", views.RevisionPromoteApi.as_view(), name="revision_promote"),
    path("revisions/<int:pk>/pause/", views.RevisionPauseApi.as_view(), name="revision_pause"),
    path("revisions/<int:pk>/resume/", views.RevisionResumeApi.as_view(), name="revision_resume"),
    path("revisions/<int:pk>/abort/", views.RevisionAbortApi.as_view(), name="revision_abort"),
    path("grants/", access.GrantListCreateApi.as_view(), name="grant_list"),
    path("grants/<int:pk>/", access.GrantDetailApi.as_view(), name="grant_detail"),
    path("users/", access.UserAccessListApi.as_view(), name="user_access_list"),
    path("users/<str:username>/", access.UserAccessDetailApi.as_view(), name="user_access_detail"),
]
