"""Who may do what, and where: the one home of every role check.

A person holds one global role (``User.role``; a Django superuser counts as an admin) plus roles granted in
single environments (``deployments.EnvironmentGrant``). An admin holds every role. Each action names the role it
needs and where (the table below). Services call :func:`require` before they act; pages ask :func:`may`,
:func:`refusal` or :func:`environments_where` (through their selectors) what to offer, so a refusal reads the same
on a page, in a flash message and in an API answer. No other module compares roles, and templates never do
(``tests/common/test_one_permission_module.py`` enforces both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from apps.accounts.choices import Role
from apps.common.errors import ApplicationError, ForbiddenError

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from apps.accounts.models import User
    from apps.deployments.models import Environment

__all__ = [
    "Action",
    "DEPLOY",
    "ROLL_BACK",
    "DELETE_DEPLOYMENT",
    "TEST_ENDPOINT",
    "REQUEST_PROMOTION",
    "CHANGE_DRIFT_THRESHOLDS",
    "SET_DRIFT_BASELINE",
    "READ_AUDIT_TRAIL",
    "ACKNOWLEDGE_ALERTS",
    "SILENCE_ALERTS",
    "CHANGE_ALERT_RULES",
    "environments_with_a_role",
    "MANAGE_CHANNELS",
    "MANAGE_GLOBAL_CHANNELS",
    "decide_promotion",
    "admin_action",
    "roles_in",
    "has_role",
    "is_admin",
    "admins",
    "may",
    "environments_where",
    "refusal",
    "require",
    "require_admin",
    "validate_role",
    "django_admin_flags",
]

# Who holds a role, for messages: an admin holds every role.
_HOLDERS = {
    Role.VIEWER: "viewers and admins",
    Role.LEAD: "ML leads and admins",
    Role.REVIEWER: "reviewers and admins",
    Role.ADMIN: "admins",
}
# Where an action's role must be held.
IN_ENVIRONMENT = "environment"  # in the environment acted on (globally, or by a grant there)
ANYWHERE = "anywhere"  # globally or in at least one environment (things that belong to no single environment)
GLOBALLY = "globally"  # as the global role (the whole control plane: accounts, access, the audit trail)


@dataclass(frozen=True)
class Action:
    """Something a person does, the role it needs and where that role must be held."""

    phrase: str  # completes "Only ML leads and admins of dev may ...": "deploy", "roll back"
    role: str
    scope: str = IN_ENVIRONMENT


# ---------------------------------------------------------------------------------------------------- who may do what
DEPLOY = Action("deploy", Role.LEAD)
ROLL_BACK = Action("roll back", Role.LEAD)
DELETE_DEPLOYMENT = Action("delete deployments", Role.LEAD)
# A test request goes through the control plane to the model (and shows in its telemetry): who deploys there.
TEST_ENDPOINT = Action("send test requests to deployments", Role.LEAD)
REQUEST_PROMOTION = Action("request promotions", Role.LEAD)
CHANGE_DRIFT_THRESHOLDS = Action("change drift thresholds", Role.LEAD)
# A baseline belongs to a model version, which every environment's deployments of it share.
SET_DRIFT_BASELINE = Action("set drift baselines", Role.LEAD, scope=ANYWHERE)
# Alerts: the ML leads of an environment answer for its models, so they acknowledge, silence and set the rules.
ACKNOWLEDGE_ALERTS = Action("acknowledge alerts", Role.LEAD)
SILENCE_ALERTS = Action("silence alerts", Role.LEAD)
CHANGE_ALERT_RULES = Action("change SLOs and alert rules", Role.LEAD)
# Reviewers sign changes off, so they (and admins) read the whole trail; leads and viewers do not.
READ_AUDIT_TRAIL = Action("read the audit trail", Role.REVIEWER, scope=GLOBALLY)
# Notification channels (apps/events): an environment's channels by its admins (a global admin, or an admin grant
# there), global channels by global admins. Their deliveries are read and resent by the same
# people: a delivery shows what the channel was sent.
MANAGE_CHANNELS = Action("manage notification channels", Role.ADMIN)
MANAGE_GLOBAL_CHANNELS = Action("manage global notification channels", Role.ADMIN, scope=GLOBALLY)


def decide_promotion(verb: str, approver_role: str) -> Action:
    """Approving or rejecting a promotion: the role is the target environment's policy's ``approver_role``."""
    return Action(f"{verb} promotions", approver_role)


def admin_action(phrase: str) -> Action:
    """Managing the control plane itself (access, service accounts, other people's tokens): global admins."""
    return Action(phrase, Role.ADMIN, scope=GLOBALLY)


def _global_roles(user: User) -> set[str]:
    return {user.role, Role.ADMIN} if user.is_superuser else {user.role}


def roles_in(user: User, environment: Environment | int | None = None) -> set[str]:
    """The roles ``user`` holds: the global role plus the ones granted in ``environment`` (an Environment or
    its pk). Nothing for an anonymous or deactivated user."""
    if not user.is_authenticated or not user.is_active:
        return set()
    held = _global_roles(user)
    if environment is not None and user.pk is not None:
        env_id = getattr(environment, "pk", environment)
        held.update(user.environment_grants.filter(environment_id=env_id).values_list("role", flat=True))
    return held


def has_role(user: User, role: str, *, environment: Environment | int | None = None) -> bool:
    """Whether ``user`` holds ``role`` (admins hold them all) globally or in ``environment``."""
    held = roles_in(user, environment)
    return Role.ADMIN in held or role in held


def is_admin(user: User) -> bool:
    """Admin of the whole control plane (users, service accounts, access), not of one environment."""
    return has_role(user, Role.ADMIN)


def admins() -> QuerySet[User]:
    """Every active admin of the whole control plane."""
    from django.db.models import Q

    from apps.accounts.models import User

    return User.objects.filter(Q(role=Role.ADMIN) | Q(is_superuser=True), is_active=True)


def _environments_with(user: User, role: str) -> QuerySet[Environment]:
    from apps.deployments.models import Environment

    if has_role(user, role):
        return Environment.objects.all()
    if not user.is_authenticated or not user.is_active:
        return Environment.objects.none()
    granted = user.environment_grants.filter(role__in={role, Role.ADMIN}).values("environment_id")
    return Environment.objects.filter(pk__in=granted)


def may(user: User, action: Action, *, environment: Environment | None = None) -> bool:
    """Whether ``user`` may do ``action`` in ``environment`` (for an action held in an environment; else ignored)."""
    if action.scope == GLOBALLY:
        return has_role(user, action.role)
    if action.scope == ANYWHERE:
        return _environments_with(user, action.role).exists()
    if environment is None:
        raise ValueError(f"{action.phrase!r} is decided per environment: say which one.")
    return has_role(user, action.role, environment=environment)


def environments_with_a_role(user: User) -> QuerySet[Environment]:
    """The environments where ``user`` holds any role (the navigation's alert badge counts firing alerts there):
    every one for an active person (a global role applies everywhere), none otherwise."""
    from apps.deployments.models import Environment

    if not user.is_authenticated or not user.is_active or not _global_roles(user) - {""}:
        return Environment.objects.none()
    return Environment.objects.all()


def environments_where(user: User, action: Action) -> QuerySet[Environment]:
    """The environments in which ``user`` may do ``action``: where to offer it."""
    if action.scope == GLOBALLY and not has_role(user, action.role):
        from apps.deployments.models import Environment

        return Environment.objects.none()  # a grant in one environment is not a global role
    return _environments_with(user, action.role)


def refusal(user: User, action: Action, *, environment: Environment | None = None) -> str:
    """Why ``user`` may not do ``action`` in ``environment``; "" when they may. The one wording of every refusal,
    for services and pages alike: "Only ML leads and admins of dev may deploy; carol is viewer there."."""
    if may(user, action, environment=environment):
        return ""
    who = user.get_username() if user.is_authenticated else "an anonymous user"
    if action.scope == IN_ENVIRONMENT:
        where, there, held = f" of {environment.name}", " there", roles_in(user, environment)
    else:
        where, there, held = (" of at least one environment" if action.scope == ANYWHERE else ""), "", roles_in(user)
    status = f"is {', '.join(sorted(held))}{there}" if held else "holds no role (an inactive account)"
    return f"Only {_HOLDERS[action.role]}{where} may {action.phrase}; {who} {status}."


def require(actor: User, action: Action, *, environment: Environment | None = None, code: str = "forbidden") -> None:
    """403 ``code`` with :func:`refusal`'s message unless ``actor`` may do ``action`` in ``environment``."""
    reason = refusal(actor, action, environment=environment)
    if reason:
        raise ForbiddenError(reason, code=code)


def require_admin(actor: User, phrase: str) -> None:
    """403 ``admin_required`` unless ``actor`` is an admin of the whole control plane."""
    require(actor, admin_action(phrase), code="admin_required")


def validate_role(role: str) -> None:
    """400 ``unknown_role`` naming the roles there are."""
    if role not in Role.values:
        raise ApplicationError(f"Unknown role {role!r}; expected one of {', '.join(Role.values)}.", code="unknown_role")


def django_admin_flags(role: str) -> dict[str, bool]:
    """Admins (and only they) may use the Django admin: the ``is_staff``/``is_superuser`` a global role implies."""
    return {"is_staff": role == Role.ADMIN, "is_superuser": role == Role.ADMIN}
