from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from apps.deployments.models import Deployment, Revision
from tests.deployments.conftest import environments, local_dirs, teardown_local, worker_env  # noqa: F401 - fixtures

# A fixed "now" so that bins and windows are exact.
NOW = datetime(2026, 11, 27, 3, 0, 0, tzinfo=UTC)


@pytest.fixture
def telemetry_dir(settings, tmp_path):
    settings.TELEMETRY_DIR = tmp_path / "telemetry"
    settings.TELEMETRY_SOURCE = "local"
    settings.TELEMETRY_SOURCE_OPTIONS = {"local": {"telemetry_dir": settings.TELEMETRY_DIR}}
    settings.TELEMETRY_DIR.mkdir()
    return settings.TELEMETRY_DIR


@pytest.fixture
def deployment(environments, alice) -> Deployment:  # noqa: F811
    d = Deployment.objects.create(
        environment=environments["dev"],
        model_name="credit-default",
        name="credit-default",
        status="live",
        endpoint_url="http://127.0.0.1:1",
        created_by=alice,
    )
    r1 = Revision.objects.create(deployment=d, number=1, model_version="1", status="superseded")
    r2 = Revision.objects.create(deployment=d, number=2, model_version="1", status="live")
    d.live_revision = r2
    d.save()
    assert r1.label == "r1"
    return d


def line(when: datetime, **fields) -> str:
    record = {
        "schema": 1,
        "type": "scoring_request",
        "time": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        "deployment": "credit-default",
        "model": "credit-default",
        "model_version": "1",
        "revision": "r2",
        "request_id": "x",
        "route": "/invocations",
        "status": 200,
        "latency_ms": 10.0,
        "rows": 1,
        "batch_rows": 1,
        "sampled": False,
    }
    record.update(fields)
    return json.dumps(record)


def write_lines(path, lines: list[str]) -> None:
    with path.open("a") as handle:
        for text in lines:
            handle.write(text + "\n")


__all__ = ["NOW", "line", "write_lines", "timedelta"]
