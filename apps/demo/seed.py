"""The demo's people, environments, per-environment access and promotion policy, written through the services
of each app (so every write is audited). Running it again changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from apps.accounts.choices import Role
from apps.accounts.services import user_ensure
from apps.deployments.access import grant_add
from apps.deployments.services import environment_ensure
from apps.promotions.services import promotion_policy_ensure

__all__ = ["DEMO_ENVIRONMENTS", "NewUser", "demo_people_ensure"]

DEMO_ENVIRONMENTS = [
    {"name": "dev", "order": 1, "description": "Try things; anyone with the ML lead role deploys."},
    {"name": "staging", "order": 2, "description": "Pre-production, mirrors production settings."},
    {
        "name": "production",
        "order": 3,
        "description": "Serves customers; deploys need an approved promotion.",
        "gated": True,
    },
]


@dataclass(frozen=True)
class NewUser:
    username: str
    password: str  # shown once, never stored in plain text
    label: str


def demo_people_ensure() -> list[NewUser]:
    """One user per role, the three environments, an intern who deploys to dev only, and production's policy.
    Returns the users created now, with their passwords."""
    created = []
    users = {}
    for role in (Role.VIEWER, Role.LEAD, Role.REVIEWER, Role.ADMIN):
        users[role], password = user_ensure(username=role.value, role=role.value)
        if password:
            created.append(NewUser(role.value, password, role.label))
    environments = {spec["name"]: environment_ensure(**spec)[0] for spec in DEMO_ENVIRONMENTS}
    # Per-environment roles: the intern reads everything and deploys to dev only, granted by the demo's admin
    # when the intern is created (later, the intern's access is what an admin made it).
    intern, password = user_ensure(username="intern", role=Role.VIEWER)
    if password:
        grant_add(actor=users[Role.ADMIN], user=intern, environment=environments["dev"], role=Role.LEAD)
        created.append(NewUser(intern.username, password, "Viewer; ML lead in dev"))
    # Production takes one reviewer's approval of a version that is live in staging.
    promotion_policy_ensure(environment=environments["production"], require_live_in=environments["staging"])
    return created
