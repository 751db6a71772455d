"""Single sign-on with OpenID Connect (authorization code flow), for Microsoft Entra ID or any provider with
a discovery document. Configured by settings only (``OIDC_*``, docs/security.md).

The flow lives in ``oidc_views``; this module holds what it decides: which provider, which roles a set of
group claims gives, and which local user a verified identity becomes. Authlib does the protocol: the state
and nonce it keeps in the session, the code exchange, and the id_token's signature (the provider's JWKS),
issuer, audience, expiry and nonce.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from apps.accounts.choices import Role
from apps.accounts.models import User
from apps.accounts.permissions import django_admin_flags
from apps.accounts.services import audit_record
from apps.common.errors import ApplicationError

__all__ = [
    "LocalPasswordBackend",
    "OidcBackend",
    "RoleMapping",
    "oidc_enabled",
    "oidc_client",
    "parse_group_roles",
    "roles_from_groups",
    "oidc_user_sync",
    "SsoRefused",
]

logger = logging.getLogger(__name__)

# The order a single global role is chosen in when several groups map to one: the last present wins.
_ROLE_ORDER = [Role.VIEWER, Role.LEAD, Role.REVIEWER, Role.ADMIN]


class SsoRefused(ApplicationError):
    """A verified identity that may not sign in here (no mapped group, a local account of the same name)."""


# ---------------------------------------------------------------------------------------------- backends
class LocalPasswordBackend(ModelBackend):
    """Username and password, as Django's ``ModelBackend``, unless ``LOCAL_LOGIN_ENABLED`` is off: then no
    password is accepted anywhere (login page, admin), and people sign in through SSO only."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not settings.LOCAL_LOGIN_ENABLED:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class OidcBackend(ModelBackend):
    """The backend recorded in the session of a user signed in through OIDC. It authenticates nothing by
    itself: the callback view verifies the id_token and logs the user in with this backend."""

    def authenticate(self, request, **kwargs):
        return None


# ---------------------------------------------------------------------------------------------- settings
def oidc_enabled() -> bool:
    return bool(settings.OIDC_ISSUER and settings.OIDC_CLIENT_ID)


def oidc_client():
    """An Authlib client for the configured provider (metadata and keys are fetched on first use)."""
    from authlib.integrations.django_client import OAuth

    if not oidc_enabled():
        raise ImproperlyConfigured("OIDC is not configured: set OIDC_ISSUER (or OIDC_TENANT_ID) and OIDC_CLIENT_ID.")
    oauth = OAuth()
    return oauth.register(
        name="sso",
        client_id=settings.OIDC_CLIENT_ID,
        client_secret=settings.OIDC_CLIENT_SECRET,
        server_metadata_url=settings.OIDC_ISSUER.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={"scope": settings.OIDC_SCOPES, "timeout": settings.OIDC_TIMEOUT},
    )


# ---------------------------------------------------------------------------------------------- roles
@dataclass(frozen=True)
class RoleMapping:
    """What group claims give: at most one global role, and (environment name, role) grants."""

    role: str | None = None
    grants: frozenset[tuple[str, str]] = field(default_factory=frozenset)


def parse_group_roles(entries: Iterable[str]) -> dict[str, list[tuple[str, str | None]]]:
    """``["<group>=<role>", "<group>=<role>@<environment>"]`` -> {group: [(role, environment or None)]}.

    A group may appear several times (one entry per role). Bad entries fail loudly, at startup."""
    mapping: dict[str, list[tuple[str, str | None]]] = {}
    for entry in entries:
        group, sep, target = entry.partition("=")
        role, _, environment = target.partition("@")
        group, role, environment = group.strip(), role.strip(), environment.strip()
        if not sep or not group or role not in Role.values:
            raise ImproperlyConfigured(
                f"OIDC_GROUP_ROLES entry {entry!r}: use <group>=<role> or <group>=<role>@<environment>, "
                f"role one of {', '.join(Role.values)}"
            )
        mapping.setdefault(group, []).append((role, environment or None))
    return mapping


def roles_from_groups(groups: Iterable[str], entries: Iterable[str]) -> RoleMapping:
    mapping = parse_group_roles(entries)
    global_roles: set[str] = set()
    grants: set[tuple[str, str]] = set()
    for group in groups:
        for role, environment in mapping.get(str(group), []):
            if environment:
                grants.add((environment, role))
            else:
                global_roles.add(role)
    role = next((r for r in reversed(_ROLE_ORDER) if r in global_roles), None)
    return RoleMapping(role=role, grants=frozenset(grants))


def _groups(claims: Mapping[str, Any]) -> list[str]:
    value = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    if isinstance(value, str):
        value = [value]
    if "_claim_names" in claims and settings.OIDC_GROUPS_CLAIM in claims.get("_claim_names", {}):
        # Entra's "group overage": too many groups to fit in the token. We do not call Microsoft Graph.
        logger.warning("OIDC login: the %s claim is an overage reference, not a list", settings.OIDC_GROUPS_CLAIM)
    return [str(group) for group in value]


# ---------------------------------------------------------------------------------------------- users
@transaction.atomic
def oidc_user_sync(*, claims: Mapping[str, Any]) -> User:
    """The local user for verified id_token claims: created on first login, and on every login given the
    role and per-environment grants its groups map to (so a change in the provider applies at next login).

    Raises ``SsoRefused`` for an identity with no username, no mapped group when ``OIDC_DEFAULT_ROLE`` is
    empty, or whose username belongs to a local (password) account or a service account."""
    username = str(claims.get(settings.OIDC_USERNAME_CLAIM) or "").strip()[:150]
    if not username:
        raise SsoRefused(f"The identity token has no {settings.OIDC_USERNAME_CLAIM!r} claim to name you by.")
    groups = _groups(claims)
    mapped = roles_from_groups(groups, settings.OIDC_GROUP_ROLES)
    role = mapped.role or settings.OIDC_DEFAULT_ROLE
    if not role and not mapped.grants:
        raise SsoRefused(f"{username} is in no group that gives access to this control plane. Ask an admin.")
    role = role or Role.VIEWER  # per-environment grants only: a viewer everywhere else

    user = User.objects.select_for_update().filter(username=username).first()
    created = user is None
    if user is None:
        user = User(username=username)
        user.set_unusable_password()
    elif user.has_usable_password() or getattr(user, "is_service_account", False):
        raise SsoRefused(
            f"{username} is a local account here; an admin must remove its password before it can sign in with SSO."
        )
    before = {"role": user.role, "is_staff": user.is_staff}
    user.email = str(claims.get("email") or user.email or "")[:254]
    user.first_name = str(claims.get("given_name") or user.first_name or "")[:150]
    user.last_name = str(claims.get("family_name") or user.last_name or "")[:150]
    user.role = role
    for flag, value in django_admin_flags(role).items():
        setattr(user, flag, value)
    user.is_active = True
    user.save()
    after = {"role": user.role, "is_staff": user.is_staff}
    if created or before != after:
        audit_record(
            actor=user,
            action="user.sso_create" if created else "user.sso_role_set",
            target_type="user",
            target_id=user.pk,
            data={"user": username, "before": None if created else before, "after": after, "groups": len(groups)},
        )
    _grants_sync(user, mapped.grants)
    return user


def _grants_sync(user: User, grants: frozenset[tuple[str, str]]) -> None:
    from apps.deployments.access import sso_grants_sync

    skipped = sso_grants_sync(user=user, grants=sorted(grants))
    if skipped:
        logger.warning("OIDC login of %s: no such environment or role for %s", user.get_username(), skipped)
