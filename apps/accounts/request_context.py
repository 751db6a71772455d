"""Where a write comes from: the client IP and the credential of the request being served.

A middleware remembers the request in a context variable for the length of the request; the API token
authentication adds the token it accepted. ``audit_record`` reads both, so services do not need the request
and Celery tasks or management commands (no request) record no origin.
"""

from __future__ import annotations

import hashlib
import ipaddress
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from apps.accounts.choices import AuditVia

__all__ = ["Origin", "RequestContextMiddleware", "current_origin", "remember_token", "client_ip"]


@dataclass
class _Context:
    request: HttpRequest
    token: object | None = None  # the ApiToken DRF accepted for this request


_current: ContextVar[_Context | None] = ContextVar("modelplane_request", default=None)


@dataclass(frozen=True)
class Origin:
    via: str = ""
    credential: str = ""
    ip: str | None = None


def client_ip(request: HttpRequest) -> str | None:
    """``REMOTE_ADDR``, or, behind ``MODELPLANE_TRUSTED_PROXY_HOPS`` reverse proxies, the address the
    outermost trusted proxy saw (counted from the right of ``X-Forwarded-For``, which clients can forge)."""
    hops = int(getattr(settings, "MODELPLANE_TRUSTED_PROXY_HOPS", 0) or 0)
    candidate = request.META.get("REMOTE_ADDR", "")
    if hops:
        forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if p.strip()]
        if len(forwarded) >= hops:
            candidate = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def remember_token(request: HttpRequest, token: object) -> None:
    context = _current.get()
    if context is not None and context.request is request:
        context.token = token


def current_origin() -> Origin:
    context = _current.get()
    if context is None:
        return Origin()
    request, token = context.request, context.token
    ip = client_ip(request)
    if token is not None:
        return Origin(via=AuditVia.TOKEN, credential=f"{token.name} ({token.prefix}…)"[:120], ip=ip)
    session = getattr(request, "session", None)
    session_key = getattr(session, "session_key", None)
    user = getattr(request, "user", None)
    if session_key and user is not None and user.is_authenticated:
        # A short hash tells two sessions apart without keeping a usable session key.
        digest = hashlib.sha256(session_key.encode()).hexdigest()[:12]
        return Origin(via=AuditVia.SESSION, credential=f"session {digest}", ip=ip)
    return Origin(ip=ip)


class RequestContextMiddleware:
    """Remembers the request being served, for ``current_origin``."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        reset = _current.set(_Context(request=request))
        try:
            return self.get_response(request)
        finally:
            _current.reset(reset)
