"""A refused deploy keeps what the person chose: the form's input and the errors to show at its fields wait in the
session for the version page it returns to, which shows the form again (once) with them."""

from __future__ import annotations

from django.http import HttpRequest

__all__ = ["deploy_draft_keep", "deploy_draft_take"]

_KEY = "deploy_draft"
_FIELDS = ("model", "version", "environment", "name", "input_validation", "strategy", "steps", "step_seconds")
_FIELDS += ("max_error_rate", "max_p99_ms", "min_requests")


def deploy_draft_keep(request: HttpRequest, errors: dict[str, list[str]]) -> None:
    request.session[_KEY] = {
        "data": {field: request.POST.get(field, "")[:200] for field in _FIELDS},
        "errors": {field: [str(m)[:1000] for m in messages] for field, messages in errors.items()},
    }


def deploy_draft_take(request: HttpRequest, *, model: str, version: str) -> dict | None:
    """The kept input (``data``) and ``errors`` of a refused deploy of this model version, removed from the
    session; None if none."""
    draft = request.session.pop(_KEY, None)
    data = draft.get("data", {}) if draft else {}
    if data.get("model") == model and data.get("version") == str(version):
        return draft
    return None
