"""Issue 17 item 3: an uploaded baseline's columns are checked against the model version's signature (unknown and
missing required columns named in a 400), a file with more rows than a baseline needs is sampled, and the previous
baseline stays until a new one is valid."""

from __future__ import annotations

import pytest

from apps.accounts.models import AuditEvent
from apps.monitoring.models import Baseline
from apps.monitoring.uploads import columns_check
from apps.registry.types import ColumnSpec, Signature
from tests.faults.test_baseline_limits import _post
from tests.monitoring.frames import credit_inputs, credit_inputs_csv

pytestmark = pytest.mark.django_db


def _baseline():
    return Baseline.objects.get(model_name="credit-default", model_version="1")


def test_unknown_and_missing_columns_are_named_and_the_previous_baseline_is_kept(alice, deployment, registry):
    assert _post(alice, deployment, credit_inputs_csv(50), "ref.csv").status_code == 201
    before = _baseline()
    wrong = credit_inputs(50).drop(columns=["age", "credit_limit"]).assign(shoe_size=42, colour="red")
    response = _post(alice, deployment, wrong.to_csv(index=False).encode(), "ref.csv")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "columns_mismatch"
    assert "columns the model does not have: 'shoe_size', 'colour'" in body["detail"]
    assert "required columns missing: 'credit_limit', 'age'" in body["detail"]
    after = _baseline()
    assert (after.rows, after.profile, after.created_at) == (before.rows, before.profile, before.created_at)
    assert AuditEvent.objects.filter(action="monitoring.baseline_upload").count() == 1


def test_garbage_csv_is_refused_by_its_columns(alice, deployment, registry):
    response = _post(alice, deployment, b"hello world\nfoo bar\nbaz qux\n", "ref.csv")
    assert response.status_code == 400 and "'hello world'" in response.json()["detail"]
    assert not Baseline.objects.filter(source="upload").exists()


def test_the_prediction_column_is_allowed(alice, deployment, registry):
    frame = credit_inputs(60).assign(prediction=[0, 1] * 30)
    assert _post(alice, deployment, frame.to_csv(index=False).encode(), "ref.csv").status_code == 201
    assert _baseline().profile.get("prediction") is not None


def test_a_file_larger_than_a_baseline_needs_is_sampled(alice, deployment, registry, settings):
    settings.MONITORING_BASELINE_SAMPLE_ROWS = 200
    response = _post(alice, deployment, credit_inputs_csv(1000), "ref.csv")
    assert response.status_code == 201 and response.json()["rows"] == 200
    audit = AuditEvent.objects.get(action="monitoring.baseline_upload")
    assert (audit.data["rows"], audit.data["rows_in_file"], audit.data["columns_checked"]) == (200, 1000, True)


def test_without_a_signature_or_named_inputs_nothing_is_checked():
    columns_check(["anything"], None)
    tensor = Signature(inputs=[ColumnSpec(name=None, type="tensor")], outputs=[], params=[])
    columns_check(["anything"], tensor)
    optional = Signature(inputs=[ColumnSpec(name="a", type="long", required=False)], outputs=[], params=[])
    columns_check([], optional)
    with pytest.raises(Exception, match="columns the model does not have: 'b'"):
        columns_check(["a", "b"], optional)
