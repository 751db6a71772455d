"""A refused promotion request keeps what the person typed: the form's input waits in the session for the version
page it returns to, which shows it again (once)."""

from __future__ import annotations

from django.http import HttpRequest

__all__ = ["draft_keep", "draft_take"]

_KEY = "promotion_draft"


def draft_keep(request: HttpRequest) -> None:
    request.session[_KEY] = {
        "model": request.POST.get("model", "")[:200],
        "version": request.POST.get("version", "")[:20],
        "environment": request.POST.get("environment", "")[:100],
        "justification": request.POST.get("justification", "")[:4000],
    }


def draft_take(request: HttpRequest, *, model: str, version: str) -> dict | None:
    """The kept input of a refused request for this model version, removed from the session; None if none."""
    draft = request.session.pop(_KEY, None)
    if draft and draft.get("model") == model and draft.get("version") == str(version):
        return draft
    return None
