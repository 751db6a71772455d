"""Writes for deployments: ask for a rollout, roll back, delete. The revision itself runs in ``pipeline.py``.

Every write checks the actor's role, records an audit event in its own transaction, and queues Celery
work only once that transaction has committed.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.permissions import DELETE_DEPLOYMENT, DEPLOY, ROLL_BACK, TEST_ENDPOINT, require
from apps.accounts.services import audit_changes, audit_record
from apps.common.errors import ApplicationError, ConflictError, NotFoundError
from apps.deployments.choices import (
    DeploymentStatus,
    DeployTargetName,
    InputValidation,
    RevisionKind,
    RevisionStatus,
    StepName,
)
from apps.deployments.clusters import cluster_refusal
from apps.deployments.models import Deployment, Environment, Revision, RevisionStep
from apps.deployments.naming import (
    deployment_name_error,
    derive_deployment_name,
    dns1123_label_error,
    image_repository_error,
)
from apps.deployments.quantities import resources_errors
from apps.deployments.rollouts.strategy import Strategy, StrategyError, strategy_parse
from apps.deployments.selectors import environment_get
from apps.registry import selectors as registry

__all__ = [
    "environment_ensure",
    "deployment_create",
    "rollout_strategy",
    "deployment_rollback",
    "rollback_refusal",
    "deployment_delete",
    "revision_enqueue",
    "idempotency_key_reused",
    "revision_audit_data",
    "deployment_test_score",
    "EndpointAnswer",
]

IN_PROGRESS = (RevisionStatus.QUEUED, RevisionStatus.RUNNING)
DEPLOY_STEPS = [
    StepName.RESOLVE,
    StepName.BUILD,
    StepName.PUSH,
    StepName.APPLY,
    StepName.ROLLOUT,
    StepName.SMOKE_TEST,
    StepName.TRAFFIC,
    StepName.LIVE,
]
ROLLBACK_STEPS = [StepName.APPLY, StepName.ROLLOUT, StepName.SMOKE_TEST, StepName.LIVE]

logger = logging.getLogger(__name__)


@transaction.atomic
def environment_ensure(*, name: str, actor: User | None = None, **fields: object) -> tuple[Environment, bool]:
    """Create the environment if it does not exist; an existing one is left as an admin set it."""
    existing = Environment.objects.filter(name=name).first()
    if existing:
        return existing, False
    environment = Environment(name=name, **fields)
    environment.full_clean()
    environment.save()
    audit_record(
        actor=actor,
        action="environment.create",
        target_type="environment",
        target_id=environment.pk,
        data={"name": name, **{k: str(v) for k, v in fields.items()}},
    )
    return environment, True


def _names_in_namespace(environment: Environment) -> set[str]:
    """Names of the active deployments whose objects share ``environment``'s namespace, in every environment.

    Environments may share a Kubernetes namespace of one cluster (docs/deploy-aks.md), and object names are unique
    per namespace, so a name taken by production is taken for dev too (not when each has its own cluster)."""
    neighbours = Environment.objects.filter(pk=environment.pk)
    if environment.target == DeployTargetName.KUBERNETES:
        neighbours = Environment.objects.filter(
            target=DeployTargetName.KUBERNETES, namespace=environment.namespace, cluster=environment.cluster
        )
    return set(
        Deployment.objects.filter(environment__in=neighbours)
        .exclude(status=DeploymentStatus.DELETED)
        .values_list("name", flat=True)
    )


def _resource_name(model_name: str, environment: Environment, chosen: str) -> str:
    """The chosen name, checked, or one derived from the model's name (naming.py)."""
    taken = _names_in_namespace(environment)
    if not chosen:
        return derive_deployment_name(model_name, taken=taken)
    if problem := deployment_name_error(chosen):
        raise ApplicationError(problem, code="invalid_name")
    if chosen in taken:
        where = environment.namespace or environment.name
        raise ConflictError(f"The name {chosen!r} is already used by another deployment in {where}.", code="name_taken")
    return chosen


def _environment_refusal(env: Environment) -> ApplicationError | None:
    """Why nothing can be deployed to ``env`` as it is configured (an admin must fix it first), or None."""
    problems = list(
        resources_errors(
            cpu_request=env.cpu_request,
            cpu_limit=env.cpu_limit,
            memory_request=env.memory_request,
            memory_limit=env.memory_limit,
        ).values()
    )
    if env.target == DeployTargetName.KUBERNETES and (problem := dns1123_label_error(env.namespace, "The namespace")):
        problems.append(problem)
    if env.image_registry and (problem := image_repository_error(env.image_registry.rstrip("/"))):
        problems.append(problem)
    if env.target == DeployTargetName.KUBERNETES and (problem := cluster_refusal(env.cluster)):
        problems.append(problem)
    if not problems:
        return None
    return ApplicationError(f"{env.name} is misconfigured: " + " ".join(problems), code="invalid_environment")


