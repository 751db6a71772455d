"""Roles granted in single environments (``EnvironmentGrant``): the admin's writes, SSO's sync, and the reads the
access page and API share. Who may do what with those roles is decided in ``apps/accounts/permissions.py``; the
global role (``User.role``) is written by ``apps.accounts.services.user_role_set``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from apps.accounts.choices import Role
from apps.accounts.models import User
from apps.accounts.permissions import is_admin, require_admin, validate_role
from apps.accounts.selectors import active_user_get
from apps.accounts.services import audit_record
from apps.common.errors import NotFoundError
from apps.deployments.models import Environment, EnvironmentGrant

__all__ = [
    "grants_visible_to",
    "grant_get",
    "user_access_get",
    "grant_add",
    "grant_remove",
    "sso_grants_sync",
    "access_rows",
    "AccessRow",
]


def grants_visible_to(user: User) -> QuerySet[EnvironmentGrant]:
    """Admins see every grant; everyone else their own."""
    grants = EnvironmentGrant.objects.select_related("user", "environment", "granted_by")
    return grants if is_admin(user) else grants.filter(user=user)


def grant_get(*, pk: int) -> EnvironmentGrant:
    grant = EnvironmentGrant.objects.select_related("user", "environment").filter(pk=pk).first()
    if grant is None:
        raise NotFoundError(f"Grant {pk} does not exist (any more).")
    return grant


def user_access_get(*, actor: User, username: str) -> User:
    """One active user's access: admins may read anyone's, everyone their own."""
    if actor.get_username() != username:
        require_admin(actor, "read other people's access")
    return active_user_get(username=username)


def grant_add(*, actor: User, user: User, environment: Environment, role: str) -> EnvironmentGrant:
    """Give ``user`` ``role`` in ``environment``. Granting what is already granted returns the existing grant."""
    require_admin(actor, "manage access")
    validate_role(role)
    existing = EnvironmentGrant.objects.filter(user=user, environment=environment, role=role).first()
    if existing:
        return existing
    try:
        with transaction.atomic():
            grant = EnvironmentGrant.objects.create(user=user, environment=environment, role=role, granted_by=actor)
            audit_record(
                actor=actor,
                action="access.grant",
                target_type="user",
                target_id=user.pk,
                data={"user": user.get_username(), "environment": environment.name, "role": role},
            )
    except IntegrityError:  # the same grant, added concurrently
        return EnvironmentGrant.objects.get(user=user, environment=environment, role=role)
    return grant


@transaction.atomic
def grant_remove(*, actor: User, grant: EnvironmentGrant) -> None:
    require_admin(actor, "manage access")
    deleted, _ = EnvironmentGrant.objects.filter(pk=grant.pk).delete()
    if not deleted:
        raise NotFoundError(f"Grant {grant.pk} does not exist (any more).")
    audit_record(
        actor=actor,
        action="access.revoke",
        target_type="user",
        target_id=grant.user_id,
        data={"user": grant.user.get_username(), "environment": grant.environment.name, "role": grant.role},
    )


@transaction.atomic
def sso_grants_sync(*, user: User, grants: Iterable[tuple[str, str]]) -> list[str]:
    """Make ``user``'s SSO-derived grants exactly ``grants`` (environment name, role); grants an admin set
    by hand stay. Unknown environments or roles are skipped and returned, so the login can log them."""
    wanted: set[tuple[int, str]] = set()
    names = {env.pk: env.name for env in Environment.objects.all()}
    environments = {name: pk for pk, name in names.items()}
    skipped = []
    for env_name, role in grants:
        if env_name not in environments or role not in Role.values:
            skipped.append(f"{role}@{env_name}")
            continue
        wanted.add((environments[env_name], role))
    current = {
        (g.environment_id, g.role): g for g in user.environment_grants.filter(source=EnvironmentGrant.Source.SSO)
    }
    stale = [g.pk for key, g in current.items() if key not in wanted]
    EnvironmentGrant.objects.filter(pk__in=stale).delete()
    manual = set(
        user.environment_grants.filter(source=EnvironmentGrant.Source.MANUAL).values_list("environment_id", "role")
    )
    for env_id, role in wanted - current.keys() - manual:
        EnvironmentGrant.objects.create(user=user, environment_id=env_id, role=role, source=EnvironmentGrant.Source.SSO)
    if stale or wanted - current.keys():
        audit_record(
            actor=user,
            action="access.sso_sync",
            target_type="user",
            target_id=user.pk,
            data={"grants": sorted(f"{role}@{names[env_id]}" for env_id, role in wanted)},
        )
    return skipped


@dataclass
class AccessRow:
    user: User
    grants: list[EnvironmentGrant] = field(default_factory=list)


def access_rows(*, users: QuerySet[User]) -> list[AccessRow]:
    """``users`` (the access page's filtered people) with their grants, by username."""
    rows = {user.pk: AccessRow(user=user) for user in users.order_by("username")}
    grants = EnvironmentGrant.objects.filter(user_id__in=rows).select_related("environment", "user")
    for grant in grants:
        rows[grant.user_id].grants.append(grant)
    return list(rows.values())
