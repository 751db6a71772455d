from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch, QuerySet

from apps.accounts.models import AuditEvent, User
from apps.accounts.permissions import DELETE_DEPLOYMENT, DEPLOY, ROLL_BACK, environments_where, may
from apps.common.errors import ApplicationError, NotFoundError
from apps.deployments.choices import DeploymentStatus
from apps.deployments.models import Deployment, Environment, Revision, RevisionStep

__all__ = [
    "ServingHealth",
    "deployment_serving_health",
    "environment_list",
    "environment_get",
    "deploy_targets",
    "deployment_list",
    "deployment_get",
    "revision_get",
    "revision_numbered",
    "deployment_permissions",
    "DeploymentPermissions",
    "revisions_of_deployment",
    "revisions_of_version",
]


def environment_list() -> QuerySet[Environment]:
    return Environment.objects.all()


def deploy_targets(*, user: User) -> QuerySet[Environment]:
    """Where ``user`` may deploy directly: environments they may deploy to that are not gated (a gated one takes
    a promotion, ``promotions.selectors.promotion_targets``)."""
    return environments_where(user, DEPLOY).filter(gated=False)


def environment_get(*, name: str) -> Environment:
    """400 ``unknown_environment`` naming the environments there are, unless ``name`` is one of them."""
    environment = Environment.objects.filter(name=name).first()
    if environment is None:
        names = ", ".join(Environment.objects.values_list("name", flat=True)) or "none"
        raise ApplicationError(f"Unknown environment {name!r}; expected one of {names}.", code="unknown_environment")
    return environment


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


def revision_numbered(*, deployment: Deployment, number: int) -> Revision:
    """The deployment's revision ``number`` (3 for r3), e.g. the target of a rollback."""
    revision = deployment.revisions.filter(number=number).first()
    if revision is None:
        raise NotFoundError(f"{deployment} has no revision r{number}.")
    return revision


def revisions_of_deployment(*, deployment: Deployment) -> QuerySet[Revision]:
    return deployment.revisions.select_related("requested_by", "rollback_of").order_by("-number")


def revisions_of_version(*, model_name: str, version: str) -> QuerySet[Revision]:
    return Revision.objects.select_related("deployment__environment").filter(
        deployment__model_name=model_name, model_version=version
    )


@dataclass(frozen=True)
class DeploymentPermissions:
    """What the deployment page offers the viewer. Only a hint: the services check the same rules on every call."""

    can_delete: bool
    rollback_to: frozenset[int]  # pks of the revisions the viewer may roll back to


def deployment_permissions(*, deployment: Deployment, user: User, revisions: list[Revision]) -> DeploymentPermissions:
    """A rollout in progress is a passing state: the buttons stay, and the service answers "wait for it"."""
    from apps.deployments.services import rollback_refusal  # the services read through these selectors

    env = deployment.environment
    may_roll_back = may(user, ROLL_BACK, environment=env)
    return DeploymentPermissions(
        can_delete=may(user, DELETE_DEPLOYMENT, environment=env)
        and deployment.status not in (DeploymentStatus.DELETING, DeploymentStatus.DELETED),
        rollback_to=frozenset(r.pk for r in revisions if may_roll_back and rollback_refusal(deployment, r) is None),
    )


@dataclass(frozen=True)
class ServingHealth:
    """The live revision's serving process as the deployment page reports it. ``running`` is None where the
    target does not report it (Kubernetes: its controller restarts pods, the rollout shows readiness)."""

    running: bool | None
    restarts: int
    last_restart: datetime | None


def deployment_serving_health(*, deployment: Deployment) -> ServingHealth | None:
    """Whether the live revision's scoring process runs now (local target), and how often the control plane's
    reconcile restarted it (the ``deployment.restarted`` audit events). None when nothing is live."""
    from apps.deployments.pipeline import serving_spec, target_for  # pipeline reads through these selectors

    live = deployment.live_revision
    if live is None or deployment.status != DeploymentStatus.LIVE:
        return None
    target = target_for(deployment, live.config)
    running = target.is_running(serving_spec(live))
    restarts = AuditEvent.objects.filter(action="deployment.restarted", target_type="revision", target_id=live.pk)
    last = restarts.order_by("-occurred_at").values_list("occurred_at", flat=True).first()
    return ServingHealth(running=running, restarts=restarts.count(), last_restart=last)
