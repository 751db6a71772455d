"""Health probes answered outside the event loop, on their own port (``SCORING_HEALTH_PORT``).

Why: predict calls run on the event loop thread, so a long batch under load delays every answer on the main
port, probes included; a kubelet probe with a 2 s timeout would then flap readiness and restart a busy but
healthy pod. This listener runs in its own thread (a plain blocking HTTP server): it needs the GIL only for the
microseconds an answer takes, which it gets at the next switch interval (5 ms) even while a predict call runs
Python code, and at once while ONNX Runtime or scikit-learn's compiled code has released the GIL.

- ``GET /health/live``: 200 while the event loop has run within ``SCORING_LIVENESS_STALL_S`` (it ticks every
  second); 503 once it has not, so a wedged worker is restarted, but a long batch is not.
- ``GET /health/ready``: 200 when the model is ready and the worker is not draining, else 503 (as on the main
  port). ``/ping`` and ``/health`` answer the same.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["HealthServer"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    reuse_port = False

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.reuse_port:  # several workers share the port, as they share the main one
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class HealthServer:
    """``state()`` returns the app's state ("loading", "ready", "draining", "failed"); ``last_tick()`` the
    monotonic time the event loop last ran."""

    def __init__(self, host: str, port: int, *, state: Any, last_tick: Any, stall_s: float, reuse_port: bool) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                status, payload = owner.answer(self.path.split("?", 1)[0])
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_GET  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - probes are not logged
                return

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("HealthHTTPServer", (_Server,), {"reuse_port": reuse_port, "address_family": family})
        self.server = server_class((host, port), Handler)
        self.port = self.server.server_address[1]
        self.state = state
        self.last_tick = last_tick
        self.stall_s = stall_s
        self._thread = threading.Thread(target=self.server.serve_forever, name="health", daemon=True)

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        if path == "/health/live":
            stalled = time.monotonic() - self.last_tick()
            if stalled > self.stall_s:
                return 503, {"status": "stalled", "event_loop_stalled_s": round(stalled, 1)}
            return 200, {"status": "alive"}
        if path in ("/health/ready", "/ping", "/health"):
            state = self.state()
            return (200 if state == "ready" else 503), {"status": state}
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"No route {path}"}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
