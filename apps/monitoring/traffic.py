"""Demo traffic: requests built from a model version's reference data (optionally shifted) sent to a live local
deployment, so the monitoring page has something to show. Loopback endpoints only, bounded in count and time."""

from __future__ import annotations

import ipaddress
import json
import math
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from apps.common.errors import ApplicationError
from apps.monitoring.drift import PREDICTION

__all__ = [
    "MAX_RATE",
    "MAX_SECONDS",
    "MAX_REQUESTS",
    "MAX_CONCURRENCY",
    "default_concurrency",
    "loopback_endpoint",
    "shift_frame",
    "TrafficReport",
    "send",
]

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
    rate: float = 0.0  # asked for, after the caps
    concurrency: int = 1
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def achieved_rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def median_ms(self) -> float:
        return float(np.median(self.latencies_ms)) if self.latencies_ms else 0.0

    @property
    def fastest_ms(self) -> float:
        """The fastest answer: about what one costs when nothing queues on the server."""
        return min(self.latencies_ms) if self.latencies_ms else 0.0

    def shortfall(self) -> str:
        """Why fewer requests per second went out than asked (empty when at least 90% did), in words a person
        can act on. Each sender waits for its answer, so ``concurrency`` senders at a median latency of ``m`` ms
        sustain about ``concurrency * 1000 / m`` requests per second: too few senders for the latency -> more
        senders; answers slowing down as senders were added (median well above the fastest) -> the scoring
        server is saturated and more senders would only queue."""
        if self.rate <= 0 or self.achieved_rate >= 0.9 * self.rate:
            return ""
        reached = f"reached {self.achieved_rate:.1f} of {self.rate:g} req/s"
        if not self.latencies_ms:
            return f"{reached}: no answers to time"
        capacity = self.concurrency * 1000 / self.median_ms if self.median_ms else float("inf")
        if self.concurrency > 1 and self.median_ms > 2 * self.fastest_ms:
            return (
                f"{reached}: the scoring server is the limit; its answers slowed from {self.fastest_ms:.0f} ms to a "
                f"median {self.median_ms:.0f} ms as {self.concurrency} concurrent senders queued on it (more senders "
                "would only queue longer; scale the deployment or lower --rate)"
            )
        if capacity < 0.9 * self.rate:
            needed = min(MAX_CONCURRENCY, math.ceil(self.rate * self.median_ms / 1000 * 1.25))
            advice = f"try --concurrency {needed}" if needed > self.concurrency else "at most 64 senders"
            return (
                f"{reached}: {self.concurrency} concurrent sender(s) at a median {self.median_ms:.0f} ms per answer "
                f"sustain about {capacity:.0f} req/s; {advice}"
            )
        return f"{reached}: the scoring server answered too slowly (median {self.median_ms:.0f} ms)"


MAX_CONCURRENCY = 64


def default_concurrency(rate: float) -> int:
    """Senders enough for ``rate`` if each answer takes up to ~100 ms: one per 10 req/s (150 req/s: 15)."""
    return min(MAX_CONCURRENCY, max(1, math.ceil(rate / 10)))


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
    concurrency: int | None = None,
) -> TrafficReport:
    """Send ``rate`` requests per second for ``seconds`` (both capped), each with random reference rows; a
    ``bad_share`` of them lack a column (the server refuses them: errors to see). Request ids start with ``label``.

    Requests go out on schedule from ``concurrency`` senders (``default_concurrency(rate)`` when None): one
    sender waiting for each answer in turn reaches only 1000/latency requests per second (~18 at 55 ms). When
    every sender is busy the schedule slips; the report says what was reached and why (``shortfall``)."""
    rate = min(max(rate, 0.01), MAX_RATE)
    seconds = min(max(seconds, 0.0), MAX_SECONDS)
    total = min(MAX_REQUESTS, max(1, int(rate * seconds)))
    workers = min(max(concurrency or default_concurrency(rate), 1), MAX_CONCURRENCY)
    records = _records(frame.drop(columns=[PREDICTION], errors="ignore"))  # an output, not a model input
    if not records:
        raise ApplicationError("The reference data has no rows.")
    rng = np.random.default_rng(seed)
    report = TrafficReport(rate=rate, concurrency=workers)
    lock = threading.Lock()
    free = threading.BoundedSemaphore(workers)
    progress_every = max(1, int(rate * 10))

    def one(i: int, body: bytes) -> None:
        request = urllib.request.Request(
            endpoint + "/invocations",
            data=body,
            headers={"Content-Type": "application/json", "X-Request-ID": f"{label}-{seed}-{i}"},
            method="POST",
        )
        status, started = None, time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
                response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            pass
        finally:
            free.release()
        with lock:
            report.latencies_ms.append((time.monotonic() - started) * 1000)
            if status is None:
                report.failures += 1
            else:
                report.statuses[status] += 1
            report.sent += 1
            if on_progress and report.sent % progress_every == 0:
                on_progress(report)

    began = time.monotonic()
    deadline = began + seconds + 5
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="traffic") as pool:
        for i in range(total):
            wait = began + i / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not free.acquire(timeout=max(deadline - time.monotonic(), 0.0)) or time.monotonic() > deadline:
                break
            rows = [records[j] for j in rng.integers(0, len(records), rows_per_request)]
            if bad_share and rng.random() < bad_share:
                rows = [dict(list(row.items())[1:]) for row in rows]  # the first column missing
            pool.submit(one, i, json.dumps({"dataframe_records": rows}).encode())
    report.seconds = time.monotonic() - began
    return report
