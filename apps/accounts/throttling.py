"""Login throttling with django-axes: which address a login comes from, and what a locked-out login sees.

Axes counts failed logins per username and client address (``AXES_LOCKOUT_PARAMETERS``); past
``AXES_FAILURE_LIMIT`` it refuses that pair for ``AXES_COOLOFF_TIME`` without checking the password.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.accounts.services import audit_record

__all__ = ["client_ip", "lockout_response"]


def client_ip(request: HttpRequest) -> str:
    """The address the request came from. Behind the TLS ingress (``DJANGO_BEHIND_TLS_PROXY``) that is the
    last X-Forwarded-For entry, the one the ingress itself appended; earlier entries are the client's word."""
    if settings.SECURE_PROXY_SSL_HEADER:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if forwarded[-1]:
            return forwarded[-1]
    return request.META.get("REMOTE_ADDR", "")


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    """The login page with a plain message (HTTP 429), recorded in the audit trail."""
    username = str((credentials or {}).get("username") or request.POST.get("username", ""))[:150]
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    audit_record(
        actor=None,
        action="login.locked_out",
        target_type="user",
        target_id=username,
        data={"username": username, "address": client_ip(request), "path": request.path[:200]},
    )
    from apps.accounts.oidc_views import login_context

    message = (
        f"Too many failed sign-ins for {username or 'this account'} from your address: "
        f"sign-in is blocked for {minutes} minutes. Ask an admin if you need access sooner."
    )
    context = login_context(request) | {"locked_out": message}
    return render(request, "accounts/login.html", context, status=429)
