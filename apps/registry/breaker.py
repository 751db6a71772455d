"""A circuit breaker for a registry that hangs: after ``REGISTRY_BREAKER_TIMEOUTS`` timed-out calls in a row,
page requests are answered "unavailable" at once for ``REGISTRY_BREAKER_SECONDS`` instead of each holding a web
thread for the whole HTTP timeout. Any answer from the registry closes it again. Per process and per registry."""

from __future__ import annotations

import threading
import time

from django.conf import settings

__all__ = ["TimeoutBreaker"]


class TimeoutBreaker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._timeouts = 0
        self._open_until = 0.0

    def seconds_open(self) -> float:
        """How much longer calls are refused without trying; 0 when they may go ahead."""
        with self._lock:
            return max(self._open_until - time.monotonic(), 0.0)

    def timed_out(self) -> None:
        with self._lock:
            self._timeouts += 1
            if self._timeouts >= settings.REGISTRY_BREAKER_TIMEOUTS:  # also a first try after the pause that hangs
                self._open_until = time.monotonic() + settings.REGISTRY_BREAKER_SECONDS

    def answered(self) -> None:
        with self._lock:
            self._timeouts = 0
            self._open_until = 0.0
