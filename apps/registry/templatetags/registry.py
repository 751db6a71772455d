from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def get(mapping: dict | None, key: str):
    """``{{ run.metrics|get:name }}``: a dict value by a key held in a variable."""
    return mapping.get(key) if mapping else None
