"""Demo traffic: requests built from a model version's reference data (optionally shifted) sent to a live local
deployment, so the monitoring page has something to show. Loopback endpoints only, bounded in count and time."""

from __future__ import annotations

import ipaddress
import json
import math
import socket
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from apps.common.errors import ApplicationError
from apps.monitoring.drift import PREDICTION

__all__ = ["MAX_RATE", "MAX_SECONDS", "MAX_REQUESTS", "loopback_endpoint", "shift_frame", "TrafficReport", "send"]

MAX_RATE = 200.0  # requests per second
MAX_SECONDS = 3600
MAX_REQUESTS = 100_000


def loopback_endpoint(url: str) -> str:
    """``url`` without a trailing slash if its host is a loopback address; a domain error otherwise."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApplicationError(f"The deployment has no usable endpoint ({url!r}): is it live?")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 80)}
    except socket.gaierror:
        raise ApplicationError(f"The endpoint host {parts.hostname!r} does not resolve.") from None
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise ApplicationError(
            f"simulate_traffic only talks to local deployments; {parts.hostname} is not a loopback address."
        )
    return url.rstrip("/")


def shift_frame(frame: pd.DataFrame, features: list[str], *, strength: float = 1.5) -> pd.DataFrame:
    """Numeric features moved by ``strength`` standard deviations; categorical ones all set to their rarest value."""
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise ApplicationError(f"Unknown feature(s) {', '.join(missing)}: choose from {', '.join(frame.columns)}.")
    shifted = frame.copy()
    for name in features:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            std = float(column.std()) or 1.0
            moved = column + strength * std
            shifted[name] = moved.round().astype(column.dtype) if pd.api.types.is_integer_dtype(column) else moved
        else:
            counts = column.value_counts()
            if len(counts):
                shifted[name] = counts.index[-1]
    return shifted


def _records(frame: pd.DataFrame) -> list[dict]:
    records = json.loads(frame.to_json(orient="records", date_format="iso"))
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in records]


@dataclass
class TrafficReport:
    sent: int = 0
    statuses: Counter = field(default_factory=Counter)
    failures: int = 0
    seconds: float = 0.0


def send(
    *,
    endpoint: str,
    frame: pd.DataFrame,
    rate: float,
    seconds: float,
    rows_per_request: int = 1,
    seed: int = 0,
    timeout: float = 10.0,
    on_progress=None,
    bad_share: float = 0.0,
    label: str = "simulate",
) -> TrafficReport:
    """Send ``rate`` requests per second for ``seconds`` (both capped), each with random reference rows; a
    ``bad_share`` of them lack a column (the server refuses them: errors to see). Request ids start with ``label``."""
    rate = min(max(rate, 0.01), MAX_RATE)
    seconds = min(max(seconds, 0.0), MAX_SECONDS)
    total = min(MAX_REQUESTS, max(1, int(rate * seconds)))
    records = _records(frame.drop(columns=[PREDICTION], errors="ignore"))  # an output, not a model input
    if not records:
        raise ApplicationError("The reference data has no rows.")
    rng = np.random.default_rng(seed)
    report = TrafficReport()
    began = time.monotonic()
    deadline = began + seconds + 5
    for i in range(total):
        wait = began + i / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        if time.monotonic() > deadline:
            break
        rows = [records[j] for j in rng.integers(0, len(records), rows_per_request)]
        if bad_share and rng.random() < bad_share:
            rows = [dict(list(row.items())[1:]) for row in rows]  # the first column missing
        request = urllib.request.Request(
            endpoint + "/invocations",
            data=json.dumps({"dataframe_records": rows}).encode(),
            headers={"Content-Type": "application/json", "X-Request-ID": f"{label}-{seed}-{i}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
                report.statuses[response.status] += 1
        except urllib.error.HTTPError as exc:
            report.statuses[exc.code] += 1
        except OSError:
            report.failures += 1
        report.sent += 1
        if on_progress and report.sent % max(1, int(rate * 10)) == 0:
            on_progress(report)
    report.seconds = time.monotonic() - began
    return report
