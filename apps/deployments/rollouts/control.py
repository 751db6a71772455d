"""What a person may do to a progressive rollout while it runs: promote now, pause, resume, abort.

Each writes the request on the revision (the runner acts on it at its next tick, whichever worker runs it) and an
audit event, once: asking again for what is already asked answers the same without a second event, so a retried
request (with or without an Idempotency-Key) is harmless.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.permissions import DEPLOY, ROLL_BACK, require
from apps.accounts.services import audit_record
from apps.common.errors import ConflictError
from apps.deployments.choices import RevisionStatus, RolloutControl
from apps.deployments.models import Revision
from apps.deployments.rollouts.strategy import strategy_of

__all__ = ["ROLLOUT_ACTIONS", "rollout_control", "control_refusal"]

PROMOTE, PAUSE, RESUME, ABORT = "promote", "pause", "resume", "abort"
ROLLOUT_ACTIONS = (PROMOTE, PAUSE, RESUME, ABORT)
# Abort rolls back, so it needs who may roll back; the others steer a rollout they could have started.
_PERMISSION = {PROMOTE: DEPLOY, PAUSE: DEPLOY, RESUME: DEPLOY, ABORT: ROLL_BACK}


def control_refusal(revision: Revision, action: str) -> ConflictError | None:
    """Why ``action`` cannot be done to ``revision`` now (None: it can). The page offers only what passes."""
    if not strategy_of(revision.strategy).progressive:
        message = f"{revision.label} rolls out all at once; there is nothing to {action}."
        return ConflictError(message, code="not_progressive")
    if revision.status not in (RevisionStatus.QUEUED, RevisionStatus.RUNNING):
        return ConflictError(
            f"{revision.label} is {revision.get_status_display().lower()}; only a rollout in progress can be steered.",
            code="rollout_finished",
        )
    if revision.control == RolloutControl.ABORT:
        return ConflictError(f"{revision.label} is being aborted.", code="rollout_aborting")
    if revision.control == RolloutControl.PROMOTE and action != PROMOTE:
        return ConflictError(f"{revision.label} is being promoted.", code="rollout_promoting")
    if action == PAUSE and revision.paused_at is None and revision.canary_weight >= 100:
        return ConflictError(f"{revision.label} has been promoted already.", code="rollout_promoted")
    return None


@transaction.atomic
def rollout_control(*, actor: User, revision: Revision, action: str) -> Revision:
    """Ask the running rollout of ``revision`` to ``action`` (one of ``ROLLOUT_ACTIONS``)."""
    if action not in ROLLOUT_ACTIONS:
        raise ValueError(action)
    require(actor, _PERMISSION[action], environment=revision.deployment.environment)
    revision = Revision.objects.select_for_update().select_related("deployment__environment").get(pk=revision.pk)
    if action == PROMOTE and revision.control == RolloutControl.PROMOTE:
        return revision  # asked already
    if refused := control_refusal(revision, action):
        raise refused
    now = timezone.now()
    if action == PAUSE:
        if revision.paused_at is not None:
            return revision
        fields = {"paused_at": now, "paused_by": actor}
    elif action == RESUME:
        if revision.paused_at is None:
            return revision
        # The interval starts again: what was measured before the pause is not judged with what comes after.
        fields = {"paused_at": None, "paused_by": None, "step_started_at": now if revision.step_started_at else None}
    else:
        fields = {"control": RolloutControl(action), "control_by": actor}
    for name, value in fields.items():
        setattr(revision, name, value)
    revision.save(update_fields=[*fields, "updated_at"])
    deployment = revision.deployment
    audit_record(
        actor=actor,
        action=f"deployment.rollout_{action}",
        target_type="revision",
        target_id=revision.pk,
        data={
            "revision": revision.label,
            "model": deployment.model_name,
            "environment": deployment.environment.name,
            "weight": revision.canary_weight,
        },
    )
    return revision
