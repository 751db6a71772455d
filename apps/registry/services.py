"""Writes to the MLflow registry. Only the promotions service calls these, once a promotion is approved."""

from __future__ import annotations

from apps.registry.client import get_client
from apps.registry.selectors import model_cache_forget

__all__ = ["model_version_alias_set"]


def model_version_alias_set(*, name: str, version: str, alias: str, tags: dict[str, str] | None = None) -> None:
    """Move ``alias`` of model ``name`` to ``version`` and tag that version. Running it twice changes nothing."""
    try:
        get_client().set_alias(name, version, alias=alias, tags=tags)
    finally:
        model_cache_forget(name=name)
