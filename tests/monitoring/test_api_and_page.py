"""The REST series and the monitoring page, from a real telemetry file and the demo registry's reference data."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from apps.monitoring import views
from apps.monitoring.models import Baseline
from tests.emulators.log_analytics import FakeCredential, LogAnalyticsEmulator

pytestmark = pytest.mark.django_db


def _url(name: str, deployment, **query) -> str:
    url = reverse(f"monitoring-api:{name}", kwargs={"pk": deployment.pk})
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def test_api_needs_authentication(deployment):
    response = APIClient().get(_url("deployment_metrics_latency", deployment))
    assert response.status_code in (401, 403)
    assert APIClient().get(_url("deployment_metrics_drift", deployment)).status_code in (401, 403)


def test_api_bad_window_is_400_naming_it(api_client, deployment):
    response = api_client.get(_url("deployment_metrics_latency", deployment, window="2y"))
    assert response.status_code == 400
    assert "'2y'" in response.json()["detail"] and response.json()["window"] == "2y"
    assert api_client.get(_url("deployment_metrics_drift", deployment, window="x")).status_code == 400


def test_api_unknown_deployment_is_404(api_client, db):
    assert api_client.get("/api/v1/deployments/999999/metrics/latency/").status_code == 404


def test_api_latency_and_drift_series(api_client, deployment, traffic):
    latency = api_client.get(_url("deployment_metrics_latency", deployment, window="1h"))
    assert latency.status_code == 200, latency.content
    body = latency.json()
    assert body["window"] == "1h" and body["bin_seconds"] == 60
    assert [p["requests"] for p in body["points"]] == [150, 150]
    # 10..159 and 20..169 ms: nearest-rank p50 is the 75th value, p99 the 149th
    assert body["points"][0]["p50"] == 84.0 and body["points"][1]["p99"] == 168.0
    assert body["points"][0]["rps"] == pytest.approx(2.5)
    assert body["points"][0]["revision"] == "r2"

    drift = api_client.get(_url("deployment_metrics_drift", deployment, window="24h"))
    assert drift.status_code == 200, drift.content
    body = drift.json()
    assert body["model_version"] == "1" and len(body["features"]) == len(traffic.columns)
    top = body["features"][0]
    assert top["name"] == "age" and top["level"] == "alert" and top["psi"] > 0.25
    assert body["prediction"]["name"] == "prediction"  # the demo baseline profiles predictions too
    assert Baseline.objects.filter(model_name="credit-default", model_version="1").count() == 1


def test_api_telemetry_errors_are_502_not_500(api_client, deployment, settings, tmp_path):
    emulator = LogAnalyticsEmulator(tmp_path).start()
    try:
        emulator.default = (400, {"error": {"code": "BadArgumentError", "message": "bad query"}}, {})
        settings.TELEMETRY_SOURCE = "azure_monitor"
        settings.TELEMETRY_SOURCE_OPTIONS = {
            "azure_monitor": {
                "workspace_id": "ws",
                "endpoint": emulator.url,
                "credential": FakeCredential(),
                "connection_verify": emulator.ca,
            }
        }
        response = api_client.get(_url("deployment_metrics_latency", deployment))
        assert response.status_code == 502
        assert response.json()["code"] == "telemetry_error" and "bad query" in response.json()["detail"]
    finally:
        emulator.stop()


def test_page_shows_both_charts_and_the_ranked_table(carol_client, deployment, traffic):
    response = carol_client.get(reverse("monitoring:deployment_monitoring", kwargs={"pk": deployment.pk}))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="latency-figure" type="application/json"' in html
    assert 'id="drift-figure" type="application/json"' in html
    assert 'id="overlay-figure" type="application/json"' in html
    assert '<tr data-feature="age">' in html
    assert "cdn" not in html.lower()
    assert f"/monitoring/plotly-{views.plotly_js_version()}.min.js" in html
    figure = json.loads(html.split('id="latency-figure" type="application/json">')[1].split("</script>")[0])
    assert [t["name"] for t in figure["data"]][:3] == ["p50", "p95", "p99"]
    custom = carol_client.get(
        reverse("monitoring:deployment_monitoring", kwargs={"pk": deployment.pk}),
        {"window": "custom", "start": "2026-11-01T00:00", "end": "2026-11-01T06:00"},
    )
    assert custom.status_code == 200 and "2026-11-01 00:00 to 2026-11-01 06:00 UTC" in custom.content.decode()
    assert 'id="latency-empty"' in custom.content.decode()
    # the deployment page links here
    detail = carol_client.get(reverse("deployments:deployment_detail", kwargs={"pk": deployment.pk}))
    assert reverse("monitoring:deployment_monitoring", kwargs={"pk": deployment.pk}) in detail.content.decode()


def test_page_bad_window_and_source_error_are_shown(carol_client, deployment, settings, tmp_path):
    emulator = LogAnalyticsEmulator(tmp_path).start()
    try:
        emulator.default = (400, {"error": {"code": "BadArgumentError", "message": "no such table"}}, {})
        settings.TELEMETRY_SOURCE = "azure_monitor"
        settings.TELEMETRY_SOURCE_OPTIONS = {
            "azure_monitor": {
                "workspace_id": "ws",
                "endpoint": emulator.url,
                "credential": FakeCredential(),
                "connection_verify": emulator.ca,
            }
        }
        url = reverse("monitoring:deployment_monitoring", kwargs={"pk": deployment.pk}) + "?window=nope"
        response = carol_client.get(url)
        assert response.status_code == 200
        html = response.content.decode()
        assert "Unknown window &#x27;nope&#x27;" in html
        assert 'id="latency-error"' in html and "no such table" in html
    finally:
        emulator.stop()


def test_plotly_js_is_served_by_the_app_with_long_caching(carol_client):
    client = carol_client
    response = client.get(reverse("monitoring:plotly_js", kwargs={"version": views.plotly_js_version()}))
    assert response.status_code == 200
    assert "immutable" in response["Cache-Control"]
    assert b"plotly" in b"".join(response.streaming_content)[:2000].lower()
    assert client.get(reverse("monitoring:plotly_js", kwargs={"version": "0"})).status_code == 404


def test_api_custom_window(api_client, deployment, traffic):
    now = traffic.attrs["now"]  # the fixture's minute: the clock may have moved on to the next one since
    start, end = (now - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%MZ"), (now + timedelta(minutes=1)).isoformat()
    response = api_client.get(
        f"/api/v1/deployments/{deployment.pk}/metrics/latency/", {"window": "custom", "start": start, "end": end}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["window"] == "custom" and body["bin_seconds"] == 60
    assert [p["requests"] for p in body["points"]] == [150, 150]
    only_first = api_client.get(
        f"/api/v1/deployments/{deployment.pk}/metrics/latency/",
        {"window": "custom", "start": start, "end": (now - timedelta(minutes=1)).isoformat()},
    )
    assert [p["requests"] for p in only_first.json()["points"]] == [150]
    backwards = {"window": "custom", "start": end, "end": start}
    assert api_client.get(f"/api/v1/deployments/{deployment.pk}/metrics/drift/", backwards).status_code == 400
    missing = api_client.get(f"/api/v1/deployments/{deployment.pk}/metrics/latency/", {"window": "custom"})
    assert missing.status_code == 400 and "start" in missing.json()["detail"]
    garbage = api_client.get(
        f"/api/v1/deployments/{deployment.pk}/metrics/latency/", {"window": "custom", "start": "yesterday", "end": end}
    )
    assert garbage.status_code == 400 and "'yesterday'" in garbage.json()["detail"]


def test_custom_window_bins():
    from apps.monitoring.types import window_get

    assert window_get("custom", start="2026-11-01T00:00Z", end="2026-11-01T02:00Z").bin == timedelta(minutes=1)
    assert window_get("custom", start="2026-11-01T00:00", end="2026-11-02T00:00").bin == timedelta(minutes=15)
    assert window_get("custom", start="2026-11-01T00:00+00:00", end="2026-11-30T00:00+00:00").bin == timedelta(hours=6)
    with pytest.raises(Exception, match="31 days"):
        window_get("custom", start="2026-10-01T00:00Z", end="2026-11-30T00:00Z")
