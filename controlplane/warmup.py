"""What a web process does once at start-up instead of in the first request it serves."""

from __future__ import annotations

import logging
from importlib import import_module

from django.conf import settings
from django.core.cache import caches
from django.template.loader import get_template
from django.urls import get_resolver, reverse

__all__ = ["warm_up"]

logger = logging.getLogger(__name__)

# The pages a person meets first; compiling their templates (and the base they extend) takes ~0.1 s.
FIRST_TEMPLATES = ["accounts/login.html", "base.html"]


def warm_up() -> None:
    """Import the URLconf, and with it every view module and what they import (MLflow's client, scipy's
    statistics, plotly): ~1.5-3 s that Django otherwise spends lazily on the first request of each worker. Then
    the cache backends and the session engine (the Redis client's import, ~0.4 s), the first pages' templates,
    and the OpenAPI schema the API docs fetch, rendered (~0.7 s)."""
    from apps.common.schema_view import CachedSchemaView

    get_resolver().url_patterns  # noqa: B018 (the property imports the modules)
    reverse("accounts:login")  # builds the resolver's reverse tables
    for alias in settings.CACHES:
        caches[alias]  # noqa: B018 (creating the backend imports its client; no connection is opened)
    import_module(settings.SESSION_ENGINE)
    for name in FIRST_TEMPLATES:
        get_template(name)
    try:
        CachedSchemaView.prerender()
    except Exception:  # the docs then generate it on first use, as before; never keep a worker from starting
        logger.exception("could not generate the OpenAPI schema at start-up")
