"""Reads for accounts: a person's own API tokens, service accounts, the audit trail."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from apps.accounts.choices import Role
from apps.accounts.models import ApiToken, AuditEvent, User
from apps.accounts.permissions import require_admin
from apps.common.errors import ForbiddenError, NotFoundError

__all__ = [
    "api_token_list",
    "api_token_get",
    "service_account_list",
    "service_account_get",
    "audit_can_read",
    "audit_event_list",
    "AUDIT_READERS",
]

# Who may read the whole audit trail: reviewers (they sign off changes) and admins. Leads and viewers may not.
AUDIT_READERS = (Role.REVIEWER, Role.ADMIN)


def api_token_list(*, user: User) -> QuerySet[ApiToken]:
    """The user's own tokens, newest first. Nobody lists another person's tokens."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")


def api_token_get(*, user: User, pk: int) -> ApiToken:
    token = api_token_list(user=user).filter(pk=pk).first()
    if token is None:
        raise NotFoundError("No such token.", code="token_not_found")
    return token


def service_account_list(*, actor: User) -> QuerySet[User]:
    require_admin(actor, "manage service accounts")
    active = Q(api_tokens__revoked_at__isnull=True)
    return (
        User.objects.filter(is_service_account=True)
        .annotate(active_tokens=Count("api_tokens", filter=active))
        .order_by("username")
    )


def service_account_get(*, actor: User, pk: int) -> User:
    account = service_account_list(actor=actor).filter(pk=pk).first()
    if account is None:
        raise NotFoundError("No such service account.", code="service_account_not_found")
    return account


def audit_can_read(user: User) -> bool:
    return bool(user.is_authenticated and user.is_active and (user.role in AUDIT_READERS or user.is_superuser))


def audit_event_list(*, actor: User) -> QuerySet[AuditEvent]:
    """The whole audit trail, newest first, for reviewers and admins."""
    if not audit_can_read(actor):
        raise ForbiddenError(
            f"Only reviewers and admins may read the audit trail; {actor.get_username()} is a "
            f"{actor.get_role_display()}.",
            code="audit_forbidden",
        )
    return AuditEvent.objects.order_by("-occurred_at", "-id")
