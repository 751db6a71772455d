"""Reads for accounts: a person's own API tokens, service accounts, the audit trail."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from apps.accounts.models import ApiToken, AuditEvent, User
from apps.accounts.permissions import (
    MANAGE_CHANNELS,
    READ_AUDIT_TRAIL,
    environments_where,
    is_admin,
    may,
    require,
    require_admin,
)
from apps.common.errors import ApplicationError, NotFoundError

__all__ = [
    "api_token_list",
    "api_token_get",
    "active_user_get",
    "service_account_list",
    "service_account_get",
    "audit_can_read",
    "audit_event_list",
    "nav_permissions",
    "NavPermissions",
]


def api_token_list(*, user: User) -> QuerySet[ApiToken]:
    """The user's own tokens, newest first. Nobody lists another person's tokens."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")


def api_token_get(*, user: User, pk: int) -> ApiToken:
    token = api_token_list(user=user).filter(pk=pk).first()
    if token is None:
        raise NotFoundError("No such token.", code="token_not_found")
    return token


def active_user_get(*, username: str, from_input: bool = False) -> User:
    """The active account ``username``: 404 ``unknown_user`` when there is none, or 400 when the name came as
    input (a form field, a request body) rather than in the URL."""
    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        error = ApplicationError if from_input else NotFoundError
        raise error(f"No active user {username!r}.", code="unknown_user")
    return user


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
    return may(user, READ_AUDIT_TRAIL)


def audit_event_list(*, actor: User) -> QuerySet[AuditEvent]:
    """The whole audit trail, newest first, for reviewers and admins."""
    require(actor, READ_AUDIT_TRAIL, code="audit_forbidden")
    return AuditEvent.objects.order_by("-occurred_at", "-id")


@dataclass(frozen=True)
class NavPermissions:
    """Which sections the top bar offers; each section's page and API check again."""

    audit: bool
    service_accounts: bool
    access: bool
    django_admin: bool
    channels: bool = False  # notification channels and deliveries (apps/events)


def nav_permissions(user: User) -> NavPermissions:
    admin = is_admin(user)
    staff = bool(user.is_active and user.is_staff)  # Django's own flag, which its admin site checks
    channels = admin or environments_where(user, MANAGE_CHANNELS).exists()
    return NavPermissions(
        audit=audit_can_read(user), service_accounts=admin, access=admin, django_admin=staff, channels=channels
    )
