"""Reads for promotions: the list (pending first), one request, and what it would change."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from django.db.models import Case, Count, IntegerField, Prefetch, Q, QuerySet, Value, When

from apps.accounts.models import AuditEvent, User
from apps.accounts.permissions import REQUEST_PROMOTION, decide_promotion, environments_where, refusal
from apps.common.errors import ApplicationError, NotFoundError
from apps.deployments.choices import RevisionStatus
from apps.deployments.models import AnalysisCheck, Environment, Revision
from apps.promotions.choices import PromotionStatus, ReviewDecision
from apps.promotions.comparison import Comparison, comparison_build, comparison_from_json
from apps.promotions.models import PromotionPolicy, PromotionRequest, PromotionReview
from apps.promotions.services import live_revision_in, policy_for
from apps.registry import selectors as registry

__all__ = [
    "promotion_list",
    "promotion_get",
    "promotion_comparison_get",
    "promotion_source_revision",
    "promotion_shadow_evidence",
    "ShadowEvidence",
    "promotion_live_get",
    "LiveNow",
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


def promotion_comparison_get(*, promotion: PromotionRequest) -> tuple[Comparison | None, str]:
    """What the request compares, and why it cannot be shown (or "").

    The comparison taken when the request was made, for ever. A request made before requests kept it has none: a
    pending one is compared now (``recorded`` False, the page says so); a decided one answers None, as what its
    reviewers saw is not known any more."""
    if promotion.comparison:
        return comparison_from_json(promotion.comparison), ""
    if promotion.status != PromotionStatus.PENDING:
        return None, ""
    env = promotion.environment
    try:
        comparison = comparison_build(
            model_name=promotion.model_name,
            version=promotion.version,
            environment=env,
            live_revision=live_revision_in(model_name=promotion.model_name, environment=env),
        )
    except ApplicationError as exc:
        return None, exc.message
    return replace(comparison, recorded=False), ""


@dataclass(frozen=True)
class ShadowEvidence:
    """How the candidate agreed with the live model on mirrored traffic, in its last shadow or blue-green rollout
    where it proves itself (``promotion_source_revision``'s environment)."""

    revision: Revision
    checks: int  # analysed intervals with an agreement value
    worst: float  # the lowest agreement of an interval
    last: AnalysisCheck


def promotion_shadow_evidence(*, promotion: PromotionRequest) -> ShadowEvidence | None:
    """The candidate's prediction agreement with the then-live revision on mirrored traffic, if it was shadowed."""
    source = promotion_source_revision(promotion=promotion)
    if source is None:
        return None
    revisions = Revision.objects.filter(
        deployment=source.deployment, model_version=promotion.version, checks__metric="agreement"
    )
    revision = revisions.order_by("-created_at").first()
    if revision is None:
        return None
    checks = list(revision.checks.filter(metric="agreement", value__isnull=False).order_by("checked_at"))
    if not checks:
        return None
    return ShadowEvidence(revision=revision, checks=len(checks), worst=min(c.value for c in checks), last=checks[-1])


def promotion_source_revision(*, promotion: PromotionRequest) -> Revision | None:
    """The candidate's latest revision where it proves itself: the environment the policy names, else any
    ungated one."""
    policy = policy_for(promotion.environment)
    revisions = Revision.objects.filter(
        deployment__model_name=promotion.model_name, model_version=promotion.version
    ).select_related("deployment__environment")
    if policy.require_live_in_id:
        revisions = revisions.filter(deployment__environment_id=policy.require_live_in_id)
    else:
        revisions = revisions.filter(deployment__environment__gated=False)
    return revisions.order_by("-created_at").first()


@dataclass(frozen=True)
class LiveNow:
    """What the request's environment serves of its model now, apart from what the request compared."""

    revision: Revision | None  # the live revision
    since: datetime | None
    rolling_out: Revision | None  # a rollout of the model there that has not finished
    alias: str  # the environment's alias in the registry
    alias_version: str | None
    alias_error: str = ""  # the registry could not be read


def promotion_live_get(*, promotion: PromotionRequest) -> LiveNow:
    env = promotion.environment
    live = live_revision_in(model_name=promotion.model_name, environment=env)
    rolling_out = (
        Revision.objects.filter(deployment__model_name=promotion.model_name, deployment__environment=env)
        .exclude(status__in=RevisionStatus.final())
        .order_by("-created_at")
        .first()
    )
    alias = registry.environment_alias(env.name)
    try:
        alias_version = registry.registered_model_get(name=promotion.model_name).aliases.get(alias)
    except ApplicationError as exc:
        return LiveNow(live, _live_since(live), rolling_out, alias, None, exc.message)
    return LiveNow(live, _live_since(live), rolling_out, alias, str(alias_version) if alias_version else None)


def _live_since(revision: Revision | None) -> datetime | None:
    return (revision.finished_at or revision.updated_at) if revision else None
