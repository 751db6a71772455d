from __future__ import annotations

from django.http import HttpRequest

from apps.accounts.selectors import NavPermissions, nav_permissions


def navigation(request: HttpRequest) -> dict[str, NavPermissions]:
    """``nav``: which sections the top bar offers the signed-in person (base.html only reads it)."""
    return {"nav": nav_permissions(request.user)}
