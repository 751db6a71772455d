from __future__ import annotations

from django import template

register = template.Library()

_CLASSES = {
    "pending": "run",
    "approved": "warn",
    "executed": "ok",
    "rejected": "bad",
    "cancelled": "idle",
    "expired": "idle",
    "approve": "ok",
    "reject": "bad",
}


@register.filter
def promotion_class(status: str) -> str:
    """The pill colour of a promotion status or review decision."""
    return _CLASSES.get(status, "idle")


@register.filter
def signed(value: float | None) -> str:
    """A metric delta with its sign, or a dash when one side is missing."""
    if value is None:
        return "—"
    return f"{value:+.4g}"


@register.filter
def metric(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"