def _new_revision(deployment: Deployment, *, steps: list[str], **fields: object) -> Revision:
    number = (deployment.revisions.aggregate(m=Max("number"))["m"] or 0) + 1
    revision = Revision.objects.create(deployment=deployment, number=number, **fields)
    RevisionStep.objects.bulk_create(
        RevisionStep(revision=revision, name=name, position=i) for i, name in enumerate(steps)
    )
    return revision


def revision_enqueue(revision: Revision) -> None:
    """Queue the revision's run once the surrounding transaction commits (a rolled-back request queues nothing)."""
    from apps.deployments.tasks import revision_run as revision_run_task

    revision_id = revision.pk

    def unsent() -> None:  # requeue_stuck sends marked rows at its next run, without waiting for them to age
        Revision.objects.filter(pk=revision_id, status=RevisionStatus.QUEUED).update(publish_failed_at=timezone.now())

    transaction.on_commit(lambda: _publish(revision_run_task, on_failure=unsent, revision_id=revision_id))


def _publish(task, *, on_failure: Callable[[], None] | None = None, **kwargs: object) -> None:
    """Send ``task`` now if the broker takes it; if not, the row stays queued (it is the truth), ``on_failure``
    marks it, and ``requeue_stuck`` sends it once the broker is back. The request still answers 202."""
    try:
        task.apply_async(kwargs=kwargs)
    except Exception as exc:  # kombu and redis raise many kinds; none may undo a committed request
        logger.warning(
            "broker unreachable (%s): %s %s stays queued until requeued", type(exc).__name__, task.name, kwargs
        )
        if on_failure is not None:
            on_failure()


def idempotency_key_reused(key: str, used_for: str) -> ConflictError:
    """The answer to a known ``Idempotency-Key`` sent with a different request (HTTP 409)."""
    return ConflictError(
        f"Idempotency-Key {key!r} was already used for {used_for}; a retry must send the same request, "
        "a new request needs a new key.",
        code="idempotency_key_reused",
    )


def _revision_replay(actor: User, key: str, *, kind: str, fingerprint: tuple[object, ...]) -> Revision | None:
    """The revision ``actor`` already started with ``key``, if its request had the same ``fingerprint``.

    Deploys fingerprint (model, version, environment), rollbacks (deployment id, revision rolled back to)."""
    if not key:
        return None
    previous = (
        Revision.objects.select_related("deployment__environment", "rollback_of")
        .filter(requested_by=actor, idempotency_key=key)
        .first()
    )
    if previous is None:
        return None
    deployment = previous.deployment
    if previous.kind == RevisionKind.ROLLBACK:
        same = kind == RevisionKind.ROLLBACK and fingerprint == (deployment.pk, previous.rollback_of_id)
        used_for = f"a rollback of {deployment} to {previous.rollback_of.label if previous.rollback_of else '?'}"
    else:
        same = kind == previous.kind and fingerprint == (
            deployment.model_name,
            previous.model_version,
            deployment.environment.name,
        )
        used_for = f"{deployment.model_name} v{previous.model_version} in {deployment.environment.name}"
    if not same:
        raise idempotency_key_reused(key, used_for)
    return previous


def _idempotent_replay(actor: User, key: str, model_name: str, version: str, environment: str) -> Revision | None:
    return _revision_replay(actor, key, kind=RevisionKind.DEPLOY, fingerprint=(model_name, version, environment))


