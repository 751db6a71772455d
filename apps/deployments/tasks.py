"""Celery tasks of the deploy pipeline: thin callers of ``pipeline.py`` and ``services.py``.

Arguments are ids only. Every task is safe to run twice (see the docstrings of what they call).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import Task, shared_task
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from apps.deployments import lease, pipeline
from apps.deployments.backends import BackendError, TransientBackendError
from apps.deployments.choices import DeploymentStatus, RevisionStatus
from apps.deployments.models import Deployment, Revision

logger = logging.getLogger(__name__)


class _RevisionRunTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        revision_id = kwargs.get("revision_id")
        if revision_id is not None:
            message = exc.message if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}"
            pipeline.revision_give_up(revision_id=revision_id, reason=f"gave up after retries: {message}")


@shared_task(
    name="deployments.revision_run",
    base=_RevisionRunTask,
    acks_late=True,
    autoretry_for=(TransientBackendError,),
    retry_backoff=5,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=8,
)
def revision_run(*, revision_id: int) -> str:
    if not Revision.objects.filter(pk=revision_id).exists():
        logger.info("revision %s is gone; nothing to run", revision_id)
        return "gone"
    try:
        return pipeline.revision_run(revision_id=revision_id)
    except TransientBackendError:
        lease.release(revision_id)
        raise


@shared_task(
    name="deployments.tear_down", acks_late=True, autoretry_for=(TransientBackendError,), max_retries=8, retry_backoff=5
)
def tear_down(*, deployment_id: int) -> str:
    deployment = Deployment.objects.select_related("environment").filter(pk=deployment_id).first()
    if deployment is None or deployment.status != DeploymentStatus.DELETING:
        return "nothing to do"
    latest = deployment.revisions.first()
    if latest is not None:
        pipeline.target_for(deployment, latest.config).delete(pipeline.serving_spec(latest), logger.info)
    Deployment.objects.filter(pk=deployment.pk).update(
        status=DeploymentStatus.DELETED, live_revision=None, endpoint_url=""
    )
    return "deleted"


@shared_task(name="deployments.requeue_stuck")
def requeue_stuck() -> int:
    """Re-enqueue revisions whose message was lost or whose worker died; claiming makes duplicates harmless."""
    now = timezone.now()
    stuck = Revision.objects.filter(
        Q(status=RevisionStatus.QUEUED, created_at__lt=now - timedelta(seconds=settings.DEPLOY_STUCK_QUEUED_SECONDS))
        | Q(status=RevisionStatus.RUNNING, lease_until__lt=now)
    ).values_list("pk", flat=True)
    for revision_id in stuck:
        revision_run.apply_async(kwargs={"revision_id": revision_id})
    deleting = Deployment.objects.filter(
        status=DeploymentStatus.DELETING, updated_at__lt=now - timedelta(seconds=settings.DEPLOY_STUCK_QUEUED_SECONDS)
    ).values_list("pk", flat=True)
    for deployment_id in deleting:
        tear_down.apply_async(kwargs={"deployment_id": deployment_id})
    return len(stuck) + len(deleting)


@shared_task(name="deployments.reconcile_local")
def reconcile_local() -> int:
    """Restart local scoring processes of live deployments that died (the embedded default's controller)."""
    restarted = 0
    live = Deployment.objects.select_related("environment", "live_revision").filter(
        status=DeploymentStatus.LIVE, environment__target="local", live_revision__isnull=False
    )
    for deployment in live:
        revision = deployment.live_revision
        target = pipeline.target_for(deployment, revision.config)
        spec = pipeline.serving_spec(revision)
        if target.is_running(spec):
            continue
        logger.warning("local deployment %s %s is not running; restarting", deployment.name, spec.revision)
        target.apply(spec, logger.info)
        result = target.wait_ready(spec, logger.info, timeout_seconds=120)
        if result.ok:
            Deployment.objects.filter(pk=deployment.pk).update(endpoint_url=target.endpoint_url(spec))
            restarted += 1
    return restarted
