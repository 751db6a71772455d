"""Celery tasks of the deploy pipeline: thin callers of ``pipeline.py`` and ``upkeep.py``.

Arguments are ids only. Every task is safe to run twice (see the docstrings of what they call).
"""

from __future__ import annotations

import logging

from celery import Task, shared_task

from apps.deployments import pipeline, upkeep
from apps.deployments.backends import BackendError, TransientBackendError
from apps.deployments.models import Revision

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
    return pipeline.revision_run(revision_id=revision_id)  # gives its lease back before a retry


@shared_task(
    name="deployments.tear_down", acks_late=True, autoretry_for=(TransientBackendError,), max_retries=8, retry_backoff=5
)
def tear_down(*, deployment_id: int) -> str:
    return upkeep.deployment_tear_down(deployment_id=deployment_id)


@shared_task(name="deployments.requeue_stuck")
def requeue_stuck() -> int:
    """Re-enqueue revisions whose message was never sent or lost, or whose worker died; claiming makes duplicates
    harmless."""
    revisions, deletions = upkeep.stuck_work()
    for revision_id in revisions:
        revision_run.apply_async(kwargs={"revision_id": revision_id})
    upkeep.revisions_sent(revisions)
    for deployment_id in deletions:
        tear_down.apply_async(kwargs={"deployment_id": deployment_id})
    return len(revisions) + len(deletions)


@shared_task(name="deployments.reconcile_local")
def reconcile_local() -> int:
    """Restart local scoring processes of live deployments that died (the embedded default's controller)."""
    return upkeep.local_deployments_reconcile()


@shared_task(name="deployments.revision_retire", acks_late=True, autoretry_for=(TransientBackendError,), max_retries=8)
def revision_retire(*, revision_id: int) -> str:
    """Stop a revision kept warm after a blue-green switch, once its time is up."""
    return pipeline.revision_retire_now(revision_id=revision_id)