def deployment_create(
    *,
    actor: User,
    model_name: str,
    model_version: str,
    environment: str,
    idempotency_key: str = "",
    via_promotion: bool = False,
    executed_by: User | None = None,
    name: str = "",
    input_validation: str = "",
    strategy: object = None,
) -> Revision:
    """Ask for ``model_name`` version ``model_version`` to serve in ``environment``; returns the queued revision.

    ``name`` names the deployment's objects in the cluster on its first deploy (derived from the model's name
    when empty); it is checked, with the environment's settings, before anything is queued.
    ``input_validation`` (``choices.InputValidation``) is how the scoring server checks request data; empty keeps
    the deployment's current choice (MLflow's behaviour for a new deployment).
    ``strategy`` (``rollouts/strategy.py``: a dict or a type name) is how the revision takes traffic, on top of the
    environment's default; checked against what the environment's target can do.

    The same ``idempotency_key`` from the same person returns the first revision instead of starting another.
    ``via_promotion`` is for the promotions service only, once a promotion to a gated environment is approved;
    the UI and the API never pass it. Then ``actor`` is who requested the promotion (the revision is theirs) and
    ``executed_by`` the reviewer whose approval executes it (None: the system, retrying): the audit event is
    theirs and says "executed on approval by <reviewer>, requested by <lead>".
    """
    env = environment_get(name=environment)
    if not via_promotion:  # an approved promotion is its own authorisation
        require(actor, DEPLOY, environment=env)
    model_version = str(model_version).strip()
    replay = _idempotent_replay(actor, idempotency_key, model_name, model_version, environment)
    if replay:
        return replay
    if env.gated and not via_promotion:
        raise ConflictError(
            f"{env.name} is gated: deploying there needs an approved promotion, not a direct deploy. "
            "Request a promotion of this version instead.",
            code="promotion_required",
        )
    if refused := _environment_refusal(env):
        raise refused
    if input_validation and input_validation not in InputValidation.values:
        raise ApplicationError(
            f"Unknown input validation {input_validation!r}; expected one of {', '.join(InputValidation.values)}.",
            code="invalid_input_validation",
        )
    plan = rollout_strategy(env, strategy)
    registry.model_version_get(name=model_name, version=model_version)  # 404 naming it when unknown
    try:
        return _deployment_create(
            actor,
            env,
            model_name,
            model_version,
            idempotency_key,
            name.strip(),
            input_validation,
            _Executed(executed_by) if via_promotion else None,
            plan,
        )
    except IntegrityError:
        replay = _idempotent_replay(actor, idempotency_key, model_name, model_version, environment)
        if replay:  # a concurrent request with the same key won the race
            return replay
        raise ConflictError(f"{model_name} is being deployed to {env.name} by another request; try again.") from None


@dataclass(frozen=True)
class _Executed:
    """A deploy that an approved promotion executes, and who approved it (None: the system, retrying)."""

    by: User | None


def revision_audit_data(revision: Revision) -> dict[str, str]:
    """How the audit names a revision, as the pages do: its per-deployment number ("r3") and where it serves.
    (The event's ``target_id`` is the revision's API id, ``/api/v1/revisions/<id>/``.)"""
    deployment = revision.deployment
    return {"revision": revision.label, "model": deployment.model_name, "environment": deployment.environment.name}


@transaction.atomic
def _deployment_create(
    actor: User,
    env: Environment,
    model_name: str,
    version: str,
    key: str,
    chosen_name: str,
    input_validation: str,
    executed: _Executed | None,
    plan: Strategy,
) -> Revision:
    deployment = (
        Deployment.objects.select_for_update()
        .filter(environment=env, model_name=model_name)
        .exclude(status=DeploymentStatus.DELETED)
        .first()
    )
    if deployment is None:
        deployment = Deployment(
            environment=env, model_name=model_name, name=_resource_name(model_name, env, chosen_name), created_by=actor
        )
        deployment.clean()
        deployment.save()
    elif chosen_name and chosen_name != deployment.name:
        raise ConflictError(
            f"{model_name} in {env.name} is deployed as {deployment.name!r}; a deployment keeps its name "
            "(delete it and deploy again to rename it).",
            code="name_taken",
        )
    elif deployment.status == DeploymentStatus.DELETING:
        raise ConflictError(f"{model_name} in {env.name} is being deleted; deploy again once it is gone.")
    busy = deployment.revisions.filter(status__in=IN_PROGRESS).first()
    if busy:
        raise ConflictError(
            f"{busy.label} of {model_name} in {env.name} is still rolling out; wait for it to finish.",
            code="rollout_in_progress",
            extra={"revision": busy.label, "revision_id": busy.pk},  # as responses name it; its API id
        )
    revision = _new_revision(
        deployment,
        steps=DEPLOY_STEPS,
        model_version=version,
        requested_by=actor,
        idempotency_key=key[:200],
        config={**_config(env), "input_validation": input_validation or _current_validation(deployment)},
        strategy=plan.as_dict() if plan.progressive else {},
    )
    data = {"model": model_name, "version": version, "environment": env.name, "revision": revision.label}
    if plan.progressive:
        data["strategy"] = plan.type
    if executed is not None:
        reviewer = executed.by.get_username() if executed.by else "the system (retrying an approved promotion)"
        requester = actor.get_username()
        data |= {"executed": f"on approval by {reviewer}, requested by {requester}", "requested_by": requester}
    audit_record(
        actor=executed.by if executed is not None else actor,
        action="deployment.deploy",
        target_type="revision",
        target_id=revision.pk,
        data=data,
    )
    revision_enqueue(revision)
    return revision


