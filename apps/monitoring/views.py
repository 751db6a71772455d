from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import plotly
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.common.errors import ApplicationError
from apps.deployments.selectors import deployment_get
from apps.monitoring import charts, selectors, services
from apps.monitoring.types import WINDOWS, window_get

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@functools.cache
def plotly_js_version() -> str:
    """A short content hash, so the URL changes whenever the plotly package (and its bundle) does."""
    return hashlib.sha256(PLOTLY_JS.read_bytes()).hexdigest()[:12]


@login_not_required
@require_GET
def plotly_js(request: HttpRequest, version: str) -> HttpResponse:
    """plotly.js from the installed plotly package (no CDN), cacheable forever under its hashed URL."""
    if version != plotly_js_version():
        raise Http404("No such plotly.js build.")
    response = FileResponse(PLOTLY_JS.open("rb"), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


@require_GET
def deployment_monitoring(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = deployment_get(pk=pk)
    try:
        window = window_get(request.GET.get("window"))
    except ApplicationError as exc:
        messages.error(request, exc.message)
        window = WINDOWS["1h"]
    context = {
        "deployment": deployment,
        "window": window,
        "windows": WINDOWS.values(),
        "plotly_version": plotly_js_version(),
        "latency": None,
        "latency_error": "",
        "drift": None,
        "drift_error": "",
        "figures": {},
    }
    try:
        latency = selectors.latency_series_get(deployment=deployment, window=window)
        context["latency"] = latency
        if latency.points:
            context["figures"]["latency"] = charts.latency_figure(latency)
    except ApplicationError as exc:
        context["latency_error"] = exc.message
    version = selectors.monitored_version(deployment)
    try:
        if version is None:
            raise ApplicationError("Nothing has been deployed yet, so there is no model version to compare with.")
        baseline = services.baseline_ensure(model_name=deployment.model_name, model_version=version).as_profile()
        drift = selectors.drift_series_get(deployment=deployment, window=window, baseline=baseline)
        context["drift"] = drift
        if drift.times:
            context["figures"]["drift"] = charts.drift_heatmap_figure(drift)
            top = drift.features[0]
            if top.rows:
                context["figures"]["overlay"] = charts.feature_overlay_figure(top)
    except ApplicationError as exc:
        context["drift_error"] = exc.message
    return render(request, "monitoring/deployment_monitoring.html", context)
