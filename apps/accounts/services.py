"""Writes for accounts: audit events, API tokens, users."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction

from apps.accounts.choices import AuditSource, Role
from apps.accounts.models import ApiToken, AuditEvent, User
from apps.common.errors import ApplicationError

__all__ = ["audit_record", "api_token_create", "user_ensure", "CreatedToken"]

TOKEN_BYTES = 30


def audit_record(
    *,
    actor: User | None,
    action: str,
    target_type: str = "",
    target_id: str = "",
    source: str = AuditSource.SYSTEM,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record who did what. Call it inside the transaction of the write it describes."""
    return AuditEvent.objects.create(
        actor=actor,
        actor_name=actor.get_username() if actor else "system",
        source=source,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        data=data or {},
    )


@dataclass(frozen=True)
class CreatedToken:
    token: ApiToken
    key: str  # the only time the plain key exists


@transaction.atomic
def api_token_create(
    *, user: User, name: str, expires_at: datetime | None = None, actor: User | None = None, source: str = "system"
) -> CreatedToken:
    name = name.strip()
    if not name:
        raise ApplicationError("A token needs a name.", code="token_name_required")
    key = secrets.token_urlsafe(TOKEN_BYTES)
    token = ApiToken.objects.create(
        user=user, name=name[:100], prefix=key[:8], key_hash=ApiToken.hash_key(key), expires_at=expires_at
    )
    audit_record(
        actor=actor or user,
        action="api_token.create",
        target_type="user",
        target_id=user.pk,
        source=source,
        data={"token": token.name, "prefix": token.prefix},
    )
    return CreatedToken(token=token, key=key)


@transaction.atomic
def user_ensure(*, username: str, role: str, email: str = "") -> tuple[User, str | None]:
    """Create the user with a random password if missing. Returns the password only when it was created."""
    if role not in Role.values:
        raise ApplicationError(f"Unknown role {role!r}; expected one of {', '.join(Role.values)}.")
    user = User.objects.filter(username=username).first()
    if user:
        return user, None
    password = secrets.token_urlsafe(12)
    user = User.objects.create_user(
        username=username,
        email=email,
        password=password,
        role=role,
        is_staff=role == Role.ADMIN,
        is_superuser=role == Role.ADMIN,
    )
    audit_record(actor=None, action="user.create", target_type="user", target_id=user.pk, data={"role": role})
    return user, password
