from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.alerts import charts, selectors, services
from apps.alerts.filtersets import AlertFilterSet
from apps.alerts.forms import AcknowledgeForm, AlertRuleForm, SilenceForm, SloForm
from apps.common.errors import ApplicationError
from apps.common.flash import flash_error
from apps.common.forms import form_errors
from apps.deployments.selectors import deployment_get, environment_list
from apps.monitoring.views import plotly_js_version


@require_GET
def alert_list(request: HttpRequest) -> HttpResponse:
    filterset = AlertFilterSet(request.GET, queryset=selectors.alert_list())
    alerts = filterset.qs[:200] if filterset.is_valid() else selectors.alert_list().none()
    return render(
        request,
        "alerts/alert_list.html",
        {"filter": filterset, "alerts": alerts, "environments": environment_list()},
    )


@require_GET
def alert_detail(request: HttpRequest, pk: int) -> HttpResponse:
    alert = selectors.alert_get(pk=pk)
    context = {
        "alert": alert,
        "permissions": selectors.alert_permissions(deployment=alert.deployment, user=request.user),
        "ack_form": AcknowledgeForm(),
        "silence_form": SilenceForm(initial={"rule": alert.rule_id}),
        "figure": None,
        "chart_error": "",
        "plotly_version": plotly_js_version(),
    }
    try:
        series = selectors.alert_metric_series(alert)
        if series.times:
            context["figure"] = charts.alert_figure(series)
        context["series"] = series
    except ApplicationError as exc:
        context["chart_error"] = exc.message
    return render(request, "alerts/alert_detail.html", context)


@require_POST
def alert_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    form = AcknowledgeForm(request.POST)
    try:
        if not form.is_valid():
            raise ApplicationError(form_errors(form))
        services.alert_acknowledge(actor=request.user, alert=pk, note=form.cleaned_data["note"])
    except ApplicationError as exc:
        flash_error(request, exc, prefix="Not acknowledged: ")
        return redirect("alerts:alert_detail", pk=pk)
    messages.success(request, f"Alert #{pk} acknowledged.")
    return redirect("alerts:alert_detail", pk=pk)


def _next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next", "")
    return target if target.startswith("/") and not target.startswith("//") else default


@require_POST
def silence_create(request: HttpRequest) -> HttpResponse:
    form = SilenceForm(request.POST)
    back = _next(request, reverse("alerts:alert_list"))
    try:
        if not form.is_valid():
            raise ApplicationError(form_errors(form))
        rule_id, deployment_id = form.cleaned_data["rule"], form.cleaned_data["deployment"]
        silence = services.silence_create(
            actor=request.user,
            rule=selectors.rule_get(pk=rule_id) if rule_id else None,
            deployment=deployment_get(pk=deployment_id) if deployment_id else None,
            until=form.until(),
            reason=form.cleaned_data["reason"],
        )
    except ApplicationError as exc:
        flash_error(request, exc, prefix="Not silenced: ")
        return redirect(back)
    messages.success(request, f"Silenced until {silence.until:%Y-%m-%d %H:%M} UTC.")
    return redirect(back)


@require_GET
def deployment_alerts(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = deployment_get(pk=pk)
    context = {
        "deployment": deployment,
        "permissions": selectors.alert_permissions(deployment=deployment, user=request.user),
        "slos": selectors.slo_statuses(deployment=deployment),
        "rules": selectors.rule_list().filter(deployment=deployment),
        "silences": selectors.silence_list(active_only=True).filter(deployment=deployment),
        "alerts": selectors.alert_list().filter(deployment=deployment)[:20],
        "slo_form": SloForm(),
        "rule_form": AlertRuleForm(),
        "silence_form": SilenceForm(initial={"deployment": deployment.pk}),
    }
    return render(request, "alerts/deployment_alerts.html", context)


def _back(pk: int) -> HttpResponse:
    return redirect("alerts:deployment_alerts", pk=pk)


@require_POST
def slo_create(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = deployment_get(pk=pk)
    form = SloForm(request.POST)
    try:
        if not form.is_valid():
            raise ApplicationError(form_errors(form))
        data = form.cleaned_data
        slo = services.slo_create(
            actor=request.user,
            deployment=deployment,
            kind=data["kind"],
            target=data["target"],
            period_days=data["period_days"],
            latency_threshold_ms=data["latency_threshold_ms"],
            min_requests=data["min_requests"] or 0,
        )
    except ApplicationError as exc:
        flash_error(request, exc, prefix="SLO not added: ")
        return _back(pk)
    messages.success(request, f"SLO added: {slo}, with its burn-rate alert.")
    return _back(pk)


@require_POST
def slo_delete(request: HttpRequest, pk: int) -> HttpResponse:
    slo = selectors.slo_get(pk=pk)
    try:
        services.slo_delete(actor=request.user, slo=slo)
    except ApplicationError as exc:
        flash_error(request, exc, prefix="SLO not deleted: ")
        return _back(slo.deployment_id)
    messages.success(request, "SLO deleted.")
    return _back(slo.deployment_id)


@require_POST
def rule_create(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = deployment_get(pk=pk)
    form = AlertRuleForm(request.POST)
    try:
        if not form.is_valid():
            raise ApplicationError(form_errors(form))
        data = form.cleaned_data
        services.alert_rule_create(
            actor=request.user,
            deployment=deployment,
            metric=data["metric"],
            threshold=data["threshold"],
            window_seconds=data["window_seconds"],
            for_seconds=data["for_seconds"],
            statistic=data["statistic"],
            min_requests=data["min_requests"] or 0,
            min_rows=data["min_rows"] or 0,
        )
    except ApplicationError as exc:
        flash_error(request, exc, prefix="Rule not added: ")
        return _back(pk)
    messages.success(request, "Alert rule added.")
    return _back(pk)


@require_POST
def rule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    rule = selectors.rule_get(pk=pk)
    try:
        services.alert_rule_delete(actor=request.user, rule=rule)
    except ApplicationError as exc:
        flash_error(request, exc, prefix="Rule not deleted: ")
        return _back(rule.deployment_id)
    messages.success(request, "Alert rule deleted.")
    return _back(rule.deployment_id)
