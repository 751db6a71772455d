"""Writes for deployments. Environments for now; revisions and rollouts arrive with the deploy pipeline."""

from __future__ import annotations

from django.db import transaction

from apps.accounts.models import User
from apps.accounts.services import audit_record
from apps.deployments.models import Environment

__all__ = ["environment_ensure"]


@transaction.atomic
def environment_ensure(*, name: str, actor: User | None = None, **fields: object) -> tuple[Environment, bool]:
    """Create the environment if it does not exist; an existing one is left as an admin set it."""
    existing = Environment.objects.filter(name=name).first()
    if existing:
        return existing, False
    environment = Environment(name=name, **fields)
    environment.full_clean()
    environment.save()
    audit_record(
        actor=actor,
        action="environment.create",
        target_type="environment",
        target_id=environment.pk,
        data={"name": name, **{k: str(v) for k, v in fields.items()}},
    )
    return environment, True
