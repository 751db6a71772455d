from django.urls import path

from apps.deployments.api import views

app_name = "deployments-api"

urlpatterns = [
    path("environments/", views.EnvironmentListApi.as_view(), name="environment_list"),
    path("deployments/", views.DeploymentListCreateApi.as_view(), name="deployment_list"),
    path("deployments/<int:pk>/", views.DeploymentDetailApi.as_view(), name="deployment_detail"),
    path("deployments/<int:pk>/rollback/", views.DeploymentRollbackApi.as_view(), name="deployment_rollback"),
    path("revisions/<int:pk>/", views.RevisionDetailApi.as_view(), name="revision_detail"),
]
