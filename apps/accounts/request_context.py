"""Where a write comes from: the interface (web UI, REST API or the system), the credential and the client IP.

A middleware remembers the request in a context variable for the length of the request; the API token
authentication adds the token it accepted. ``audit_record`` reads both, so services never take the origin as an
argument. Celery tasks (a signal in ``controlplane/celery.py``) and management commands (``SystemCommand``) run
``as_system()``: their writes are the system's, with no credential or address, even when a task runs eagerly
inside a request.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from django.core.management.base import BaseCommand
from django.http import HttpRequest, HttpResponse

from apps.accounts.choices import AuditSource, AuditVia

__all__ = [
    "Origin",
    "RequestContextMiddleware",
    "SystemCommand",
    "as_system",
    "current_origin",
    "remember_token",
    "client_ip",
    "is_api_request",
]


@dataclass
class _Context:
    request: HttpRequest
    token: object | None = None  # the ApiToken DRF accepted for this request


_current: ContextVar[_Context | None] = ContextVar("modelplane_request", default=None)


@dataclass(frozen=True)
class Origin:
    source: str = AuditSource.SYSTEM
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


def is_api_request(request: HttpRequest) -> bool:
    """The REST API lives under ``/api/``; everything else is a page of the web UI."""
    return request.path_info.startswith("/api/")


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
    source = AuditSource.API if is_api_request(request) else AuditSource.UI
    if token is not None:
        return Origin(source=source, via=AuditVia.TOKEN, credential=f"{token.name} ({token.prefix}…)"[:120], ip=ip)
    session = getattr(request, "session", None)
    session_key = getattr(session, "session_key", None)
    user = getattr(request, "user", None)
    if session_key and user is not None and user.is_authenticated:
        # A short hash tells two sessions apart without keeping a usable session key.
        digest = hashlib.sha256(session_key.encode()).hexdigest()[:12]
        return Origin(source=source, via=AuditVia.SESSION, credential=f"session {digest}", ip=ip)
    return Origin(source=source, ip=ip)


@contextmanager
def as_system() -> Iterator[None]:
    """Writes inside are the system's (source ``system``, no credential, no address), whatever request is
    being served around them: for Celery tasks, management commands and work the system does on its own."""
    reset = _current.set(None)
    try:
        yield
    finally:
        _current.reset(reset)


class SystemCommand(BaseCommand):
    """A management command whose writes are audited as the system's."""

    def execute(self, *args, **options):
        with as_system():
            return super().execute(*args, **options)


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
