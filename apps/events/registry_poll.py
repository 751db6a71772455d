"""Registry events by polling: MLflow has no push, so a beat task compares the registry with what it saw.

Each model's highest version and aliases are remembered in ``RegistryWatermark``. A poll publishes
``registry.version_created`` for every version above the mark (at most ``NEW_MODEL_VERSIONS`` for a model seen
for the first time) and ``registry.alias_moved`` for every alias that points elsewhere (or nowhere) since.
The very first poll only takes the marks: it must not announce every version the registry ever held.
One poll at a time: the poll holds a row lock on the marker row, so overlapping beats do not publish twice.
Registry events belong to no environment, so global channels receive them.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.urls import reverse

from apps.common.errors import ApplicationError
from apps.events import catalogue
from apps.events.models import RegistryWatermark
from apps.events.services import publish
from apps.registry.client import get_client
from apps.registry.types import ModelSummary

__all__ = ["registry_poll"]

logger = logging.getLogger(__name__)

MARKER = ""  # the watermark row that says "a poll has run" (no model has an empty name)
PAGE_SIZE = 100
NEW_MODEL_VERSIONS = 5  # a model first seen after the first poll: announce its newest versions, not all


def _models() -> list[ModelSummary]:
    client, token, models = get_client(), None, []
    while True:
        page = client.search_models(page_size=PAGE_SIZE, page_token=token)
        models += page.items
        token = page.next_token
        if not token:
            return models


def _version_path(model: str, version: str) -> str:
    return reverse("registry:version_detail", kwargs={"name": model, "version": version})


def _announce(model: ModelSummary, mark: RegistryWatermark | None) -> None:
    latest = int(model.latest_version or 0)
    seen = mark.latest_version if mark else max(0, latest - NEW_MODEL_VERSIONS)
    for version in range(seen + 1, latest + 1):
        publish(
            catalogue.REGISTRY_VERSION_CREATED,
            {
                "summary": f"{model.name} version {version} was registered.",
                "model": model.name,
                "version": str(version),
                "url": _version_path(model.name, str(version)),
            },
        )
    before = mark.aliases if mark else {}
    for alias in sorted(set(before) | set(model.aliases)):
        now, was = model.aliases.get(alias), before.get(alias)
        if now == was:
            continue
        summary = (
            f"{model.name}@{alias} now points to version {now} (was {was or 'unset'})."
            if now
            else f"{model.name}@{alias} was removed (was version {was})."
        )
        publish(
            catalogue.REGISTRY_ALIAS_MOVED,
            {
                "summary": summary,
                "model": model.name,
                "alias": alias,
                "version": now,
                "previous_version": was,
                "url": _version_path(model.name, now) if now else None,
            },
        )


def registry_poll() -> int:
    """One pass; returns how many models changed. A registry that cannot be read is logged and tried next time."""
    try:
        models = _models()
    except ApplicationError as exc:
        logger.warning("registry poll skipped: %s", exc.message)
        return 0
    changed = 0
    with transaction.atomic():
        marker, first = RegistryWatermark.objects.select_for_update().get_or_create(model_name=MARKER)
        marks = {m.model_name: m for m in RegistryWatermark.objects.exclude(model_name=MARKER)}
        for model in models:
            mark = marks.get(model.name)
            latest = int(model.latest_version or 0)
            if mark and mark.latest_version >= latest and mark.aliases == model.aliases:
                continue
            changed += 1
            if not first:
                _announce(model, mark)
            RegistryWatermark.objects.update_or_create(
                model_name=model.name,
                defaults={"latest_version": max(latest, mark.latest_version if mark else 0), "aliases": model.aliases},
            )
        marker.save()  # its seen_at says when the registry was last polled
    return changed
