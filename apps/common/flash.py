"""Pages report a refused action on the page they return to, with its HTTP status as a message tag."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest

from apps.common.errors import ApplicationError

__all__ = ["flash_error"]


def flash_error(request: HttpRequest, exc: ApplicationError, *, prefix: str = "") -> None:
    """``status-403`` / ``status-409`` in the tags lets styling and tests tell "not allowed" from "not now"."""
    messages.error(request, prefix + exc.message, extra_tags=f"status-{exc.status_code} code-{exc.code}")
