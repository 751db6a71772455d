"""Writes for accounts: audit events, API tokens, service accounts, users."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import ApiToken, AuditEvent, User
from apps.accounts.permissions import admins, django_admin_flags, is_admin, require_admin, validate_role
from apps.accounts.request_context import current_origin
from apps.common.errors import ApplicationError, ConflictError, ForbiddenError, NotFoundError

__all__ = [
    "audit_record",
    "audit_changes",
    "api_token_create",
    "api_token_revoke",
    "service_account_create",
    "service_account_update",
    "user_ensure",
    "user_role_set",
    "CreatedToken",
    "REDACTED",
]

TOKEN_BYTES = 30
REDACTED = "[redacted]"
# Keys whose values are credentials: they never reach the audit trail, whatever a caller passes.
SECRET_KEY_PATTERN = re.compile(
    r"(password|passwd|secret|credential|connection_?string|conn_?str|api_?key|private_?key|access_?key"
    r"|token_?key|account_?key|storage_?key|^key$|key_hash|^authorization$|sas_?token)",
    re.IGNORECASE,
)


def _scrub(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: REDACTED if SECRET_KEY_PATTERN.search(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------------- audit


def audit_record(
    *,
    actor: User | None,
    action: str,
    target_type: str = "",
    target_id: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record who did what, from where. Call it inside the transaction of the write it describes.

    The origin comes from the request being served (``request_context.current_origin``): the interface
    (``ui`` for a page, ``api`` under ``/api/``), the credential (API token or session) and the client IP;
    with no request, or inside ``as_system()`` (Celery tasks, management commands), it is ``system``.
    Values under secret-looking keys (``password``, ``*_key``, ``connection_string``...) are replaced by
    ``[redacted]``. For an edit pass ``data=audit_changes(before, after)``."""
    origin = current_origin()
    return AuditEvent.objects.create(
        actor=actor,
        actor_name=actor.get_username() if actor else "system",
        source=origin.source,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        data=_scrub(data or {}),
        via=origin.via,
        credential=origin.credential,
        ip=origin.ip,
    )


