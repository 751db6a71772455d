"""Who may act where: a global role per person (``User.role``) plus roles granted per environment.

Reads for pages and forms, and the admin's writes (grants, global roles). Every check of an action goes
through ``User.has_role(..., environment=...)`` in the service that performs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from apps.accounts.choices import Role
from apps.accounts.models import User
from apps.accounts.permissions import check_role, require_admin
from apps.accounts.services import audit_record
from apps.common.errors import ConflictError, NotFoundError
from apps.deployments.models import Environment, EnvironmentGrant

__all__ = [
    "environments_where",
    "has_role_anywhere",
    "grants_visible_to",
    "user_access_get",
    "grant_add",
    "grant_remove",
    "user_role_set",
    "sso_grants_sync",
    "access_rows",
    "AccessRow",
]


def environments_where(user: User, *roles: str) -> QuerySet[Environment]:
    """The environments in which ``user`` holds one of ``roles`` (admin counts as every role)."""
    if not user.is_authenticated or not user.is_active:
        return Environment.objects.none()
    if user.has_role(*roles):
        return Environment.objects.all()
    granted = user.environment_grants.filter(role__in={*roles, Role.ADMIN}).values("environment_id")
    return Environment.objects.filter(pk__in=granted)


def has_role_anywhere(user: User, *roles: str) -> bool:
    """Whether ``user`` holds one of ``roles`` globally or in at least one environment."""
    return environments_where(user, *roles).exists()


def grants_visible_to(user: User) -> QuerySet[EnvironmentGrant]:
    """Admins see every grant; everyone else their own."""
    grants = EnvironmentGrant.objects.select_related("user", "environment", "granted_by")
    return grants if user.has_role(Role.ADMIN) else grants.filter(user=user)


def user_access_get(*, actor: User, username: str) -> User:
    """One active user's access: admins may read anyone's, everyone their own."""
    if actor.get_username() != username:
        require_admin(actor, "read other people's access")
    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise NotFoundError(f"No active user {username!r}.")
    return user


def grant_add(*, actor: User, user: User, environment: Environment, role: str) -> EnvironmentGrant:
    """Give ``user`` ``role`` in ``environment``. Granting what is already granted returns the existing grant."""
    require_admin(actor, "manage access")
    check_role(role)
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
def user_role_set(*, actor: User, user: User, role: str) -> User:
    """Change someone's global role. The last active admin cannot be demoted: someone must manage access."""
    require_admin(actor, "manage access")
    check_role(role)
    user = User.objects.select_for_update().get(pk=user.pk)
    before = user.role
    if before == role:
        return user
    if before == Role.ADMIN:
        admins = User.objects.select_for_update().filter(role=Role.ADMIN, is_active=True)
        if not admins.exclude(pk=user.pk).exists():
            raise ConflictError(
                f"{user.get_username()} is the last admin; make someone else admin first.", code="last_admin"
            )
    user.role = role
    user.save(update_fields=["role"])
    audit_record(
        actor=actor,
        action="access.role_set",
        target_type="user",
        target_id=user.pk,
        data={"user": user.get_username(), "before": {"role": before}, "after": {"role": role}},
    )
    return user


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


def access_rows(*, query: str = "") -> list[AccessRow]:
    """Every active user with their grants, for the access page and API."""
    users = User.objects.filter(is_active=True).order_by("username")
    if query:
        users = users.filter(username__icontains=query)
    rows = {user.pk: AccessRow(user=user) for user in users}
    grants = EnvironmentGrant.objects.filter(user_id__in=rows).select_related("environment", "user")
    for grant in grants:
        rows[grant.user_id].grants.append(grant)
    return list(rows.values())
