"""Rows for the promotion tests: the demo model's name and versions made live (rows only; nothing runs)."""

from __future__ import annotations

from apps.deployments.choices import DeploymentStatus, RevisionStatus
from apps.deployments.models import Deployment, Environment, Revision

MODEL = "credit-default"


def make_live(environment: Environment, version: str, model: str = MODEL) -> Revision:
    """A deployment of ``model`` serving ``version`` in ``environment`` (rows only; nothing runs)."""
    deployment, _ = Deployment.objects.get_or_create(
        environment=environment, model_name=model, defaults={"name": model, "status": DeploymentStatus.LIVE}
    )
    number = deployment.revisions.count() + 1
    revision = Revision.objects.create(
        deployment=deployment, number=number, model_version=version, status=RevisionStatus.LIVE
    )
    deployment.revisions.exclude(pk=revision.pk).filter(status=RevisionStatus.LIVE).update(
        status=RevisionStatus.SUPERSEDED
    )
    Deployment.objects.filter(pk=deployment.pk).update(live_revision=revision, status=DeploymentStatus.LIVE)
    return revision