def audit_changes(before: Mapping[str, Any], after: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """``{"before": ..., "after": ...}`` with only the fields that changed, for ``audit_record(data=...)``."""
    keys = [k for k in after if before.get(k) != after.get(k)] + [k for k in before if k not in after]
    return {
        **extra,
        "before": {k: before.get(k) for k in keys},
        "after": {k: after.get(k) for k in keys},
    }


# ---------------------------------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class CreatedToken:
    token: ApiToken
    key: str  # the only time the plain key exists


@transaction.atomic
def api_token_create(
    *, user: User, name: str, expires_at: datetime | None = None, actor: User | None = None
) -> CreatedToken:
    """A new key for ``user``; only its hash is kept. People create their own; admins create service accounts'."""
    name = name.strip()
    if not name:
        raise ApplicationError("A token needs a name.", code="token_name_required")
    if actor is not None:  # a person asking, through the UI or the API (not a command or a test fixture)
        _require_token_manager(actor, user, "create tokens for")
        if expires_at is not None and expires_at <= timezone.now():
            raise ApplicationError("The expiry date must be in the future.", code="token_expiry_past")
    key = secrets.token_urlsafe(TOKEN_BYTES)
    token = ApiToken.objects.create(
        user=user, name=name[:100], prefix=key[:8], key_hash=ApiToken.hash_key(key), expires_at=expires_at
    )
    audit_record(
        actor=actor or user,
        action="api_token.create",
        target_type="user",
        target_id=user.pk,
        data={"token": token.name, "prefix": token.prefix, "expires_at": expires_at},
    )
    return CreatedToken(token=token, key=key)


def _require_token_manager(actor: User, owner: User, what: str) -> None:
    """People manage their own tokens; admins manage service accounts' tokens. Nobody else's."""
    if owner.is_service_account:
        if actor.pk != owner.pk:
            require_admin(actor, f"{what} service accounts")
        if actor.pk == owner.pk:
            raise ForbiddenError(
                "A service account cannot manage its own tokens; an admin issues and revokes them.",
                code="service_account_self_service",
            )
    elif actor.pk != owner.pk:
        raise NotFoundError("No such token.", code="token_not_found")


@transaction.atomic
def api_token_revoke(*, actor: User, token: ApiToken | int) -> ApiToken:
    """Revoke a token from now on. Revoking twice is a no-op (and records nothing the second time)."""
    pk = token.pk if isinstance(token, ApiToken) else token
    token = ApiToken.objects.select_for_update().select_related("user").filter(pk=pk).first()
    if token is None:
        raise NotFoundError("No such token.", code="token_not_found")
    _require_token_manager(actor, token.user, "revoke tokens of")
    if token.revoked_at is not None:
        return token
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit_record(
        actor=actor,
        action="api_token.revoke",
        target_type="user",
        target_id=token.user_id,
        data={"token": token.name, "prefix": token.prefix, "owner": token.user.get_username()},
    )
    return token


# ---------------------------------------------------------------------------------------------------- service accounts


def _snapshot(account: User) -> dict[str, Any]:
    return {"role": account.role, "description": account.description, "is_active": account.is_active}


@transaction.atomic
def service_account_create(*, actor: User, username: str, role: str, description: str = "") -> User:
    """A user for CI that acts only through API tokens: no usable password, no UI login, no admin site."""
    require_admin(actor, "create service accounts")
    username = username.strip()
    validate_role(role)
    try:
        UnicodeUsernameValidator()(username)
    except ValidationError:
        raise ApplicationError(
            "A name may contain only letters, digits and @ . + - _", code="invalid_username"
        ) from None
    if not username or len(username) > 150:
        raise ApplicationError("A service account needs a name of at most 150 characters.", code="invalid_username")
    if User.objects.filter(username__iexact=username).exists():
        raise ConflictError(f"There is already an account named {username!r}.", code="username_taken")
    account = User(
        username=username, role=role, description=description.strip()[:200], is_service_account=True, is_staff=False
    )
    account.set_unusable_password()
    account.save()
    audit_record(
        actor=actor,
        action="service_account.create",
        target_type="user",
        target_id=account.pk,
        data={"username": username, "role": role, "description": account.description},
    )
    return account


@transaction.atomic
def service_account_update(
    *,
    actor: User,
    account: User | int,
    role: str | None = None,
    description: str | None = None,
    is_active: bool | None = None,
) -> User:
    """Change a service account's role, description, or switch it off (its tokens stop working)."""
    require_admin(actor, "change service accounts")
    pk = account.pk if isinstance(account, User) else account
    account = User.objects.select_for_update().filter(pk=pk, is_service_account=True).first()
    if account is None:
        raise NotFoundError("No such service account.", code="service_account_not_found")
    before = _snapshot(account)
    if role is not None:
        validate_role(role)
        account.role = role
    if description is not None:
        account.description = description.strip()[:200]
    if is_active is not None:
        account.is_active = is_active
    after = _snapshot(account)
    if after == before:
        return account
    account.save(update_fields=["role", "description", "is_active"])
    audit_record(
        actor=actor,
        action="service_account.update",
        target_type="user",
        target_id=account.pk,
        data=audit_changes(before, after, username=account.username),
    )
    return account


# ---------------------------------------------------------------------------------------------------- users


@transaction.atomic
def user_ensure(*, username: str, role: str, email: str = "") -> tuple[User, str | None]:
    """Create the user with a random password if missing. Returns the password only when it was created."""
    validate_role(role)
    user = User.objects.filter(username=username).first()
    if user:
        return user, None
    password = secrets.token_urlsafe(12)
    user = User.objects.create_user(
        username=username,
        email=email,
        password=password,
        role=role,
        **django_admin_flags(role),
    )
    audit_record(actor=None, action="user.create", target_type="user", target_id=user.pk, data={"role": role})
    return user, password


@transaction.atomic
def user_role_set(*, actor: User, user: User, role: str) -> User:
    """Change someone's global role (and with it the Django admin flags it implies). The last active admin cannot
    be demoted: someone must manage access."""
    require_admin(actor, "manage access")
    validate_role(role)
    user = User.objects.select_for_update().get(pk=user.pk)
    before = user.role
    if before == role:
        return user
    if is_admin(user):
        if not admins().select_for_update().exclude(pk=user.pk).exists():
            raise ConflictError(
                f"{user.get_username()} is the last admin; make someone else admin first.", code="last_admin"
            )
    user.role = role
    for flag, value in django_admin_flags(role).items():
        setattr(user, flag, value)
    user.save(update_fields=["role", "is_staff", "is_superuser"])
    audit_record(
        actor=actor,
        action="access.role_set",
        target_type="user",
        target_id=user.pk,
        data={"user": user.get_username(), "before": {"role": before}, "after": {"role": role}},
    )
    return user
