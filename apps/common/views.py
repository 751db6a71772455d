from __future__ import annotations

from collections.abc import Callable, Sequence

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.common.status import StatusCheck


@require_GET
@login_not_required
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for load balancers and Kubernetes probes; says nothing about the system."""
    return HttpResponse("ok", content_type="text/plain")


@require_GET
def system_status(request: HttpRequest, checks: Sequence[Callable[[], StatusCheck]]) -> HttpResponse:
    """What the control plane is connected to, and whether a worker is alive (a heartbeat is queued on each visit).
    The ``checks`` come from the URL configuration (``controlplane/status.py``)."""
    return render(request, "common/status.html", {"checks": [check() for check in checks]})


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path_info.startswith("/api/"):
        return HttpResponse(
            '{"detail": "Not found.", "code": "not_found"}', status=404, content_type="application/json"
        )
    return render(request, "common/error.html", {"title": "Not found", "error": None}, status=404)
