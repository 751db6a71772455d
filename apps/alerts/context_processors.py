from __future__ import annotations

from django.http import HttpRequest

from apps.alerts.selectors import firing_count


def firing_alerts(request: HttpRequest) -> dict[str, int]:
    """``firing_alerts``: how many alerts fire where the signed-in person holds a role (the nav badge)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"firing_alerts": 0}
    return {"firing_alerts": firing_count(user=user)}