def _current_validation(deployment: Deployment) -> str:
    latest = deployment.revisions.filter(config__has_key="input_validation").first() if deployment.pk else None
    return (latest.config.get("input_validation") if latest else None) or InputValidation.MLFLOW


def rollout_strategy(env: Environment, requested: object) -> Strategy:
    """The strategy a deploy to ``env`` follows: ``requested`` on top of the environment's default, checked, and one
    the environment's target can run (``ApplicationError`` naming the problem otherwise)."""
    try:
        plan = strategy_parse(requested, default=env.rollout_strategy)
    except StrategyError as exc:
        raise ApplicationError(str(exc), code="invalid_strategy") from None
    from apps.deployments.targets import configured_target

    if refusal := configured_target(env.target, cluster=env.cluster).traffic_refusal(plan.type, gateway=env.gateway):
        raise ApplicationError(refusal, code="strategy_unsupported")
    return plan


def _config(env: Environment) -> dict[str, object]:
    fields = ["target", "cluster", "namespace", "gateway", "image_builder", "image_registry"]
    fields += ["replicas", "min_replicas", "max_replicas"]
    fields += ["cpu_request", "cpu_limit", "memory_request", "memory_limit"]
    return {field: getattr(env, field) for field in fields}


def deployment_rollback(
    *,
    actor: User,
    deployment: Deployment,
    to_revision: Revision,
    idempotency_key: str = "",
) -> Revision:
    """Serve an earlier live revision again (same model version, same image), as a new revision.

    The same ``idempotency_key`` for the same rollback returns the revision it started the first time."""
    try:
        return _deployment_rollback(actor, deployment, to_revision, idempotency_key[:200])
    except IntegrityError:  # the same key raced in on another deployment
        raise idempotency_key_reused(idempotency_key, "another request that is still being made") from None


def rollback_refusal(deployment: Deployment, to_revision: Revision) -> ApplicationError | None:
    """Why ``deployment`` cannot go back to ``to_revision`` (None: it can). The service raises it; the deployment
    page offers a Roll back button only where it is None. (A rollout in progress is checked apart: it passes.)"""
    if to_revision.deployment_id != deployment.pk:
        return NotFoundError(f"Revision {to_revision.pk} does not belong to {deployment}.")
    if deployment.status in (DeploymentStatus.DELETING, DeploymentStatus.DELETED):
        return ConflictError(f"{deployment} is deleted; it cannot be rolled back.")
    if to_revision.status not in (RevisionStatus.LIVE, RevisionStatus.SUPERSEDED):
        return ConflictError(f"{to_revision.label} never went live; only revisions that served can be restored.")
    if deployment.live_revision_id == to_revision.pk:
        return ConflictError(f"{to_revision.label} is already live.")
    return None


@transaction.atomic
def _deployment_rollback(actor: User, deployment: Deployment, to_revision: Revision, key: str) -> Revision:
    require(actor, ROLL_BACK, environment=deployment.environment)
    deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
    # After the lock, so that a retry racing the first call sees the revision it started.
    replay = _revision_replay(actor, key, kind=RevisionKind.ROLLBACK, fingerprint=(deployment.pk, to_revision.pk))
    if replay:
        return replay
    refused = rollback_refusal(deployment, to_revision)
    if refused:
        raise refused
    if deployment.revisions.filter(status__in=IN_PROGRESS).exists():
        raise ConflictError(
            f"A rollout of {deployment} is in progress; wait for it to finish.", code="rollout_in_progress"
        )
    revision = _new_revision(
        deployment,
        steps=ROLLBACK_STEPS,
        kind=RevisionKind.ROLLBACK,
        rollback_of=to_revision,
        model_version=to_revision.model_version,
        image=to_revision.image,
        image_digest=to_revision.image_digest,
        context_digest=to_revision.context_digest,
        model_dir=to_revision.model_dir,
        config=to_revision.config,
        requested_by=actor,
        idempotency_key=key,
    )
    audit_record(
        actor=actor,
        action="deployment.rollback",
        target_type="revision",
        target_id=revision.pk,
        data={
            **revision_audit_data(revision),
            "deployment": deployment.pk,
            "to": to_revision.label,
            "version": to_revision.model_version,
        },
    )
    revision_enqueue(revision)
    return revision


