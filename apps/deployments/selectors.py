from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from apps.common.errors import NotFoundError
from apps.deployments.choices import DeploymentStatus
from apps.deployments.models import Deployment, Environment, Revision, RevisionStep

__all__ = [
    "environment_list",
    "deployment_list",
    "deployment_get",
    "revision_get",
    "revisions_of_deployment",
    "revisions_of_version",
]


def environment_list() -> QuerySet[Environment]:
    return Environment.objects.all()


def deployment_list(*, include_deleted: bool = False) -> QuerySet[Deployment]:
    queryset = Deployment.objects.select_related(
        "environment", "live_revision", "created_by", "live_revision__requested_by"
    )
    return queryset if include_deleted else queryset.exclude(status=DeploymentStatus.DELETED)


def deployment_get(*, pk: int) -> Deployment:
    deployment = deployment_list(include_deleted=True).filter(pk=pk).first()
    if deployment is None:
        raise NotFoundError(f"Deployment {pk} does not exist.")
    return deployment


def revision_get(*, pk: int) -> Revision:
    revision = (
        Revision.objects.select_related("deployment__environment", "requested_by", "rollback_of")
        .prefetch_related(Prefetch("steps", queryset=RevisionStep.objects.order_by("position")))
        .filter(pk=pk)
        .first()
    )
    if revision is None:
        raise NotFoundError(f"Revision {pk} does not exist.")
    return revision


def revisions_of_deployment(*, deployment: Deployment) -> QuerySet[Revision]:
    return deployment.revisions.select_related("requested_by", "rollback_of").order_by("-number")


def revisions_of_version(*, model_name: str, version: str) -> QuerySet[Revision]:
    return Revision.objects.select_related("deployment__environment").filter(
        deployment__model_name=model_name, model_version=version
    )
