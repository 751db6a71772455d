"""What the system does to deployments on its own, for the Celery tasks: finish a deletion, restart dead local
scoring processes, find work whose worker died. Every write is audited as the system's."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.services import audit_changes, audit_record
from apps.deployments import pipeline
from apps.deployments.choices import DeploymentStatus, RevisionStatus
from apps.deployments.models import Deployment, Revision
from apps.deployments.services import revision_audit_data

__all__ = ["deployment_tear_down", "local_deployments_reconcile", "revisions_sent", "stuck_work"]

logger = logging.getLogger(__name__)


def deployment_tear_down(*, deployment_id: int) -> str:
    """Remove a deployment being deleted from its target, then mark it deleted. Safe to run twice: the target's
    delete is idempotent and the move from deleting to deleted is a conditional update, audited once."""
    deployment = Deployment.objects.select_related("environment").filter(pk=deployment_id).first()
    if deployment is None or deployment.status != DeploymentStatus.DELETING:
        return "nothing to do"
    latest = deployment.revisions.first()
    if latest is not None:
        pipeline.target_for(deployment, latest.config).delete(pipeline.serving_spec(latest), logger.info)
    with transaction.atomic():
        changed = Deployment.objects.filter(pk=deployment.pk, status=DeploymentStatus.DELETING).update(
            status=DeploymentStatus.DELETED, live_revision=None, endpoint_url="", updated_at=timezone.now()
        )
        if not changed:
            return "nothing to do"
        audit_record(
            actor=None,
            action="deployment.deleted",
            target_type="deployment",
            target_id=deployment.pk,
            data=audit_changes(
                {"status": DeploymentStatus.DELETING},
                {"status": DeploymentStatus.DELETED},
                model=deployment.model_name,
                environment=deployment.environment.name,
            ),
        )
    return "deleted"


def local_deployments_reconcile() -> int:
    """Restart the local scoring process of every live deployment whose process died, and its router (the stable
    endpoint, on its recorded port) if that died (the embedded default's controller). Returns how many came back.
    Safe to run twice: running processes are left alone."""
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
        if not result.ok:
            continue
        url = target.stable_url(spec)
        with transaction.atomic():
            Deployment.objects.filter(pk=deployment.pk).update(endpoint_url=url)
            audit_record(
                actor=None,
                action="deployment.restarted",
                target_type="revision",
                target_id=revision.pk,
                data={**revision_audit_data(revision), "deployment": deployment.pk, "endpoint_url": url},
            )
        restarted += 1
    return restarted


def stuck_work() -> tuple[list[int], list[int]]:
    """Revisions whose message was never sent (marked when the broker refused it), was lost (queued too long) or
    whose worker died (running with an expired lease), and deployments stuck in deleting: ``(revision ids,
    deployment ids)`` to queue again."""
    now = timezone.now()
    old = now - timedelta(seconds=settings.DEPLOY_STUCK_QUEUED_SECONDS)
    queued = Q(status=RevisionStatus.QUEUED) & (Q(created_at__lt=old) | Q(publish_failed_at__isnull=False))
    revisions = Revision.objects.filter(queued | Q(status=RevisionStatus.RUNNING, lease_until__lt=now)).values_list(
        "pk", flat=True
    )
    deleting = Deployment.objects.filter(status=DeploymentStatus.DELETING, updated_at__lt=old)
    return list(revisions), list(deleting.values_list("pk", flat=True))


def revisions_sent(revision_ids: list[int]) -> None:
    """The requeue sent these revisions' tasks: a mark of a failed publish is cleared (the row is not sent at
    every run; if the message is lost again, the queued-too-long rule still finds it)."""
    Revision.objects.filter(pk__in=revision_ids, publish_failed_at__isnull=False).update(publish_failed_at=None)
