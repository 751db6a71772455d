"""The deploy pipeline: drives one revision through its steps (resolve, build, push, apply, rollout, smoke test,
live) and rolls back on failure. Called by the ``deployments.revision_run`` task.

Safe to run twice, and safe to be killed at any point: a revision is claimed with a lease (``lease.py``) kept
alive while the worker works on it; every step either finds its work already done or does it declaratively; a
step that succeeded is never run again. A worker that dies loses its lease and ``requeue_stuck`` hands the
revision to another worker, which carries on from the first unfinished step. Every write names the attempt that
holds the lease: a worker whose revision was taken over while it stalled stops at its next write (``LeaseLost``),
writing nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import requests
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from apps.accounts.services import audit_record
from apps.common.errors import ApplicationError, UnavailableError
from apps.deployments.backends import BackendError, PermanentBackendError, TransientBackendError
from apps.deployments.builders import BuildRequest, ImageBuilder, configured_builder
from apps.deployments.choices import DeploymentStatus, ImageBuilderName, RevisionStatus, StepName, StepStatus
from apps.deployments.lease import Lease, LeaseLost, claim, lease_kept, release
from apps.deployments.models import Deployment, Revision, RevisionStep
from apps.deployments.rollouts.runner import Rollout, RolloutFailed, stable_of, traffic_step
from apps.deployments.rollouts.strategy import BLUE_GREEN, strategy_of
from apps.deployments.selectors import input_example_read
from apps.deployments.services import revision_audit_data
from apps.deployments.targets import (
    CANDIDATE,
    PRIMARY,
    DeploymentTarget,
    Readiness,
    ServingSpec,
    TrafficSplit,
    configured_target,
    rollout_time_limit,
)
from apps.events import catalogue
from apps.events.services import publish
from apps.registry import selectors as registry

__all__ = [
    "revision_run",
    "revision_give_up",
    "revision_retire_now",
    "serving_spec",
    "is_candidate",
    "target_for",
    "builder_for",
    "StepFailed",
]

logger = logging.getLogger(__name__)
MAX_LOG_CHARS = 60_000


class StepFailed(Exception):
    """The step ran and the result is a failure a person must act on (not worth retrying)."""


# ---------------------------------------------------------------------------- specs and backends
def target_for(deployment: Deployment, config: dict) -> DeploymentTarget:
    """The deployment target a revision's ``config`` names (its environment's), with options from the settings, on
    the cluster the revision was deployed to (revisions from before clusters: the environment's)."""
    cluster = config.get("cluster", deployment.environment.cluster)
    return configured_target(config.get("target") or deployment.environment.target, cluster=cluster)


def builder_for(config: dict) -> ImageBuilder:
    """The image builder a revision's ``config`` names (its environment's), with options from the settings."""
    return configured_builder(config["image_builder"])


def is_candidate(revision: Revision) -> bool:
    """Whether the revision serves beside the live one (a progressive rollout not yet promoted) rather than as the
    deployment itself."""
    return (
        strategy_of(revision.strategy).progressive
        and revision.status in (RevisionStatus.QUEUED, RevisionStatus.RUNNING)
        and revision.canary_weight < 100
        and revision.deployment.live_revision_id not in (None, revision.pk)
    )


def serving_spec(revision: Revision) -> ServingSpec:
    deployment, config = revision.deployment, revision.config
    return ServingSpec(
        placement=CANDIDATE if is_candidate(revision) else PRIMARY,
        gateway=deployment.environment.gateway,  # the route is the deployment's: always the current gateway
        deployment=deployment.name,
        namespace=config.get("namespace") or "default",
        environment=deployment.environment.name,
        revision=revision.label,
        model_name=deployment.model_name,
        model_version=revision.model_version,
        model_uri=f"models:/{deployment.model_name}/{revision.model_version}",
        image=revision.image,
        image_digest=revision.image_digest,
        model_dir=revision.model_dir,
        replicas=int(config.get("replicas", 1)),
        min_replicas=int(config.get("min_replicas", 1)),
        max_replicas=int(config.get("max_replicas", 3)),
        cpu_request=config.get("cpu_request", "250m"),
        cpu_limit=config.get("cpu_limit", "1"),
        memory_request=config.get("memory_request", "512Mi"),
        memory_limit=config.get("memory_limit", "1Gi"),
        env={
            "SCORING_VALIDATION": config.get("input_validation") or "mlflow",
            "SCORING_TELEMETRY_SAMPLE_RATE": str(settings.SCORING_TELEMETRY_SAMPLE_RATE),
        },
        progress_deadline_seconds=settings.DEPLOY_PROGRESS_DEADLINE,
    )


# ---------------------------------------------------------------------------- steps
class _StepLog:
    """Appends a step's log lines to its row as they happen, and writes the step's results, while ``lease`` (the
    attempt running the step) holds the revision; otherwise raises ``LeaseLost`` and writes nothing."""

    def __init__(self, step: RevisionStep, lease: Lease | None = None) -> None:
        self.step = step
        self.lease = lease
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        stamp = timezone.now().strftime("%H:%M:%S")
        self.lines.append(f"{stamp} {line}")
        self.step_update(log="\n".join(self.lines)[-MAX_LOG_CHARS:])

    def step_update(self, **fields: object) -> None:
        rows = RevisionStep.objects.filter(pk=self.step.pk)
        if self.lease is not None:
            rows = rows.filter(revision__attempts=self.lease.attempt, revision__status=RevisionStatus.RUNNING)
        if rows.update(**fields) != 1 and self.lease is not None:
            self.lease.check()  # raises: the step's row is there, so the revision was taken over

    def revision_update(self, revision: Revision, **fields: object) -> None:
        rows = Revision.objects.filter(self.lease.held() if self.lease else Q(pk=revision.pk))
        if rows.update(**fields) != 1 and self.lease is not None:
            self.lease.check()
        for name, value in fields.items():
            setattr(revision, name, value)


def _resolve(revision: Revision, log: _StepLog) -> str:
    name, version = revision.deployment.model_name, revision.model_version
    log(f"resolving {name} version {version} in the registry")
    info = registry.model_version_get(name=name, version=version)
    model_dir = registry.model_files_get(name=name, version=version, cache_dir=settings.DEPLOY_MODEL_CACHE)
    log.revision_update(revision, model_dir=str(model_dir))
    log(f"model files in {model_dir}")
    return f"{name} v{version} (run {info.run_id or 'unknown'})"


def _context_dir(revision: Revision) -> Path:
    return Path(settings.VAR_DIR) / "build-contexts" / f"revision-{revision.pk}"


def _build(revision: Revision, log: _StepLog) -> str:
    if revision.config.get("image_builder", ImageBuilderName.NONE) == ImageBuilderName.NONE:
        raise _Skip("the local target serves the model directory directly; no image needed")
    from scoring.build_context import assemble_build_context, compile_context

    context_dir = _context_dir(revision)
    if context_dir.exists():
        import shutil

        shutil.rmtree(context_dir)  # a half-written context from a killed worker
    context = assemble_build_context(
        revision.model_dir,
        context_dir,
        base_image=settings.SCORING_BASE_IMAGE,
        model_name=revision.deployment.model_name,
        model_version=revision.model_version,
        # Compiled after the registry check below (compile_context): an image that exists needs no compiling.
    )
    repository = revision.config.get("image_registry", "").rstrip("/")
    if not repository:
        raise StepFailed(f"environment {revision.deployment.environment.name} has no image registry configured")
    image = f"{repository}/{revision.deployment.name}:{context.tag}"
    log.revision_update(revision, image=image, context_digest=context.digest)
    builder = builder_for(revision.config)
    if builder.exists(image):
        raise _Skip(f"{image} is already in the registry; nothing to build")
    log("compiling the model to a fast runtime and verifying it against the original")
    decision = compile_context(context, reference_data=_reference_data(revision, context_dir, log), log=log)
    log(f"building {image}")
    labels = {
        "org.opencontainers.image.title": revision.deployment.model_name,
        "modelplane.io/revision": revision.label,
    }
    digest = builder.build_and_push(
        BuildRequest(context_dir=context_dir, image=image, build_args=context.build_args, labels=labels), log
    )
    log.revision_update(revision, image_digest=digest)
    return f"built and pushed {image} (model runtime: {decision['runtime']})"


def _reference_data(revision: Revision, context_dir: Path, log: _StepLog) -> Path | None:
    """The version's logged reference data set, to verify the compiled model on (best effort: without it the
    input example alone is used)."""
    from apps.monitoring.services import REFERENCE_ARTIFACT
    from apps.registry.client import get_client

    name, version = revision.deployment.model_name, revision.model_version
    try:
        run_id = registry.model_version_get(name=name, version=version).run_id
        if not run_id:
            return None
        dest = context_dir.parent / f"{context_dir.name}-reference"
        dest.mkdir(parents=True, exist_ok=True)
        return Path(get_client().download_run_artifact(run_id, REFERENCE_ARTIFACT, str(dest)))
    except ApplicationError as exc:
        log(f"no reference data to verify on ({exc.message}); using the input example")
        return None


def _push(revision: Revision, log: _StepLog) -> str:
    if revision.config.get("image_builder", ImageBuilderName.NONE) == ImageBuilderName.NONE:
        raise _Skip("no image")
    if not builder_for(revision.config).exists(revision.image):
        raise TransientBackendError(f"{revision.image} is not in the registry yet")
    return f"{revision.image} is in the registry"


def _apply(revision: Revision, log: _StepLog) -> str:
    spec = serving_spec(revision)
    target_for(revision.deployment, revision.config).apply(spec, log)
    return f"applied {spec.revision} of {spec.deployment}"


def ready_timeout(spec: ServingSpec) -> float:
    """The whole rollout's limit: DEPLOY_READY_TIMEOUT, or (0) derived from the replicas and the progress deadline."""
    return settings.DEPLOY_READY_TIMEOUT or rollout_time_limit(spec)


def _rollout(revision: Revision, log: _StepLog) -> str:
    spec = serving_spec(revision)
    target = target_for(revision.deployment, revision.config)
    readiness: Readiness = target.wait_ready(spec, log, timeout_seconds=ready_timeout(spec))
    if not readiness.ok:
        raise StepFailed(readiness.message)
    return readiness.message


def _smoke_test(revision: Revision, log: _StepLog) -> str:
    example = input_example_read(revision.model_dir) if revision.model_dir else None
    if example is None:
        raise _Skip("the model was logged without an input example")
    url = target_for(revision.deployment, revision.config).endpoint_url(serving_spec(revision)).rstrip("/")
    log(f"POST {url}/invocations with the model's input example")
    try:
        response = requests.post(f"{url}/invocations", json=example, timeout=30)
    except requests.RequestException as exc:
        raise StepFailed(f"smoke test could not reach {url}: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise StepFailed(f"smoke test answered {response.status_code}: {response.text[:300]}")
    predictions = response.json().get("predictions")
    log(f"predictions: {json.dumps(predictions)[:300]}")
    return f"scored the input example in {response.elapsed.total_seconds() * 1000:.0f} ms"


def _traffic(revision: Revision, log: _StepLog) -> str:
    strategy = strategy_of(revision.strategy)
    if not strategy.progressive:
        raise _Skip("all at once: the revision takes all traffic when it goes live")
    stable = stable_of(revision)
    if stable is None:
        raise _Skip(f"{strategy.type}: no live revision to compare with, so the first one takes all traffic at once")
    rollout = Rollout(
        revision=revision,
        stable=stable,
        strategy=strategy,
        target=target_for(revision.deployment, revision.config),
        spec_of=serving_spec,
        save=log.revision_update,
        log=log,
    )
    try:
        return traffic_step(rollout)
    except RolloutFailed as failed:
        raise StepFailed(str(failed)) from failed


@transaction.atomic
def _go_live(revision: Revision, log: _StepLog) -> str:
    if log.lease is not None and not Revision.objects.select_for_update().filter(log.lease.held()).exists():
        log.lease.check()  # raises: taken over (the row lock keeps it ours until this transaction ends)
    deployment = Deployment.objects.select_for_update().get(pk=revision.deployment_id)
    previous = deployment.live_revision
    target, spec = target_for(deployment, revision.config), serving_spec(revision)
    target.set_traffic(TrafficSplit(stable=spec), log)
    url = target.stable_url(spec)
    deployment.live_revision = revision
    deployment.status = DeploymentStatus.LIVE
    deployment.endpoint_url = url
    deployment.save(update_fields=["live_revision", "status", "endpoint_url", "updated_at"])
    if previous and previous.pk != revision.pk:
        Revision.objects.filter(pk=previous.pk).update(status=RevisionStatus.SUPERSEDED)
        previous_spec = serving_spec(previous)
        strategy = strategy_of(revision.strategy)
        if strategy.type == BLUE_GREEN and strategy.keep_warm_seconds:
            log(f"{previous.label} stays warm for {strategy.keep_warm_seconds} s, so a rollback to it is instant")
            transaction.on_commit(lambda: _retire_later(previous, strategy.keep_warm_seconds))
        else:
            transaction.on_commit(lambda: _retire(deployment, previous.config, previous_spec))
    return f"serving at {url}"


def _retire_later(previous: Revision, seconds: int) -> None:
    from apps.deployments.tasks import revision_retire

    try:
        revision_retire.apply_async(kwargs={"revision_id": previous.pk}, countdown=seconds)
    except Exception as exc:  # the broker is down: stop it now rather than leave it running for ever
        logger.warning("could not schedule the retirement of %s (%s); retiring now", previous, type(exc).__name__)
        revision_retire_now(revision_id=previous.pk)


def revision_retire_now(*, revision_id: int) -> str:
    """Stop an older revision kept warm after a blue-green switch, unless it is live again."""
    revision = Revision.objects.select_related("deployment__environment").filter(pk=revision_id).first()
    if revision is None or revision.status != RevisionStatus.SUPERSEDED:
        return "not superseded; left alone"
    _retire(revision.deployment, revision.config, serving_spec(revision))
    return "retired"


def _retire(deployment: Deployment, config: dict, spec: ServingSpec) -> None:
    try:
        target_for(deployment, config).retire(spec, logger.info)
    except BackendError as exc:
        logger.warning("could not retire %s %s: %s", spec.deployment, spec.revision, exc.message)


class _Skip(Exception):
    pass


STEPS = {
    StepName.RESOLVE: _resolve,
    StepName.BUILD: _build,
    StepName.PUSH: _push,
    StepName.APPLY: _apply,
    StepName.ROLLOUT: _rollout,
    StepName.SMOKE_TEST: _smoke_test,
    StepName.TRAFFIC: _traffic,
    StepName.LIVE: _go_live,
}


def _run_step(revision: Revision, step: RevisionStep, lease: Lease | None = None) -> None:
    interrupted = step.status == StepStatus.RUNNING  # a worker died in this step
    log = _StepLog(step, lease)
    log.step_update(status=StepStatus.RUNNING, started_at=timezone.now(), finished_at=None)
    log.lines = step.log.splitlines() if step.log else []
    if interrupted:
        log(f"resuming (attempt {revision.attempts})")
    try:
        message, status = STEPS[step.name](revision, log), StepStatus.SUCCEEDED
    except _Skip as skip:
        message, status = str(skip), StepStatus.SKIPPED
        log(f"skipped: {skip}")
    except (StepFailed, PermanentBackendError) as exc:
        text = exc.message if isinstance(exc, BackendError) else str(exc)
        log(f"failed: {text}")
        log.step_update(status=StepStatus.FAILED, finished_at=timezone.now(), message=text[:1000])
        raise StepFailed(text) from exc
    except UnavailableError as exc:  # the registry is down: worth trying again later
        log(f"will retry: {exc.message}")
        log.step_update(status=StepStatus.PENDING, message=exc.message[:1000])
        raise TransientBackendError(exc.message) from exc
    except ApplicationError as exc:
        log(f"failed: {exc.message}")
        log.step_update(status=StepStatus.FAILED, finished_at=timezone.now(), message=exc.message[:1000])
        raise StepFailed(exc.message) from exc
    except TransientBackendError as exc:
        log(f"will retry: {exc.message}")
        log.step_update(status=StepStatus.PENDING, message=exc.message[:1000])
        raise
    log.step_update(status=status, finished_at=timezone.now(), message=message[:1000])


# ---------------------------------------------------------------------------- events
def _publish(revision: Revision, event: str, summary: str, **extra: object) -> None:
    """Tell the notification channels (apps/events); sent after this transaction commits, never blocking."""
    deployment = revision.deployment
    publish(
        event,
        {
            "summary": summary,
            "deployment": deployment.pk,
            "model": deployment.model_name,
            "version": revision.model_version,
            "revision": revision.label,
            "kind": revision.kind,
            **extra,
            "url": reverse("deployments:revision_detail", kwargs={"pk": revision.pk}),
        },
        environment=deployment.environment_id,
    )


def _what(revision: Revision) -> str:
    deployment = revision.deployment
    return f"{deployment.model_name} v{revision.model_version} ({revision.label}) in {deployment.environment.name}"


# ---------------------------------------------------------------------------- failure and rollback
def _fail(revision: Revision, reason: str, lease: Lease | None = None) -> None:
    """The rollout failed: serve the last live revision again if there is one, and say why. With ``lease``, only
    while that attempt holds the revision (``LeaseLost`` otherwise, before anything is rolled back or written)."""
    if lease is not None:
        lease.check()
    deployment = revision.deployment
    previous = deployment.live_revision
    target = target_for(deployment, revision.config)
    spec = serving_spec(revision)
    restored = ""
    if previous and previous.pk != revision.pk:
        previous_spec = serving_spec(previous)
        try:
            if is_candidate(revision):  # the live revision never stopped serving: give it all the traffic back
                target.set_traffic(TrafficSplit(stable=previous_spec), logger.info)
            target.apply(previous_spec, logger.info)
            result = target.wait_ready(previous_spec, logger.info, timeout_seconds=ready_timeout(previous_spec))
            restored = previous.label if result.ok else ""
            if not result.ok:
                reason += f"; rolling back to {previous.label} also failed: {result.message}"
        except BackendError as exc:
            reason += f"; rolling back to {previous.label} failed: {exc.message}"
        if restored:
            try:
                target.retire(spec, logger.info)
            except BackendError:
                logger.warning("could not stop failed revision %s", spec.revision)
    else:
        try:
            target.delete(spec, logger.info) if deployment.live_revision is None else None
        except BackendError:
            logger.warning("could not clean up failed revision %s", spec.revision)
    with transaction.atomic():
        status = RevisionStatus.ROLLED_BACK if restored else RevisionStatus.FAILED
        message = f"{reason} (rolled back to {restored})" if restored else reason
        rows = Revision.objects.filter(lease.held() if lease else Q(pk=revision.pk))
        written = rows.update(status=status, error=message[:5000], finished_at=timezone.now(), canary_weight=0)
        if not written and lease is not None:
            lease.check()  # raises: taken over meanwhile; the audit below is not written
        if not restored:
            Deployment.objects.filter(pk=deployment.pk, live_revision__isnull=True).update(
                status=DeploymentStatus.FAILED
            )
        if restored:
            _publish(
                revision,
                catalogue.REVISION_ROLLED_BACK,
                f"{_what(revision)} failed and was rolled back to {restored}: {reason}",
                reason=reason[:500],
                restored=restored,
            )
        else:
            _publish(revision, catalogue.REVISION_FAILED, f"{_what(revision)} failed: {reason}", reason=reason[:500])
        audit_record(
            actor=None,
            action="deployment.rolled_back" if restored else "deployment.failed",
            target_type="revision",
            target_id=revision.pk,
            data={**revision_audit_data(revision), "reason": reason[:500], "restored": restored},
        )


# ---------------------------------------------------------------------------- entry point
def revision_run(*, revision_id: int) -> str:
    """Run the revision's remaining steps. Returns what happened, for the task log. A transient failure gives the
    lease back and raises (the task retries); a lease taken over by another worker stops the run, unwritten."""
    lease = claim(revision_id)
    if lease is None:
        return "not claimable (finished, or another worker holds it)"
    try:
        with lease_kept(lease):  # also while rolling back, which waits for the previous revision to serve
            return _run_claimed(lease)
    except LeaseLost as lost:
        logger.warning("%s; stopped without writing", lost)
        return f"lease lost: attempt {lease.attempt} was taken over; stopped"
    except TransientBackendError:
        release(lease)
        raise
    except (OperationalError, InterfaceError) as exc:  # the database connection dropped under the run
        connection.close()  # the retry opens a new one
        with contextlib.suppress(DatabaseError):
            release(lease)
        raise TransientBackendError(f"the database connection was lost ({type(exc).__name__}); retrying") from exc


def _run_claimed(lease: Lease) -> str:
    revision = Revision.objects.select_related("deployment__environment", "deployment__live_revision").get(
        pk=lease.revision_id
    )
    if revision.attempts == 1:  # the first claim; a worker resuming it after a crash is no new start
        _publish(revision, catalogue.REVISION_STARTED, f"Rollout of {_what(revision)} started.")
    for step in revision.steps.all():
        if step.status in (StepStatus.SUCCEEDED, StepStatus.SKIPPED):
            continue
        try:
            _run_step(revision, step, lease)
        except StepFailed as failure:
            _fail(revision, f"{step.get_name_display()} failed: {failure}", lease)
            return f"failed at {step.name}"
    with transaction.atomic():
        live = Revision.objects.filter(lease.held()).update(
            status=RevisionStatus.LIVE, finished_at=timezone.now(), error=""
        )
        if not live:
            lease.check()  # raises: taken over between the last step and here; no second audit event
        _publish(revision, catalogue.REVISION_LIVE, f"{_what(revision)} is live.", image=revision.image)
        audit_record(
            actor=None,
            action="deployment.live",
            target_type="revision",
            target_id=revision.pk,
            data={
                **revision_audit_data(revision),
                "version": revision.model_version,
                # the local target runs no image: say what serves instead of an empty value
                "image": revision.image or f"none (local process serving {revision.model_dir or 'the model'})",
            },
        )
    return "live"


def revision_give_up(*, revision_id: int, reason: str) -> None:
    """Retries are exhausted: record the failure (and roll back) so the revision does not hang."""
    revision = Revision.objects.select_related("deployment__environment", "deployment__live_revision").get(
        pk=revision_id
    )
    if revision.is_final:
        return
    _fail(revision, reason)
