from __future__ import annotations

from django import template

register = template.Library()

_CLASSES = {
    "live": "ok",
    "succeeded": "ok",
    "queued": "run",
    "running": "run",
    "pending": "idle",
    "deleting": "warn",
    "failed": "bad",
    "rolled_back": "bad",
    "superseded": "idle",
    "skipped": "idle",
    "deleted": "idle",
}


@register.filter
def status_class(status: str) -> str:
    """The pill colour of a status: ok, run, warn, bad or idle."""
    return _CLASSES.get(status, "idle")
