"""The telemetry sample rate is one control-plane setting, passed to every scoring server the control plane starts."""

from __future__ import annotations

import pytest

from apps.deployments import pipeline

pytestmark = pytest.mark.django_db


def test_every_serving_spec_carries_the_sample_rate(deployment, settings):
    settings.SCORING_TELEMETRY_SAMPLE_RATE = 0.25
    revision = deployment.revisions.first()
    assert revision is not None
    assert pipeline.serving_spec(revision).env["SCORING_TELEMETRY_SAMPLE_RATE"] == "0.25"
