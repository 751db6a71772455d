from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import plotly
from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from apps.common.errors import ApplicationError
from apps.common.flash import flash_error
from apps.common.forms import form_errors
from apps.deployments.selectors import deployment_get
from apps.monitoring import baselines, charts, selectors, services, uploads
from apps.monitoring.forms import BaselineUploadForm, DriftThresholdsForm, TrafficBaselineForm
from apps.monitoring.models import BaselineUpload
from apps.monitoring.types import WINDOWS, window_get

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@functools.cache
def plotly_js_version() -> str:
    """A short content hash, so the URL changes whenever the plotly package (and its bundle) does."""
    return hashlib.sha256(PLOTLY_JS.read_bytes()).hexdigest()[:12]


@require_GET
def plotly_js(request: HttpRequest, version: str) -> HttpResponse:
    """plotly.js from the installed plotly package (no CDN), cacheable forever under its hashed URL; like every
    page, for signed-in users only (the browser caches it privately)."""
    if version != plotly_js_version():
        raise Http404("No such plotly.js build.")
    response = FileResponse(PLOTLY_JS.open("rb"), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


@require_GET
def deployment_monitoring(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = deployment_get(pk=pk)
    try:
        window = window_get(request.GET.get("window"), start=request.GET.get("start"), end=request.GET.get("end"))
    except ApplicationError as exc:
        flash_error(request, exc)
        window = WINDOWS["1h"]
    now = datetime.now(UTC)
    context = {
        "deployment": deployment,
        "permissions": selectors.monitoring_permissions(deployment=deployment, user=request.user),
        "window": window,
        "windows": WINDOWS.values(),
        "plotly_version": plotly_js_version(),
        "latency": None,
        "latency_error": "",
        "drift": None,
        "drift_error": "",
        "figures": {},
        "sample_rate": f"{settings.SCORING_TELEMETRY_SAMPLE_RATE * 100:g}%",
        "version": None,
        "window_query": urlencode(
            {"window": window.key}
            if window.end is None
            else {"window": "custom", "start": (window.end - window.span).isoformat(), "end": window.end.isoformat()}
        ),
        "custom_start": f"{(window.end or now) - window.span:%Y-%m-%dT%H:%M}",
        "custom_end": f"{window.end or now:%Y-%m-%dT%H:%M}",
    }
    # the deployment's SLOs (apps/alerts): attainment, error budget left and burn rate, one read per SLO
    from apps.alerts.selectors import slo_statuses

    context["slos"] = slo_statuses(deployment=deployment)
    warn, alert = selectors.drift_thresholds_get(deployment=deployment)
    context["thresholds_form"] = DriftThresholdsForm(initial={"psi_warn": warn, "psi_alert": alert})
    context["baseline_form"] = BaselineUploadForm(initial={"version": selectors.monitored_version(deployment)})
    context["traffic_baseline_form"] = TrafficBaselineForm(prefix="traffic")
    monitored = selectors.monitored_version(deployment)
    context["earlier_baselines"] = (
        selectors.earlier_baselines_get(model_name=deployment.model_name, model_version=str(monitored))
        if monitored
        else []
    )
    context["inline_bytes"] = settings.MONITORING_BASELINE_INLINE_BYTES
    context["baseline_uploads"] = (
        selectors.baseline_uploads_recent(model_name=deployment.model_name, model_version=str(monitored))
        if monitored
        else []
    )
    try:
        latency = selectors.latency_series_get(deployment=deployment, window=window)
        context["latency"] = latency
        if latency.points:
            context["figures"]["latency"] = charts.latency_figure(latency)
    except ApplicationError as exc:
        context["latency_error"] = exc.message
    context["version"] = selectors.monitored_version(deployment)
    try:
        drift = selectors.deployment_drift_get(deployment=deployment, window=window)
        context["drift"] = drift
        if drift.times:
            context["figures"]["drift"] = charts.drift_heatmap_figure(drift)
            top = drift.features[0]
            if top.judged:  # "most drifting" only among features with enough rows to be judged
                context["figures"]["overlay"] = charts.feature_overlay_figure(top)
            if drift.prediction is not None and drift.prediction.rows:
                context["figures"]["prediction"] = charts.feature_overlay_figure(drift.prediction)
    except ApplicationError as exc:
        context["drift_error"] = exc.message
    return render(request, "monitoring/deployment_monitoring.html", context)


def _back(pk: int, request: HttpRequest) -> HttpResponse:
    window = request.POST.get("window", "")
    url = f"/deployments/{pk}/monitoring/" + (f"?window={window}" if window in WINDOWS else "")
    return redirect(url)


@require_POST
def drift_thresholds_set(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = deployment_get(pk=pk)
    form = DriftThresholdsForm(request.POST)
    try:
        if not form.is_valid():
            raise ApplicationError(form_errors(form))
        services.drift_thresholds_set(actor=request.user, deployment=deployment, **form.cleaned_data)
    except ApplicationError as exc:
        flash_error(request, exc, prefix="Thresholds not changed: ")
        return _back(pk, request)
    messages.success(request, "Drift thresholds saved.")
    return _back(pk, request)


@require_POST
def baseline_upload(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = deployment_get(pk=pk)
    form = BaselineUploadForm(request.POST, request.FILES)
    try:
        if not form.is_valid():
            raise ApplicationError(form_errors(form))
        upload = form.cleaned_data["file"]
        baseline = services.baseline_upload(
            actor=request.user,
            model_name=deployment.model_name,
            model_version=selectors.version_to_monitor(deployment, form.cleaned_data["version"]),
            data=upload.read(uploads.max_upload_bytes() + 1),
            filename=upload.name or "",
        )
    except ApplicationError as exc:
        flash_error(request, exc, prefix="Baseline not replaced: ")
        return _back(pk, request)
    if isinstance(baseline, BaselineUpload):
        messages.info(
            request,
            f"{baseline.filename or 'The file'} ({baseline.size:,} bytes) is being checked and profiled by a worker; "
            "its status is under Baseline uploads. The current baseline stays until it is done.",
        )
        return _back(pk, request)
    messages.success(request, f"Baseline of v{baseline.model_version} replaced from {baseline.rows} uploaded rows.")
    return _back(pk, request)


@require_POST
def baseline_restore(request: HttpRequest, pk: int, earlier: int) -> HttpResponse:
    deployment = deployment_get(pk=pk)
    try:
        baseline = services.baseline_restore(
            actor=request.user,
            model_name=deployment.model_name,
            model_version=selectors.version_to_monitor(deployment, request.POST.get("version") or None),
            earlier_id=earlier,
        )
    except ApplicationError as exc:
        flash_error(request, exc, prefix="Baseline not restored: ")
        return _back(pk, request)
    messages.success(request, f"Earlier baseline of v{baseline.model_version} restored ({baseline.rows} rows).")
    return _back(pk, request)


@require_POST
def baseline_from_traffic(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = deployment_get(pk=pk)
    form = TrafficBaselineForm(request.POST, prefix="traffic")
    try:
        if not form.is_valid():
            raise ApplicationError(form_errors(form))
        window = window_get(form.cleaned_data["window"], start=form.cleaned_data["start"], end=form.cleaned_data["end"])
        baseline = baselines.baseline_from_traffic(actor=request.user, deployment=deployment, window=window)
    except ApplicationError as exc:
        messages.error(request, f"Baseline not replaced: {exc.message}")
        return _back(pk, request)
    messages.success(
        request, f"Baseline of v{baseline.model_version} replaced from {baseline.rows} sampled rows of this traffic."
    )
    return _back(pk, request)