@transaction.atomic
def deployment_delete(*, actor: User, deployment: Deployment, idempotency_key: str = "") -> Deployment:
    """Tear the deployment down (in a task). Deleting twice is a no-op; an ``idempotency_key`` already used
    to delete another deployment is refused."""
    from apps.deployments.tasks import tear_down as tear_down_task

    require(actor, DELETE_DEPLOYMENT, environment=deployment.environment)
    key = idempotency_key[:200]
    deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
    if key:
        used = Deployment.objects.filter(deleted_by=actor, delete_idempotency_key=key).exclude(pk=deployment.pk)
        if used.exists():
            raise idempotency_key_reused(key, f"deleting {used.select_related('environment').first()}")
    if deployment.status in (DeploymentStatus.DELETING, DeploymentStatus.DELETED):
        return deployment
    if deployment.revisions.filter(status__in=IN_PROGRESS).exists():
        raise ConflictError(f"A rollout of {deployment} is in progress; wait for it to finish, then delete.")
    before = {"status": deployment.status}
    deployment.status = DeploymentStatus.DELETING
    deployment.deleted_by, deployment.delete_idempotency_key = actor, key
    deployment.save(update_fields=["status", "deleted_by", "delete_idempotency_key", "updated_at"])
    audit_record(
        actor=actor,
        action="deployment.delete",
        target_type="deployment",
        target_id=deployment.pk,
        data=audit_changes(
            before,
            {"status": deployment.status},
            model=deployment.model_name,
            environment=deployment.environment.name,
        ),
    )
    deployment_id = deployment.pk
    transaction.on_commit(lambda: _publish(tear_down_task, deployment_id=deployment_id))
    return deployment


# ---------------------------------------------------------------------------- test requests
TEST_MAX_BODY = 1_000_000  # bytes, both ways
_TEST_SHOWN_CHARS = 20_000


@dataclass(frozen=True)
class EndpointAnswer:
    """What a test request got back: the status (None: no answer), how long the round trip took from the control
    plane, and the answer's body (pretty-printed when JSON, cut at 20,000 characters)."""

    status: int | None
    latency_ms: float
    body: str
    error: str = ""
    request_id: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def deployment_test_score(*, actor: User, deployment: Deployment, body: str) -> EndpointAnswer:
    """Send ``body`` (JSON in MLflow's scoring protocol) to the deployment's ``/invocations`` from the control
    plane, server-side, so a person can try an endpoint their browser cannot reach (a cluster-internal or local
    one). Needs the role that deploys in the environment; at most 1 MB, answered within DEPLOY_TEST_TIMEOUT s,
    no redirects followed. The request id starts with ``controlplane-test-`` so its telemetry line says what
    it was. Not audited: it changes nothing."""
    require(actor, TEST_ENDPOINT, environment=deployment.environment)
    if deployment.status != DeploymentStatus.LIVE or not deployment.endpoint_url:
        raise ConflictError(f"{deployment} is not live; there is no endpoint to test.", code="not_live")
    data = body.encode()
    if len(data) > TEST_MAX_BODY:
        raise ApplicationError(f"The request body is over {TEST_MAX_BODY // 1000} KB.", code="body_too_large")
    try:
        json.loads(data)
    except ValueError as exc:
        raise ApplicationError(f"The request body is not valid JSON: {exc}.", code="invalid_json") from None
    url = f"{deployment.endpoint_url.rstrip('/')}/invocations"
    request_id = f"controlplane-test-{uuid.uuid4().hex[:12]}"
    session = requests.Session()
    session.trust_env = False  # straight to the endpoint, never through a proxy from the environment
    started = time.perf_counter()
    try:
        response = session.post(
            url,
            data=data,
            headers={"Content-Type": "application/json", "X-Request-ID": request_id},
            timeout=settings.DEPLOY_TEST_TIMEOUT,
            allow_redirects=False,
            stream=True,
        )
        content = response.raw.read(TEST_MAX_BODY, decode_content=True)
    except requests.Timeout:
        elapsed = (time.perf_counter() - started) * 1000
        return EndpointAnswer(None, elapsed, "", f"no answer within {settings.DEPLOY_TEST_TIMEOUT:g} s", request_id)
    except (requests.RequestException, OSError) as exc:
        elapsed = (time.perf_counter() - started) * 1000
        return EndpointAnswer(None, elapsed, "", f"could not reach {url}: {type(exc).__name__}", request_id)
    finally:
        session.close()
    elapsed = (time.perf_counter() - started) * 1000
    text = content.decode(response.encoding or "utf-8", errors="replace")
    try:
        text = json.dumps(json.loads(text), indent=2)
    except ValueError:
        pass
    return EndpointAnswer(response.status_code, elapsed, text[:_TEST_SHOWN_CHARS], "", request_id)
