"""The promotion state machine: request, approve, reject, cancel, expire, execute.

pending ──approve (policy met)──▶ approved ──execute──▶ executed
   │ reject / cancel / newer request / too old
   ▼
rejected, cancelled, expired

Every rule lives here, for the pages and the API alike. Every write records an audit event in its own
transaction; notifications (apps/events) and rollouts are queued only once that transaction commits. State changes are
conditional updates (``filter(status=PENDING).update(...)``), so of two reviewers approving at the same
moment exactly one moves the request on and executes it; a second click by the same person is a no-op.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.permissions import REQUEST_PROMOTION, decide_promotion, require
from apps.accounts.services import audit_changes, audit_record
from apps.common.errors import ApplicationError, ConflictError, ForbiddenError, NotFoundError, UnavailableError
from apps.deployments.choices import DeploymentStatus
from apps.deployments.models import Deployment, Environment, Revision
from apps.deployments.selectors import environment_get
from apps.deployments.services import deployment_create, idempotency_key_reused
from apps.events import catalogue
from apps.events.services import publish
from apps.promotions.choices import PromotionStatus, ReviewDecision
from apps.promotions.comparison import comparison_build, comparison_to_json
from apps.promotions.models import PromotionPolicy, PromotionRequest, PromotionReview
from apps.registry import selectors as registry
from apps.registry import services as registry_services

__all__ = [
    "policy_for",
    "promotion_policy_ensure",
    "live_revision_in",
    "promotion_request",
    "promotion_approve",
    "promotion_reject",
    "promotion_cancel",
    "promotion_execute",
    "promotion_expire_stale",
    "promotion_execute_approved",
]

logger = logging.getLogger(__name__)

PENDING = PromotionStatus.PENDING


# ---------------------------------------------------------------------------- helpers
def _required_strategy(environment: Environment) -> dict | None:
    """The rollout strategy the policy makes an approved promotion use (None: the environment's default)."""
    required = policy_for(environment).required_strategy
    return {"type": required} if required else None


def policy_for(environment: Environment) -> PromotionPolicy:
    """The environment's policy; an environment without one gets the defaults (one reviewer, 72 hours)."""
    policy = PromotionPolicy.objects.select_related("require_live_in").filter(environment=environment).first()
    return policy or PromotionPolicy(environment=environment)


@transaction.atomic
def promotion_policy_ensure(
    *, environment: Environment, actor: User | None = None, **fields: object
) -> tuple[PromotionPolicy, bool]:
    """Give the environment a policy if it has none; an existing one is left as an admin set it."""
    existing = PromotionPolicy.objects.filter(environment=environment).first()
    if existing:
        return existing, False
    policy = PromotionPolicy(environment=environment, **fields)
    policy.full_clean()
    policy.save()
    audit_record(
        actor=actor,
        action="promotion_policy.create",
        target_type="environment",
        target_id=environment.pk,
        data={"environment": environment.name, **{k: str(v) for k, v in fields.items()}},
    )
    return policy, True


def live_revision_in(*, model_name: str, environment: Environment) -> Revision | None:
    """The revision of ``model_name`` serving in ``environment`` now, if any."""
    deployment = (
        Deployment.objects.select_related("live_revision")
        .filter(environment=environment, model_name=model_name, live_revision__isnull=False)
        .exclude(status__in=[DeploymentStatus.DELETING, DeploymentStatus.DELETED])
        .first()
    )
    return deployment.live_revision if deployment else None


def _get(pk: int) -> PromotionRequest:
    promotion = PromotionRequest.objects.select_related("environment", "requested_by").filter(pk=pk).first()
    if promotion is None:
        raise NotFoundError(f"Promotion request {pk} does not exist.")
    return promotion


def _pk(promotion: PromotionRequest | int) -> int:
    return promotion.pk if isinstance(promotion, PromotionRequest) else int(promotion)


_EVENTS = {
    "requested": catalogue.PROMOTION_REQUESTED,
    "approved": catalogue.PROMOTION_APPROVED,
    "rejected": catalogue.PROMOTION_REJECTED,
    "cancelled": catalogue.PROMOTION_CANCELLED,
    "executed": catalogue.PROMOTION_EXECUTED,
}


def _notify(promotion: PromotionRequest, event: str, policy: PromotionPolicy | None = None) -> None:
    """Publish the event to the notification channels (apps/events) once the transaction commits. A partial
    approval (more approvals needed) is no event. Read again here: the caller's object predates the update."""
    if event not in _EVENTS:
        return
    promotion = (
        PromotionRequest.objects.select_related("environment", "requested_by")
        .prefetch_related("reviews__reviewer")
        .get(pk=promotion.pk)
    )
    approvers = [r.reviewer.get_username() for r in promotion.reviews.all() if r.decision == ReviewDecision.APPROVE]
    what = f"{promotion.model_name} v{promotion.version} to {promotion.environment.name}"
    summary = {
        "requested": f"{promotion.requested_by.get_username()} requests promotion #{promotion.pk}: {what}.",
        "approved": f"Promotion #{promotion.pk} ({what}) is approved by {', '.join(approvers)}.",
        "rejected": f"Promotion #{promotion.pk} ({what}) is rejected: {promotion.status_reason}.",
        "cancelled": f"Promotion #{promotion.pk} ({what}) is {promotion.status_reason}.",
        "executed": f"Promotion #{promotion.pk} ({what}) executed: the alias moved and the rollout started.",
    }[event]
    publish(
        _EVENTS[event],
        {
            "summary": summary,
            "promotion": promotion.pk,
            "model": promotion.model_name,
            "version": promotion.version,
            "status": promotion.status,
            "requested_by": promotion.requested_by.get_username(),
            "approvers": approvers,
            "revision": promotion.executed_revision_id,
            "url": reverse("promotions:promotion_detail", kwargs={"pk": promotion.pk}),
        },
        environment=promotion.environment,
    )


def _data(promotion: PromotionRequest, **extra: object) -> dict[str, object]:
    return {
        "model": promotion.model_name,
        "version": promotion.version,
        "environment": promotion.environment.name,
        **extra,
    }


def _set_status(pk: int, *, to: str, expect: str = PENDING, **fields: object) -> bool:
    """The conditional update every transition goes through: True only for the caller that moved it."""
    now = timezone.now()
    return PromotionRequest.objects.filter(pk=pk, status=expect).update(status=to, updated_at=now, **fields) == 1


def _expire(promotion: PromotionRequest, *, reason: str, actor: User | None, now: datetime) -> bool:
    if not _set_status(promotion.pk, to=PromotionStatus.EXPIRED, decided_at=now, status_reason=reason[:500]):
        return False
    audit_record(
        actor=actor,
        action="promotion.expire",
        target_type="promotion",
        target_id=promotion.pk,
        data=_data(promotion, reason=reason),
    )
    return True


def _expire_if_stale(promotion: PromotionRequest, policy: PromotionPolicy) -> bool:
    """Expire a pending request older than the policy allows, in its own transaction (so it stands)."""
    now = timezone.now()
    if promotion.status != PENDING or promotion.created_at + policy.max_age > now:
        return False
    with transaction.atomic():
        return _expire(promotion, reason=f"pending for more than {policy.max_age_hours} hours", actor=None, now=now)


# ---------------------------------------------------------------------------- request
def promotion_request(
    *,
    actor: User,
    model_name: str,
    version: str,
    environment: str,
    justification: str,
    idempotency_key: str = "",
) -> PromotionRequest:
    """Ask for ``model_name`` ``version`` to go to the gated ``environment``. A pending request for the same
    model and environment expires: the newer one replaces it. The request keeps what it compares (the candidate
    against what the environment serves now: metrics, params, signature inputs), so its page shows for ever
    what the reviewers decided on.

    The same ``idempotency_key`` with the same request returns the request it created the first time."""
    env = environment_get(name=environment)
    require(actor, REQUEST_PROMOTION, environment=env)
    version, justification = str(version).strip(), justification.strip()
    key = idempotency_key[:200]
    replay = _request_replay(actor, key, (model_name, version, environment, justification))
    if replay:
        return replay
    if not justification:
        raise ApplicationError(
            "Say why this version should be promoted: a justification is required.", code="justification_required"
        )
    if not env.gated:
        raise ApplicationError(
            f"{env.name} is not gated: deploy there directly. Promotions are for gated environments.",
            code="not_gated",
        )
    registry.model_version_get(name=model_name, version=version)  # 404 naming it when unknown
    policy = policy_for(env)
    live = live_revision_in(model_name=model_name, environment=env)
    if live and live.model_version == version:
        raise ConflictError(f"{model_name} v{version} is already live in {env.name}.", code="already_live")
    if policy.require_live_in_id:
        source_env = policy.require_live_in
        source_live = live_revision_in(model_name=model_name, environment=source_env)
        if source_live is None or source_live.model_version != version:
            serving = f"v{source_live.model_version}" if source_live else f"no version of {model_name}"
            raise ConflictError(
                f"{model_name} v{version} must be live in {source_env.name} before it can be promoted to "
                f"{env.name}; {source_env.name} serves {serving}.",
                code="not_live_in_source",
            )
    # What the reviewers will be shown, kept on the request: after execution the live side is the candidate.
    comparison = comparison_to_json(
        comparison_build(model_name=model_name, version=version, environment=env, live_revision=live)
    )
    try:
        return _request_create(actor, env, policy, model_name, version, justification, key, comparison)
    except IntegrityError:
        replay = _request_replay(actor, key, (model_name, version, environment, justification))
        if replay:  # a concurrent request with the same key won the race
            return replay
        raise ConflictError(f"{model_name} is being requested for {env.name} by another request; try again.") from None


def _request_replay(actor: User, key: str, fingerprint: tuple[str, ...]) -> PromotionRequest | None:
    if not key:
        return None
    previous = PromotionRequest.objects.select_related("environment").filter(requested_by=actor, idempotency_key=key)
    previous = previous.first()
    if previous is None:
        return None
    used = (previous.model_name, previous.version, previous.environment.name, previous.justification)
    if used != fingerprint:
        raise idempotency_key_reused(key, f"promotion #{previous.pk} ({previous.model_name} v{previous.version})")
    return previous


@transaction.atomic
def _request_create(
    actor: User,
    env: Environment,
    policy: PromotionPolicy,
    model_name: str,
    version: str,
    text: str,
    key: str,
    comparison: dict,
) -> PromotionRequest:
    Environment.objects.select_for_update().filter(pk=env.pk).first()  # one request at a time per environment
    now = timezone.now()
    for older in PromotionRequest.objects.select_related("environment").filter(
        model_name=model_name, environment=env, status=PENDING
    ):
        _expire(
            older, reason=f"replaced by a newer request (v{version}) by {actor.get_username()}", actor=actor, now=now
        )
    promotion = PromotionRequest(
        model_name=model_name,
        version=version,
        environment=env,
        justification=text,
        requested_by=actor,
        idempotency_key=key,
        comparison=comparison,
    )
    promotion.full_clean()
    promotion.save()
    audit_record(
        actor=actor,
        action="promotion.request",
        target_type="promotion",
        target_id=promotion.pk,
        data=_data(promotion, justification=text),
    )
    _notify(promotion, "requested", policy)
    return promotion


# ---------------------------------------------------------------------------- decide
def promotion_approve(
    *,
    actor: User,
    promotion: PromotionRequest | int,
    comment: str = "",
    idempotency_key: str = "",
) -> PromotionRequest:
    """Approve; when that meets the policy, execute (move the alias, start the rollout).

    Approving twice is a no-op that returns the request as it is. Of several concurrent approvals that each
    meet the policy, exactly one executes the promotion. An ``idempotency_key`` already used for another
    decision is refused.
    """
    pk = _pk(promotion)
    if _decide(actor, pk, ReviewDecision.APPROVE, comment, idempotency_key[:200]):
        return promotion_execute(promotion=pk, actor=actor)
    return _get(pk)


def promotion_reject(
    *,
    actor: User,
    promotion: PromotionRequest | int,
    comment: str = "",
    idempotency_key: str = "",
) -> PromotionRequest:
    """Reject: one rejection from an allowed reviewer ends the request. Rejecting twice is a no-op."""
    pk = _pk(promotion)
    _decide(actor, pk, ReviewDecision.REJECT, comment, idempotency_key[:200])
    return _get(pk)


def _decide(actor: User, pk: int, decision: str, comment: str, key: str = "") -> bool:
    """Record one person's decision. Returns True only for the approval that moved the request to approved."""
    promotion = _get(pk)
    policy = policy_for(promotion.environment)
    verb = "approve" if decision == ReviewDecision.APPROVE else "reject"
    require(
        actor, decide_promotion(verb, policy.approver_role), environment=promotion.environment, code="not_a_reviewer"
    )
    if actor.pk == promotion.requested_by_id:
        raise ForbiddenError(
            f"You requested promotion #{pk}, so you cannot {verb} it: another reviewer must decide.",
            code="self_approval",
        )
    if key:
        used = PromotionReview.objects.filter(reviewer=actor, idempotency_key=key).first()
        if used is not None and (used.request_id, used.decision, used.comment) != (pk, decision, comment.strip()):
            raise idempotency_key_reused(key, f"a decision to {used.decision} promotion #{used.request_id}")
        if used is not None:
            return False  # a retry of a decision already recorded
    if _expire_if_stale(promotion, policy):
        raise ConflictError(
            f"Promotion #{pk} waited more than {policy.max_age_hours} hours and has expired; request it again.",
            code="expired",
        )
    with transaction.atomic():
        # Decisions on one request take turns, so the approvals each one counts include every earlier one.
        promotion = PromotionRequest.objects.select_for_update().select_related("environment").get(pk=pk)
        previous = PromotionReview.objects.filter(request_id=pk, reviewer=actor).first()
        if previous is not None:
            if previous.decision == decision:
                return False  # a double click or a retried call changes nothing
            raise ConflictError(
                f"You already decided to {previous.decision} promotion #{pk}; a decision cannot be changed.",
                code="already_decided",
            )
        if promotion.status != PENDING:
            raise ConflictError(
                f"Only pending requests can be decided; promotion #{pk} is {promotion.get_status_display().lower()}.",
                code="not_pending",
            )
        PromotionReview.objects.create(
            request=promotion, reviewer=actor, decision=decision, comment=comment.strip(), idempotency_key=key
        )
        now = timezone.now()
        audit_record(
            actor=actor,
            action=f"promotion.{verb}",
            target_type="promotion",
            target_id=pk,
            data=_data(promotion, comment=comment.strip()),
        )
        if decision == ReviewDecision.REJECT:
            _set_status(pk, to=PromotionStatus.REJECTED, decided_at=now, status_reason=f"rejected by {actor}")
            _notify(promotion, "rejected", policy)
            return False
        approvals = PromotionReview.objects.filter(request_id=pk, decision=ReviewDecision.APPROVE).count()
        won = approvals >= policy.approvals_required and _set_status(pk, to=PromotionStatus.APPROVED, decided_at=now)
        _notify(promotion, "approved" if won else "approval", policy)
        return won


@transaction.atomic
def promotion_cancel(*, actor: User, promotion: PromotionRequest | int, comment: str = "") -> PromotionRequest:
    """The requester withdraws a pending request. Cancelling twice is a no-op."""
    pk = _pk(promotion)
    promotion = _get(pk)
    if actor.pk != promotion.requested_by_id:
        raise ForbiddenError(
            f"Only {promotion.requested_by.get_username()}, who requested promotion #{pk}, can cancel it.",
            code="not_requester",
        )
    if promotion.status == PromotionStatus.CANCELLED:
        return promotion
    reason = f"cancelled by {actor.get_username()}" + (f": {comment.strip()}" if comment.strip() else "")
    if not _set_status(pk, to=PromotionStatus.CANCELLED, decided_at=timezone.now(), status_reason=reason[:500]):
        raise ConflictError(
            f"Only pending requests can be cancelled; promotion #{pk} is {_get(pk).get_status_display().lower()}.",
            code="not_pending",
        )
    audit_record(
        actor=actor,
        action="promotion.cancel",
        target_type="promotion",
        target_id=pk,
        data=audit_changes(
            {"status": PromotionStatus.PENDING},
            {"status": PromotionStatus.CANCELLED},
            **_data(promotion, comment=comment.strip()),
        ),
    )
    _notify(promotion, "cancelled")
    return _get(pk)


# ---------------------------------------------------------------------------- execute
def promotion_execute(*, promotion: PromotionRequest | int, actor: User | None = None) -> PromotionRequest:
    """Move the environment's MLflow alias to the version, then start the rollout as the requester.

    Only approved requests execute; an executed one is returned as it is. Safe to run twice: the alias move
    is idempotent, the rollout is keyed by the request (``promotion-<id>``) and the final transition is a
    conditional update. A failure (registry down, a rollout already in progress) is recorded on the request,
    which stays approved and is retried by ``promotions.execute_approved``.
    """
    pk = _pk(promotion)
    promotion = _get(pk)
    if promotion.status == PromotionStatus.EXECUTED:
        return promotion
    if promotion.status != PromotionStatus.APPROVED:
        raise ConflictError(
            f"Only approved requests are executed; promotion #{pk} is {promotion.get_status_display().lower()}.",
            code="not_approved",
        )
    env = promotion.environment.name
    approvers = sorted(
        PromotionReview.objects.filter(request_id=pk, decision=ReviewDecision.APPROVE).values_list(
            "reviewer__username", flat=True
        )
    )
    try:
        registry_services.model_version_alias_set(
            name=promotion.model_name,
            version=promotion.version,
            alias=registry.environment_alias(env),
            tags={
                f"promotion.{env}.request": str(pk),
                f"promotion.{env}.approvers": ",".join(approvers),
                f"promotion.{env}.requested_by": promotion.requested_by.get_username(),
            },
        )
    except ApplicationError as exc:
        # A registry that refused the move (rather than one that is down) refuses it again: the error says so,
        # and promotions.execute_approved stops retrying it; executing it by hand still tries again.
        refused = not isinstance(exc, UnavailableError) or exc.code == "registry_forbidden"
        return _execution_failed(pk, (REFUSED_PREFIX if refused else "") + exc.message)
    try:
        return _execute(promotion, approvers, actor)
    except ApplicationError as exc:
        return _execution_failed(pk, exc.message)


REFUSED_PREFIX = "The registry refused the alias move: "


def _execution_failed(pk: int, message: str) -> PromotionRequest:
    logger.warning("promotion %s approved but not executed: %s", pk, message)
    PromotionRequest.objects.filter(pk=pk, status=PromotionStatus.APPROVED).update(
        execution_error=message[:2000], updated_at=timezone.now()
    )
    return _get(pk)


@transaction.atomic
def _execute(promotion: PromotionRequest, approvers: list[str], actor: User | None) -> PromotionRequest:
    pk = promotion.pk
    locked = PromotionRequest.objects.select_for_update().filter(pk=pk, status=PromotionStatus.APPROVED).first()
    if locked is None:
        return _get(pk)  # executed by a concurrent call meanwhile
    revision = deployment_create(
        actor=promotion.requested_by,
        model_name=promotion.model_name,
        model_version=promotion.version,
        environment=promotion.environment.name,
        idempotency_key=f"promotion-{pk}",
        via_promotion=True,
        executed_by=actor,  # the reviewer whose approval executes it (None: the system's retry)
        strategy=_required_strategy(promotion.environment),
    )
    _set_status(
        pk,
        to=PromotionStatus.EXECUTED,
        expect=PromotionStatus.APPROVED,
        executed_revision=revision,
        executed_at=timezone.now(),
        execution_error="",
    )
    audit_record(
        actor=actor,
        action="promotion.execute",
        target_type="promotion",
        target_id=pk,
        data=_data(
            promotion,
            approvers=approvers,
            requested_by=promotion.requested_by.get_username(),
            alias=promotion.environment.name,
            revision=revision.label,  # as pages name it; revision_id is its API id
            revision_id=revision.pk,
            deployment=revision.deployment_id,
        ),
    )
    _notify(promotion, "executed")
    return _get(pk)


# ---------------------------------------------------------------------------- expiry
def promotion_expire_stale(*, now: datetime | None = None) -> int:
    """Expire pending requests older than their environment's ``max_age_hours``. Returns how many."""
    now = now or timezone.now()
    policies: dict[int, PromotionPolicy] = {}
    expired = 0
    for promotion in PromotionRequest.objects.select_related("environment").filter(status=PENDING):
        policy = policies.setdefault(promotion.environment_id, policy_for(promotion.environment))
        if promotion.created_at + policy.max_age <= now:
            with transaction.atomic():
                reason = f"pending for more than {policy.max_age_hours} hours"
                expired += _expire(promotion, reason=reason, actor=None, now=now)
    return expired


def promotion_execute_approved() -> int:
    """Execute every approved request whose execution failed before (registry down, a rollout in progress).
    Returns how many executed now. Safe to run twice: ``promotion_execute`` is."""
    executed = 0
    approved = PromotionRequest.objects.filter(status=PromotionStatus.APPROVED)
    # A move the registry refused (not one it could not take) is not retried: it would be refused forever.
    retryable = approved.exclude(execution_error__startswith=REFUSED_PREFIX)
    for pk in retryable.values_list("pk", flat=True):
        executed += promotion_execute(promotion=pk).status == PromotionStatus.EXECUTED
    return executed
