"""Prediction (output) drift: the baseline profiles the model's predictions, the sources count the sampled outputs
in the same bins, and the series carries it as its own row; checked against plain numpy on a known shift."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from apps.monitoring import charts, selectors
from apps.monitoring.drift import EPSILON, prediction_profile, profile_build
from apps.monitoring.sources import get_telemetry_source
from apps.monitoring.sources.azure_monitor import AzureMonitorTelemetrySource
from apps.monitoring.types import WINDOWS, BaselineProfile, FeatureProfile
from tests.emulators.log_analytics import FakeCredential, LogAnalyticsEmulator, table
from tests.telemetry import NOW, line, write_lines

pytestmark = pytest.mark.django_db

MINUTE = timedelta(minutes=1)


def numpy_psi(expected_shares, counts) -> float:
    e = np.clip(np.asarray(expected_shares, float) / np.sum(expected_shares), EPSILON, None)
    a = np.clip(np.asarray(counts, float) / np.sum(counts), EPSILON, None)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def _lines_with_outputs(rng, *, minutes: int, per_minute: int, positive_rate: float, proba_shift: float = 0.0):
    """Sampled lines of one row each: age as input, a class label (and nothing else) as output."""
    lines, labels = [], []
    for m in range(minutes):
        for i in range(per_minute):
            when = NOW - timedelta(minutes=minutes - m) + timedelta(seconds=i * 60 / per_minute)
            label = int(rng.random() < positive_rate)
            labels.append(label)
            lines.append(line(when, sampled=True, inputs=[{"age": float(rng.normal(40, 10))}], outputs=[label]))
    return lines, np.asarray(labels)


def test_labels_are_categories_and_probabilities_are_quantile_bins():
    rng = np.random.default_rng(1)
    labels = prediction_profile(pd.Series(rng.integers(0, 3, 1000)))
    assert labels.kind == "categorical" and sorted(labels.categories) == ["0", "1", "2"]
    proba = rng.beta(2, 5, 10_000)
    profile = prediction_profile(pd.Series(proba), bins=10)
    assert profile.kind == "numeric"
    assert profile.edges == pytest.approx(np.quantile(proba, np.linspace(0, 1, 11)[1:-1]).tolist())
    # one-field output rows count as their value; wider rows are not profiled
    assert prediction_profile(pd.Series([{"label": 1}, {"label": 0}, [1]])).categories == ["1", "0"]
    assert prediction_profile(pd.Series([{"a": 1, "b": 2}])) is None


def test_a_prediction_column_of_the_reference_data_is_the_output_profile_not_a_feature():
    frame = pd.DataFrame({"age": [30, 40, 50, 60], "prediction": [0, 0, 1, 0]})
    profile = profile_build(frame, model_name="m", model_version="1")
    assert [f.name for f in profile.features] == ["age"]
    assert profile.prediction.categories == ["0", "1"] and profile.prediction.frequencies == [0.75, 0.25, 0.0]
    again = BaselineProfile.from_json(model_name="m", model_version="1", data=profile.to_json())
    assert again.prediction == profile.prediction


def test_local_source_counts_outputs_and_the_series_matches_numpy(telemetry_dir, deployment, settings):
    settings.MONITORING_MIN_ROWS = 100
    rng = np.random.default_rng(11)
    reference_labels = (rng.random(20_000) < 0.2).astype(int)  # the baseline: 20% predicted defaults
    reference = pd.DataFrame({"age": rng.normal(40, 10, 20_000), "prediction": reference_labels})
    baseline = profile_build(reference, model_name="credit-default", model_version="1")
    lines, labels = _lines_with_outputs(rng, minutes=3, per_minute=200, positive_rate=0.5)  # drifted: 50%
    write_lines(telemetry_dir / "dev--credit-default.jsonl", lines)

    counts = get_telemetry_source().drift_counts(deployment, timedelta(hours=1), MINUTE, baseline, end=NOW)
    categories = baseline.prediction.categories  # by frequency: "0" then "1"
    expected_total = np.array([np.sum(labels == int(c)) for c in categories] + [0])
    assert np.sum(list(counts.prediction.values()), axis=0).tolist() == expected_total.tolist()
    assert len(counts.prediction) == 3 and all(sum(c) == 200 for c in counts.prediction.values())

    series = selectors.drift_series_get(deployment=deployment, window=WINDOWS["1h"], baseline=baseline, end=NOW)
    reference_shares = np.array([np.mean(reference_labels == int(c)) for c in categories] + [0.0])
    assert series.prediction is not None and series.prediction.name == "prediction"
    assert series.prediction.psi == pytest.approx(numpy_psi(reference_shares, expected_total), abs=1e-12)
    assert series.prediction.psi > 0.25 and series.prediction.level == "alert"
    assert [f.name for f in series.features] == ["age"] and series.features[0].level == "ok"
    assert len(series.prediction.cells) == 3
    first = series.prediction.cells[0]
    assert first.psi == pytest.approx(numpy_psi(reference_shares, first.counts), abs=1e-12)

    figure = charts.drift_heatmap_figure(series)
    assert figure["data"][0]["y"][-1] == charts.PREDICTION_LABEL  # the top row
    assert figure["data"][0]["z"][-1][0] == pytest.approx(first.psi)


def test_numeric_predictions_use_the_baselines_quantile_bins(telemetry_dir, deployment):
    rng = np.random.default_rng(5)
    reference = rng.beta(2, 5, 50_000)
    baseline = BaselineProfile(
        model_name="credit-default",
        model_version="1",
        rows=50_000,
        features=[],
        prediction=prediction_profile(pd.Series(reference), bins=10),
    )
    production = rng.beta(3, 4, 500)  # higher probabilities
    when = NOW - timedelta(minutes=2)
    write_lines(
        telemetry_dir / "dev--credit-default.jsonl",
        [line(when, sampled=True, inputs=[{}], outputs=[{"proba": float(p)}]) for p in production],
    )
    counts = get_telemetry_source().drift_counts(deployment, timedelta(hours=1), MINUTE, baseline, end=NOW)
    edges = np.quantile(reference, np.linspace(0, 1, 11)[1:-1])
    expected = np.bincount(np.searchsorted(edges, production, side="right"), minlength=10)
    assert counts.prediction == {when: expected.tolist()}


def test_azure_query_expands_outputs_beside_inputs_and_reads_the_prediction_back(tmp_path, deployment):
    emulator = LogAnalyticsEmulator(tmp_path).start()
    try:
        source = AzureMonitorTelemetrySource(
            workspace_id="w", endpoint=emulator.url, credential=FakeCredential(), connection_verify=emulator.ca
        )
        baseline = BaselineProfile(
            model_name="credit-default",
            model_version="1",
            rows=10,
            features=[FeatureProfile(name="age", kind="numeric", edges=[30.0], frequencies=[0.5, 0.5])],
            prediction=FeatureProfile(
                name="prediction", kind="categorical", categories=["0", "1"], frequencies=[0.8, 0.2, 0.0]
            ),
        )
        rows = [["2026-11-27T02:58:00Z", 0, 1, 9], ["2026-11-27T02:58:00Z", 1, 0, 4], ["2026-11-27T02:58:00Z", 1, 1, 6]]
        columns = [("t", "datetime"), ("f", "int"), ("b", "int"), ("n", "long")]
        emulator.answers.append((200, {"tables": [table(columns, rows)]}, {}))
        counts = source.drift_counts(deployment, timedelta(hours=1), MINUTE, baseline, end=NOW)
        query = emulator.requests[0]["body"]["query"]
    finally:
        emulator.stop()
    assert '| mv-expand row = m["inputs"], out = m["outputs"]' in query
    assert '| extend pred = case(gettype(out) == "dictionary"' in query
    assert 'pack("f", 1, "b", case(isnull(pred) or isempty(tostring(pred)), -1, tostring(pred) == "0", 0' in query
    (t,) = counts.prediction
    assert counts.prediction[t] == [4, 6, 0] and counts.counts["age"][t] == [0, 9]


def test_api_and_page_show_prediction_drift(api_client, client, carol, deployment, telemetry_dir, registry):
    from apps.monitoring.models import Baseline

    rng = np.random.default_rng(2)
    reference = pd.DataFrame({"age": rng.normal(40, 10, 5000), "prediction": (rng.random(5000) < 0.2).astype(int)})
    profile = profile_build(reference, model_name="credit-default", model_version="1")
    Baseline.objects.create(model_name="credit-default", model_version="1", profile=profile.to_json(), rows=5000)
    now = pd.Timestamp.now(tz="UTC").floor("min").to_pydatetime()
    lines = [
        line(now - timedelta(seconds=30 + i * 0.1), sampled=True, inputs=[{"age": 40.0}], outputs=[1])
        for i in range(150)
    ]
    write_lines(telemetry_dir / "dev--credit-default.jsonl", lines)
    body = api_client.get(f"/api/v1/deployments/{deployment.pk}/metrics/drift/?window=1h").json()
    assert body["prediction"]["name"] == "prediction" and body["prediction"]["rows"] == 150
    assert body["prediction"]["level"] == "alert" and body["prediction"]["bin_labels"] == ["0", "1", "(other)"]
    assert body["prediction"]["cells"][0]["counts"] == [0, 150, 0]
    client.force_login(carol)
    html = client.get(f"/deployments/{deployment.pk}/monitoring/").content.decode()
    assert 'data-feature="prediction"' in html and 'id="prediction-chart"' in html
    heatmap = json.loads(html.split('id="drift-figure" type="application/json">')[1].split("</script>")[0])
    assert heatmap["data"][0]["y"][-1] == charts.PREDICTION_LABEL


def test_without_predictions_in_the_baseline_the_page_says_how_to_get_them(
    client, carol, deployment, telemetry_dir, registry
):
    from apps.monitoring.services import baseline_from_frame

    rng = np.random.default_rng(7)
    inputs_only = pd.DataFrame({"age": rng.integers(20, 70, 500), "credit_limit": rng.integers(1, 9, 500) * 1e4})
    baseline_from_frame(model_name="credit-default", model_version="1", frame=inputs_only, source="upload")
    client.force_login(carol)
    html = client.get(f"/deployments/{deployment.pk}/monitoring/").content.decode()
    assert 'id="prediction-missing"' in html
