"""The checks every app's services share: admin-only actions and role names."""

from __future__ import annotations

from apps.accounts.choices import Role
from apps.accounts.models import User
from apps.common.errors import ApplicationError, ForbiddenError

__all__ = ["require_admin", "check_role"]


def require_admin(actor: User, what: str) -> None:
    """403 ``admin_required`` unless ``actor`` is an admin of the whole control plane."""
    if not actor.is_admin:
        raise ForbiddenError(
            f"Only admins may {what}; {actor.get_username()} is a {actor.get_role_display()}.", code="admin_required"
        )


def check_role(role: str) -> None:
    """400 ``unknown_role`` naming the roles there are."""
    if role not in Role.values:
        raise ApplicationError(f"Unknown role {role!r}; expected one of {', '.join(Role.values)}.", code="unknown_role")
