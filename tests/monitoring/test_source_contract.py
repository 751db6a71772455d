"""The contract every telemetry source keeps, run against each of them (the Azure one through the real SDK
over HTTPS against the local query endpoint), plus the getter that picks one from settings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.monitoring.sources import TelemetrySource, get_telemetry_source
from apps.monitoring.sources.azure_monitor import AzureMonitorTelemetrySource
from apps.monitoring.sources.base import SOURCES, SampledRows
from apps.monitoring.sources.local import LocalTelemetrySource
from apps.monitoring.types import BaselineProfile, DriftCounts, FeatureProfile, LatencyCounts
from tests.emulators.log_analytics import FakeCredential, LogAnalyticsEmulator
from tests.telemetry import NOW

pytestmark = pytest.mark.django_db

BASELINE = BaselineProfile(
    model_name="credit-default",
    model_version="1",
    rows=10,
    features=[
        FeatureProfile(name="age", kind="numeric", edges=[30.0], frequencies=[0.5, 0.5]),
        FeatureProfile(name="sex", kind="categorical", categories=["male"], frequencies=[0.5, 0.5]),
    ],
)


class SourceContract:
    """Subclasses provide a ``source`` fixture answering for a deployment without telemetry."""

    def test_is_a_registered_telemetry_source(self, source):
        assert isinstance(source, TelemetrySource)
        assert source.name in SOURCES and SOURCES[source.name].endswith(type(source).__name__)

    def test_no_telemetry_is_an_empty_latency_series(self, source, deployment):
        counts = source.latency_series(deployment, timedelta(hours=1), timedelta(minutes=1), end=NOW)
        assert isinstance(counts, LatencyCounts)
        assert counts.bins == [] and counts.revisions == [] and counts.warnings == []

    def test_no_telemetry_counts_nothing_for_every_feature(self, source, deployment):
        counts = source.drift_counts(deployment, timedelta(days=1), timedelta(minutes=15), BASELINE, end=NOW)
        assert isinstance(counts, DriftCounts)
        assert counts.counts == {"age": {}, "sex": {}}
        assert counts.prediction == {}

    def test_no_telemetry_totals_zero_in_every_window(self, source, deployment):
        windows = [timedelta(minutes=5), timedelta(hours=1)]
        totals = source.request_totals(deployment, windows, slow_above_ms=100.0, end=NOW)
        assert [(t.window, t.requests, t.errors, t.slow, t.p99) for t in totals] == [
            (timedelta(minutes=5), 0, 0, 0, None),
            (timedelta(hours=1), 0, 0, 0, None),
        ]

    def test_no_telemetry_is_zero_per_revision_and_nothing_compared(self, source, deployment):
        windows = source.revision_windows(deployment, start=NOW - timedelta(minutes=1), end=NOW, revisions=["r1"])
        assert [(w.revision, w.requests, w.errors, w.shadow, w.p99) for w in windows.values()] == [
            ("r1", 0, 0, 0, None)
        ]
        agreement = source.agreement(deployment, stable="r1", candidate="r2", start=NOW - timedelta(minutes=1), end=NOW)
        assert (agreement.compared, agreement.equal, agreement.max_abs_difference) == (0, 0, None)

    def test_no_telemetry_has_no_sampled_rows(self, source, deployment):
        rows = source.sampled_rows(deployment, start=NOW - timedelta(days=1), end=NOW, model_version="1", limit=10)
        assert isinstance(rows, SampledRows)
        assert len(rows) == 0 and rows.inputs.empty and len(rows.outputs) == 0


class TestLocalSource(SourceContract):
    @pytest.fixture
    def source(self, telemetry_dir):
        return LocalTelemetrySource(telemetry_dir=telemetry_dir)


class TestAzureMonitorSource(SourceContract):
    @pytest.fixture
    def source(self, tmp_path):
        emulator = LogAnalyticsEmulator(tmp_path).start()
        yield AzureMonitorTelemetrySource(
            workspace_id="ws", endpoint=emulator.url, credential=FakeCredential(), connection_verify=emulator.ca
        )
        emulator.stop()


def test_the_getter_builds_the_configured_source(settings, tmp_path):
    settings.TELEMETRY_SOURCE = "local"
    settings.TELEMETRY_SOURCE_OPTIONS = {"local": {}}
    settings.TELEMETRY_DIR = tmp_path
    assert isinstance(get_telemetry_source(), LocalTelemetrySource)
    assert get_telemetry_source().telemetry_dir == tmp_path
    settings.TELEMETRY_SOURCE_OPTIONS = {"azure_monitor": {"workspace_id": ""}}
    with pytest.raises(ImproperlyConfigured, match="AZURE_LOG_ANALYTICS_WORKSPACE_ID"):
        get_telemetry_source("azure_monitor")
    settings.TELEMETRY_SOURCE_OPTIONS = {
        "azure_monitor": {"workspace_id": "ws", "table": "ContainerLogV2 | take 1", "credential": FakeCredential()}
    }
    with pytest.raises(ImproperlyConfigured, match="TELEMETRY_AZURE_TABLE"):
        get_telemetry_source("azure_monitor")
    with pytest.raises(ImproperlyConfigured):
        get_telemetry_source("prometheus")
