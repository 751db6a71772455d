from __future__ import annotations

import json
import logging
import re
import shlex
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db.models import Prefetch, QuerySet

from apps.accounts.models import AuditEvent, User
from apps.accounts.permissions import DELETE_DEPLOYMENT, DEPLOY, ROLL_BACK, TEST_ENDPOINT, environments_where, may
from apps.common.errors import ApplicationError, NotFoundError
from apps.deployments.choices import DeploymentStatus
from apps.deployments.models import Deployment, Environment, Revision, RevisionStep
from apps.registry import selectors as registry

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
    "revision_number_parse",
    "revision_wait",
    "MAX_WAIT_SECONDS",
    "deployment_permissions",
    "DeploymentPermissions",
    "revisions_of_deployment",
    "revisions_of_version",
    "live_by_version",
    "input_example_read",
    "input_example_get",
    "score_snippet",
]

logger = logging.getLogger(__name__)


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
        .prefetch_related(Prefetch("steps", queryset=RevisionStep.objects.order_by("position")), "checks")
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


_REVISION_REF = re.compile(r"^\s*[rR]?([1-9][0-9]{0,8})\s*$")


def revision_number_parse(value: object) -> int:
    """A deployment's revision number from how pages and the API name it: ``"r3"``, ``"3"`` or ``3``.
    400 ``invalid_revision`` naming the value otherwise."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**9:
        return value
    match = _REVISION_REF.match(value) if isinstance(value, str) else None
    if match is None:
        raise ApplicationError(
            f'{value!r} is not a revision: use its number as pages and the API show it, e.g. "r3" (or 3).',
            code="invalid_revision",
        )
    return int(match.group(1))


MAX_WAIT_SECONDS = 60
_WAIT_POLL_SECONDS = 0.25


def revision_wait(*, pk: int, seconds: float) -> Revision:
    """The revision once it is final (live, superseded, failed, rolled back) or once ``seconds`` (at most
    ``MAX_WAIT_SECONDS``) have passed, whichever comes first: the ``?wait=`` long-poll of the API, for scripts
    that would rather not poll. Reads the row a few times a second; the worker writes it."""
    deadline = time.monotonic() + min(max(seconds, 0.0), MAX_WAIT_SECONDS)
    revision = revision_get(pk=pk)
    while not revision.is_final and time.monotonic() < deadline:
        time.sleep(min(_WAIT_POLL_SECONDS, max(deadline - time.monotonic(), 0.0)))
        revision = revision_get(pk=pk)
    return revision


def revisions_of_deployment(*, deployment: Deployment) -> QuerySet[Revision]:
    return deployment.revisions.select_related("requested_by", "rollback_of").order_by("-number")


def revisions_of_version(*, model_name: str, version: str) -> QuerySet[Revision]:
    return Revision.objects.select_related("deployment__environment").filter(
        deployment__model_name=model_name, model_version=version
    )


def live_by_version(*, model_name: str) -> dict[str, list[Revision]]:
    """Where each version of ``model_name`` serves now: version -> its live revisions (with their deployment and
    environment), in environment order. One query."""
    deployments = (
        Deployment.objects.select_related("environment", "live_revision")
        .filter(model_name=model_name, live_revision__isnull=False)
        .exclude(status__in=[DeploymentStatus.DELETING, DeploymentStatus.DELETED])
        .order_by("environment__order", "environment__name")
    )
    live: dict[str, list[Revision]] = {}
    for deployment in deployments:
        revision = deployment.live_revision
        revision.deployment = deployment  # already loaded, with its environment
        live.setdefault(revision.model_version, []).append(revision)
    return live


# ---------------------------------------------------------------------------- scoring it
def input_example_read(model_dir: str | Path) -> dict | None:
    """The model's logged input example as a request body in MLflow's scoring protocol (``dataframe_split``,
    ``inputs``...), from its model directory: ``serving_input_example.json`` as MLflow writes it, else the older
    ``input_example.json`` wrapped as a ``dataframe_split``. None when the model was logged without one."""
    for name in ("serving_input_example.json", "input_example.json"):
        path = Path(model_dir, name)
        if path.is_file():
            example = json.loads(path.read_text())
            return example if name.startswith("serving") else {"dataframe_split": example}
    return None


def input_example_get(*, deployment: Deployment) -> dict | None:
    """The input example of the version ``deployment`` serves: from the live revision's model directory when this
    process can read it (the embedded default), else from the registry (one download per version, cached in
    DEPLOY_MODEL_CACHE). None when there is nothing live, no example, or the registry cannot be reached."""
    revision = deployment.live_revision
    if revision is None:
        return None
    if revision.model_dir and Path(revision.model_dir).is_dir():
        return input_example_read(revision.model_dir)
    try:
        model_dir = registry.model_files_get(
            name=deployment.model_name, version=revision.model_version, cache_dir=Path(settings.DEPLOY_MODEL_CACHE)
        )
    except (ApplicationError, OSError) as exc:
        logger.warning("no input example for %s: %s", deployment, exc)
        return None
    return input_example_read(model_dir)


def score_snippet(*, endpoint_url: str, example: dict) -> str:
    """A curl command that works when pasted: the example as the body, through a quoted here-document (no shell
    quoting of the JSON to get wrong)."""
    url = shlex.quote(f"{endpoint_url.rstrip('/')}/invocations")
    body = json.dumps(example, indent=None, separators=(", ", ": "))
    return f"curl -s -X POST {url} -H 'Content-Type: application/json' --data-binary @- <<'JSON'\n{body}\nJSON"


@dataclass(frozen=True)
class DeploymentPermissions:
    """What the deployment page offers the viewer. Only a hint: the services check the same rules on every call."""

    can_delete: bool
    rollback_to: frozenset[int]  # pks of the revisions the viewer may roll back to
    can_test: bool = False  # send a test request through the control plane


def deployment_permissions(*, deployment: Deployment, user: User, revisions: list[Revision]) -> DeploymentPermissions:
    """A rollout in progress is a passing state: the buttons stay, and the service answers "wait for it"."""
    from apps.deployments.services import rollback_refusal  # the services read through these selectors

    env = deployment.environment
    may_roll_back = may(user, ROLL_BACK, environment=env)
    return DeploymentPermissions(
        can_delete=may(user, DELETE_DEPLOYMENT, environment=env)
        and deployment.status not in (DeploymentStatus.DELETING, DeploymentStatus.DELETED),
        rollback_to=frozenset(r.pk for r in revisions if may_roll_back and rollback_refusal(deployment, r) is None),
        can_test=bool(deployment.endpoint_url) and may(user, TEST_ENDPOINT, environment=env),
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
