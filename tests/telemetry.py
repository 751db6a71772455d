"""Telemetry lines as the scoring server writes them (one JSON object per line), for the monitoring tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime

__all__ = ["NOW", "line", "write_lines"]

# A fixed "now" so that bins and windows are exact.
NOW = datetime(2026, 11, 27, 3, 0, 0, tzinfo=UTC)


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
