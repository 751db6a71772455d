from __future__ import annotations

from collections.abc import Callable, Sequence

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.common.status import StatusCheck, readiness_get


@require_GET
@login_not_required
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for load balancers and Kubernetes probes; says nothing about the system."""
    return HttpResponse("ok", content_type="text/plain")


@require_GET
@login_not_required
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when the database and the task broker answer, else 503 naming what does not. The cache
    is reported but not required (pages work without it). Each is "ok" or "unavailable" (cache: "local" too)."""
    # Public for probes: states only; the reasons are on the status page, for signed-in users.
    checks = {name: state if state in ("ok", "local") else "unavailable" for name, state in readiness_get().items()}
    ready = checks["database"] == "ok" and checks["broker"] == "ok"
    return JsonResponse({"ready": ready, **checks}, status=200 if ready else 503)


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
