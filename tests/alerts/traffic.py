"""Telemetry for the alert tests, written as the scoring server writes it, with every window's totals known by
hand (``NOW`` is the fixed instant of ``tests/telemetry.py``)."""

from __future__ import annotations

from datetime import timedelta

from tests.telemetry import NOW, line, write_lines

__all__ = ["NOW", "write_burning", "write_requests", "path_of"]


def path_of(telemetry_dir, deployment):
    return telemetry_dir / f"{deployment.environment.name}--{deployment.name}.jsonl"


def write_requests(path, start, count: int, every: float, *, errors=lambda i: False, latency=lambda i: 10.0):
    """``count`` requests from ``start``, one every ``every`` seconds; request i fails (503) when ``errors(i)``."""
    write_lines(
        path,
        [
            line(start + timedelta(seconds=i * every), status=503 if errors(i) else 200, latency_ms=latency(i))
            for i in range(count)
        ],
    )


def write_burning(path) -> None:
    """Three stretches, totals per window ending at NOW (hand-computed):

    A: 1000 good requests, one a minute from NOW-48h (in 3 d only);
    B: 150 requests from NOW-59m, one per 20 s, every 10th a 503 (15 errors); those at or after NOW-30m are
       i = 87..149: 63 requests, 6 errors (i = 90, 100, ..., 140);
    C: 40 requests from NOW-4m, one per 5 s, the first 20 are 503s.

    window   requests  errors  error rate  burn rate at a 99% target
    5 min        40      20      0.5          50
    30 min      103      26      0.2524       25.24
    1 h         190      35      0.18421      18.42
    6 h         190      35      0.18421      18.42
    3 d        1190      35      0.029412      2.94
    """
    write_requests(path, NOW - timedelta(hours=48), 1000, 60)
    write_requests(path, NOW - timedelta(minutes=59), 150, 20, errors=lambda i: i % 10 == 0)
    write_requests(path, NOW - timedelta(minutes=4), 40, 5, errors=lambda i: i < 20)
