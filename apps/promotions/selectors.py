"""Reads for promotions: the list (pending first), one request, and what it would change."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Case, Count, IntegerField, Prefetch, Q, QuerySet, Value, When

from apps.accounts.models import AuditEvent, User
from apps.accounts.permissions import REQUEST_PROMOTION, decide_promotion, environments_where, refusal
from apps.common.errors import ApplicationError, NotFoundError
from apps.deployments.models import Environment, Revision
from apps.promotions.choices import PromotionStatus, ReviewDecision
from apps.promotions.models import PromotionPolicy, PromotionRequest, PromotionReview
from apps.promotions.services import live_revision_in, policy_for
from apps.registry import selectors as registry
from apps.registry.selectors import VersionDetail
from apps.registry.types import Signature

__all__ = [
    "promotion_list",
    "promotion_get",
    "promotion_comparison_get",
    "promotion_permissions",
    "promotion_targets",
    "promotions_of_version",
    "promotion_events",
    "Comparison",
]


def promotion_targets(*, user: User) -> QuerySet[Environment]:
    """Where ``user`` may request promotions to: the gated environments among those they may request for."""
    return environments_where(user, REQUEST_PROMOTION).filter(gated=True)


def promotion_list() -> QuerySet[PromotionRequest]:
    """Every request with its approval count; pending ones first, then newest first."""
    return (
        PromotionRequest.objects.select_related("environment", "requested_by", "executed_revision")
        .annotate(
            approvals=Count("reviews", filter=Q(reviews__decision=ReviewDecision.APPROVE)),
            pending_first=Case(
                When(status=PromotionStatus.PENDING, then=Value(0)), default=Value(1), output_field=IntegerField()
            ),
        )
        .order_by("pending_first", "-created_at", "-id")
    )


def promotion_get(*, pk: int) -> PromotionRequest:
    promotion = (
        promotion_list()
        .select_related("executed_revision__deployment")
        .prefetch_related(Prefetch("reviews", queryset=PromotionReview.objects.select_related("reviewer")))
        .filter(pk=pk)
        .first()
    )
    if promotion is None:
        raise NotFoundError(f"Promotion request {pk} does not exist.")
    return promotion


def promotions_of_version(*, model_name: str, version: str) -> QuerySet[PromotionRequest]:
    return promotion_list().filter(model_name=model_name, version=version)


def promotion_events(*, promotion: PromotionRequest) -> QuerySet[AuditEvent]:
    """The request's audit trail, oldest first, with the rollout it started."""
    events = Q(target_type="promotion", target_id=str(promotion.pk))
    if promotion.executed_revision_id:
        events |= Q(target_type="revision", target_id=str(promotion.executed_revision_id), action="deployment.deploy")
    return AuditEvent.objects.filter(events).order_by("occurred_at", "id")


@dataclass(frozen=True)
class Permissions:
    can_decide: bool
    can_cancel: bool
    reason: str  # why the user cannot decide, for the page


def promotion_permissions(*, promotion: PromotionRequest, user: User, policy: PromotionPolicy) -> Permissions:
    """Which buttons to show. Only a hint for the page: the services enforce the same rules on every call."""
    pending = promotion.status == PromotionStatus.PENDING
    reason = ""
    if not pending:
        reason = f"This request is {promotion.get_status_display().lower()}."
    elif user.pk == promotion.requested_by_id:
        reason = "You requested this promotion; another reviewer decides."
    elif refused := refusal(user, decide_promotion("decide", policy.approver_role), environment=promotion.environment):
        reason = refused
    elif any(review.reviewer_id == user.pk for review in promotion.reviews.all()):
        reason = "You have decided already."
    return Permissions(
        can_decide=pending and not reason, can_cancel=pending and user.pk == promotion.requested_by_id, reason=reason
    )


@dataclass(frozen=True)
class MetricRow:
    name: str
    candidate: float | None
    live: float | None

    @property
    def delta(self) -> float | None:
        return None if self.candidate is None or self.live is None else self.candidate - self.live


@dataclass(frozen=True)
class Change:
    name: str
    change: str  # added, removed, changed/retyped
    before: str | None
    after: str | None


@dataclass(frozen=True)
class Comparison:
    candidate: VersionDetail | None
    live_revision: Revision | None  # what serves in the target now
    live: VersionDetail | None  # that version; with nothing deployed, the version the environment's alias names
    source_revision: Revision | None  # the candidate serving where the policy says it must be live first
    metrics: list[MetricRow]
    params: list[Change]
    signature: list[Change]
    error: str = ""  # the registry could not be read; the page still shows the request


def _signature_changes(before: Signature | None, after: Signature | None) -> list[Change]:
    old = {c.name or f"#{i}": c.type for i, c in enumerate(before.inputs)} if before else {}
    new = {c.name or f"#{i}": c.type for i, c in enumerate(after.inputs)} if after else {}
    changes = [Change(n, "added", None, new[n]) for n in new if n not in old]
    changes += [Change(n, "removed", old[n], None) for n in old if n not in new]
    changes += [Change(n, "retyped", old[n], new[n]) for n in new if n in old and old[n] != new[n]]
    return changes


def _param_changes(before: dict[str, str], after: dict[str, str]) -> list[Change]:
    names = sorted(set(before) | set(after))
    return [
        Change(
            n, "added" if n not in before else "removed" if n not in after else "changed", before.get(n), after.get(n)
        )
        for n in names
        if before.get(n) != after.get(n)
    ]


def promotion_comparison_get(*, promotion: PromotionRequest) -> Comparison:
    """The candidate next to what is live in the target now: metrics with deltas, changed params and
    signature inputs added, removed or retyped."""
    env = promotion.environment
    live_revision = live_revision_in(model_name=promotion.model_name, environment=env)
    policy = policy_for(env)
    # Where the candidate proved itself: the environment the policy names, else any ungated one.
    source_revisions = Revision.objects.filter(
        deployment__model_name=promotion.model_name, model_version=promotion.version
    ).select_related("deployment__environment")
    if policy.require_live_in_id:
        source_revisions = source_revisions.filter(deployment__environment_id=policy.require_live_in_id)
    else:
        source_revisions = source_revisions.filter(deployment__environment__gated=False)
    source_revision = source_revisions.order_by("-created_at").first()
    try:
        candidate = registry.model_version_detail_get(name=promotion.model_name, version=promotion.version)
        live_version = live_revision.model_version if live_revision else None
        if live_version is None:
            live_version = registry.registered_model_get(name=promotion.model_name).aliases.get(
                registry.environment_alias(env.name)
            )
        live = None
        if live_version is not None:
            live = registry.model_version_detail_get(name=promotion.model_name, version=str(live_version))
    except ApplicationError as exc:
        return Comparison(None, live_revision, None, source_revision, [], [], [], error=exc.message)
    new_metrics = candidate.run.metrics if candidate.run else {}
    old_metrics = live.run.metrics if live and live.run else {}
    metrics = [
        MetricRow(n, new_metrics.get(n), old_metrics.get(n)) for n in sorted(set(new_metrics) | set(old_metrics))
    ]
    params, signature = [], []
    if live is not None:  # with nothing live in the target there is nothing to compare against
        params = _param_changes(live.run.params if live.run else {}, candidate.run.params if candidate.run else {})
        signature = _signature_changes(live.signature, candidate.signature)
    return Comparison(candidate, live_revision, live, source_revision, metrics, params, signature)
