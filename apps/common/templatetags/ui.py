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
    "skipped": "skip",
    "deleted": "idle",
}


@register.filter
def status_class(status: str) -> str:
    """The pill colour of a status: ok, run, warn, bad, skip (a step with nothing to do) or idle."""
    return _CLASSES.get(status, "idle")


@register.simple_tag
def took(started, finished) -> str:
    """How long a step took, to the tenth of a second: '5.9 s', '2 min 3 s'."""
    if not started or not finished:
        return ""
    seconds = (finished - started).total_seconds()
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {int(seconds % 60)} s"
