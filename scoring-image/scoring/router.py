"""The stable endpoint of one deployment: a small reverse proxy in front of its revisions' scoring servers.

``python -m scoring route CONFIG --port P`` serves on the scoring server's own HTTP stack (``http.HttpServer``) and
forwards every request to one backend picked by weight (smooth weighted round-robin: 20 % is exactly 20 of every
100), over pooled keep-alive connections, and answers with the backend's answer. Every request carries an
``X-Request-ID`` (the client's, or a new one) to the backend and back. A mirror (shadow) copy of ``percent`` of the
requests served by the other backends goes to the mirror backend with ``X-Modelplane-Shadow: 1``, fire and forget:
its answer is read and dropped, it never delays the client, and beyond ``mirror_backlog`` copies in flight new ones
are dropped (counted).

A backend that refuses or resets the connection before any byte of its answer (a revision being stopped) gets the
request sent once more to another weighted backend, so weights can change and old revisions stop without a failed
request. The configuration (``routing.py``) is reloaded on SIGHUP, and when the file changes (checked every second,
so a missed signal only delays it). SIGTERM drains like the scoring server. ``/-/router/status`` reports the
configuration in force and counters per backend.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import uuid
from typing import Any

import orjson

from .config import Settings
from .http import HttpServer, Request, ignore_stop_signals, make_socket
from .routing import ConfigError, EveryPercent, RouteConfig, SmoothWeighted, parse_config
from .telemetry import SHADOW_HEADER
from .upstream import Pool, UpstreamError, UpstreamResponse

__all__ = ["Router", "run_router"]

log = logging.getLogger("scoring.router")

REVISION_HEADER = b"x-modelplane-revision"
_STATUS_PATH = "/-/router/status"
_CHECK_EVERY_S = 1.0
# Hop-by-hop headers, and those the router writes itself.
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "content-length",
        "x-request-id",
        SHADOW_HEADER,
    }
)
_NOT_RETURNED = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"content-type", b"x-request-id"}
)


def _counters() -> dict[str, int]:
    return {"requests": 0, "errors_5xx": 0, "failures": 0, "retried_elsewhere": 0}


class Router:
    """The request handler behind ``HttpServer``: one per router process."""

    def __init__(self, config_path: str, settings: Settings, *, timeout_s: float, mirror_backlog: int) -> None:
        self.config_path = config_path
        self.timeout_s = timeout_s
        self.mirror_backlog = mirror_backlog
        self.loop = asyncio.get_running_loop()
        self.server = HttpServer(self, settings)
        self.config = RouteConfig(backends={}, urls={}, weights={})
        self.picker = SmoothWeighted({})
        self.mirror_gate = EveryPercent(0)
        self.pools: dict[tuple[str, int], Pool] = {}
        self.stats: dict[str, dict[str, int]] = {}
        self.mirrors = {"sent": 0, "answered": 0, "failed": 0, "dropped": 0, "in_flight": 0}
        self.reloads = {"done": 0, "failed": 0, "last_error": ""}
        self.loaded_at = 0.0
        self.in_flight = 0
        self.draining = False
        self.stopped: asyncio.Future[int] = self.loop.create_future()
        self._file_key: tuple[int, int, int] | None = None
        self._rid_prefix = f"rt{os.getpid():x}-{uuid.uuid4().hex[:8]}-"
        self._rid_counter = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._mirror_tasks: set[asyncio.Task[None]] = set()

    # ---------------------------------------------------------------- configuration
    def reload(self) -> bool:
        """Read the configuration file; keep the one in force when the file cannot be used. True if it changed."""
        try:
            stat = os.stat(self.config_path)
            with open(self.config_path, "rb") as handle:
                data = handle.read()
            config = parse_config(data)
        except (OSError, ConfigError) as exc:
            self.reloads["failed"] += 1
            self.reloads["last_error"] = str(exc)
            log.error("configuration %s not applied: %s", self.config_path, exc)
            return False
        self._file_key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if config.digest == self.config.digest:
            return False
        old = self.config
        self.config = config
        if config.weights != old.weights:
            self.picker = SmoothWeighted(config.weights)
        if (config.mirror_to, config.mirror_percent) != (old.mirror_to, old.mirror_percent):
            self.mirror_gate = EveryPercent(config.mirror_percent)
        wanted = set(config.backends.values())
        for address in [a for a in self.pools if a not in wanted]:
            self.pools.pop(address).close()
        for label in config.backends:
            self.stats.setdefault(label, _counters())
        self.reloads["done"] += 1
        self.reloads["last_error"] = ""
        self.loaded_at = time.time()
        log.info("configuration applied: %s", orjson.dumps(config.as_dict()).decode())
        return True

    def watch(self) -> None:
        """Reload when the file changed (a missed SIGHUP is then harmless); reschedules itself."""
        try:
            stat = os.stat(self.config_path)
            key: tuple[int, int, int] | None = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except OSError:
            key = None
        if key is not None and key != self._file_key:
            self.reload()
        self.loop.call_later(_CHECK_EVERY_S, self.watch)

    # ---------------------------------------------------------------- requests
    def handle(self, req: Request) -> None:
        if req.path.startswith("/-/router/"):
            return self._own(req)
        rid = req.headers.get("x-request-id")
        if not rid or len(rid) > 128:
            self._rid_counter += 1
            rid = self._rid_prefix + str(self._rid_counter)
        req.request_id = rid
        label = self.picker.pick()
        if label is None:
            return self._error(req, 503, "TEMPORARILY_UNAVAILABLE", "No revision serves this deployment now")
        config = self.config
        mirrored = config.mirror_to != "" and label != config.mirror_to and self.mirror_gate.take()
        data, shadow = self._encode(req, rid, mirrored)
        self.in_flight += 1
        task = self.loop.create_task(self._forward(req, label, data))
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)
        if shadow is not None:
            self._mirror(config.mirror_to, shadow)

    def _encode(self, req: Request, rid: str, mirrored: bool) -> tuple[bytes, bytes | None]:
        """The request as the backend gets it, and (when it may be mirrored) the shadow copy."""
        method = "GET" if req.method == "HEAD" else req.method  # the answer's body is dropped for HEAD by our server
        lines = [f"{method} {req.target} HTTP/1.1\r\n"]
        for name, value in req.headers.items():
            if name not in _NOT_FORWARDED:
                lines.append(f"{name}: {value}\r\n")
        lines.append(f"x-request-id: {rid}\r\ncontent-length: {len(req.body)}\r\n")
        head = "".join(lines).encode("latin-1")
        data = head + b"\r\n" + req.body
        shadow = head + b"x-modelplane-shadow: 1\r\n\r\n" + req.body if mirrored else None
        return data, shadow

    async def _forward(self, req: Request, label: str, data: bytes) -> None:
        try:
            answer = await self._send(label, data)
            if isinstance(answer, UpstreamError) and answer.before_response:
                other = self._elsewhere(label)
                if other is not None:
                    log.warning("%s gave no answer (%s); request %s goes to %s", label, answer, req.request_id, other)
                    self.stats[label]["retried_elsewhere"] += 1
                    label = other
                    answer = await self._send(label, data)
        except TimeoutError:
            return self._error(req, 504, "GATEWAY_TIMEOUT", f"Revision {label} did not answer in {self.timeout_s:g} s")
        finally:
            self.in_flight -= 1
        if isinstance(answer, UpstreamError):
            return self._error(req, 502, "BAD_GATEWAY", f"Revision {label} gave no answer: {answer}")
        counters = self.stats[label]
        counters["requests"] += 1
        if answer.status >= 500:
            counters["errors_5xx"] += 1
        content_type = b"application/json"
        headers = [(REVISION_HEADER, label.encode("latin-1"))]
        for name, value in answer.headers:
            if name == b"content-type":
                content_type = value
            elif name not in _NOT_RETURNED:
                headers.append((name, value))
        req.respond(answer.status, answer.body, content_type, headers)

    async def _send(self, label: str, data: bytes) -> UpstreamResponse | UpstreamError:
        """The backend's answer, or why there is none (counted as the backend's failure)."""
        address = self.config.backends.get(label)
        try:
            if address is None:  # the configuration changed since the pick
                raise UpstreamError("it left the configuration", before_response=True)
            pool = self.pools.get(address)
            if pool is None:
                pool = self.pools[address] = Pool(*address)
            return await pool.request(data, self.timeout_s)
        except UpstreamError as exc:
            self.stats.setdefault(label, _counters())["failures"] += 1
            return exc

    def _elsewhere(self, failed: str) -> str | None:
        """Where a request the backend ``failed`` could not take goes instead: picked by weight in the configuration
        in force now (it may have changed meanwhile); never the failed backend, never one without weight (a
        shadow's answers must not reach clients)."""
        picker = self.picker
        if not any(label != failed for label in picker.labels):
            return None
        label = picker.pick()
        while label == failed:
            label = picker.pick()
        return label

    def _mirror(self, label: str, data: bytes) -> None:
        if self.mirrors["in_flight"] >= self.mirror_backlog:
            self.mirrors["dropped"] += 1
            return
        self.mirrors["sent"] += 1
        self.mirrors["in_flight"] += 1
        task = self.loop.create_task(self._shadow(label, data))
        self._mirror_tasks.add(task)
        task.add_done_callback(self._mirror_tasks.discard)

    async def _shadow(self, label: str, data: bytes) -> None:
        try:
            answer = await self._send(label, data)
        except TimeoutError:
            answer = None
        finally:
            self.mirrors["in_flight"] -= 1
        self.mirrors["answered" if isinstance(answer, UpstreamResponse) else "failed"] += 1

    def _error(self, req: Request, status: int, code: str, message: str) -> None:
        payload = {"error_code": code, "message": message, "request_id": req.request_id}
        headers = [(b"retry-after", b"1")] if status == 503 else None
        req.respond(status, orjson.dumps(payload), headers=headers)

    def _own(self, req: Request) -> None:
        if req.path != _STATUS_PATH:
            return self._error(req, 404, "ENDPOINT_NOT_FOUND", f"No route {req.path}")
        if req.method not in ("GET", "HEAD"):
            return self._error(req, 405, "BAD_REQUEST", f"{req.path} accepts GET")
        req.respond(200, orjson.dumps(self.status()))

    def status(self) -> dict[str, Any]:
        config = self.config
        return {
            "config": config.as_dict(),
            "digest": config.digest,
            "config_path": self.config_path,
            "loaded_at": self.loaded_at,
            "reloads": dict(self.reloads),
            "backends": {
                label: {"url": config.urls.get(label, ""), "weight": config.weights.get(label, 0), **counters}
                for label, counters in self.stats.items()
            },
            "mirror": {"to": config.mirror_to, "percent": config.mirror_percent, **self.mirrors},
            "in_flight": self.in_flight,
            "draining": self.draining,
            "pid": os.getpid(),
        }

    def too_large(self, req: Request) -> None:
        self._error(req, 413, "REQUEST_LIMIT_EXCEEDED", "Request body exceeds the limit")

    def protocol_error(self, req: Request, status: int) -> None:
        return None

    # ---------------------------------------------------------------- lifecycle
    def begin_shutdown(self, timeout_s: float) -> None:
        if self.draining:
            return
        log.info("SIGTERM: draining (timeout %.1fs)", timeout_s)
        self.draining = True
        self.loop.create_task(self._shutdown(timeout_s))

    async def _shutdown(self, timeout_s: float) -> None:
        self.server.stop_accepting()
        self.server.drain()
        ok = await self.server.wait_closed(timeout_s, lambda: self.in_flight > 0)
        if not ok:
            log.warning("shutdown timeout: closed connections with requests still in flight")
        for task in list(self._mirror_tasks):
            task.cancel()
        for pool in self.pools.values():
            pool.close()
        if not self.stopped.done():
            self.stopped.set_result(0)


async def _route(config_path: str, settings: Settings, timeout_s: float, mirror_backlog: int) -> int:
    router = Router(config_path, settings, timeout_s=timeout_s, mirror_backlog=mirror_backlog)
    if not router.reload():
        log.error("cannot start without a usable configuration")
        return 2
    sock = make_socket(settings.host, settings.port)
    await router.server.start(sock)
    log.info("routing on %s:%d (pid %d)", settings.host, sock.getsockname()[1], os.getpid())
    router.loop.add_signal_handler(signal.SIGHUP, router.reload)
    for sig in (signal.SIGTERM, signal.SIGINT):
        router.loop.add_signal_handler(sig, router.begin_shutdown, settings.shutdown_timeout_s)
    router.loop.call_later(_CHECK_EVERY_S, router.watch)
    code = await router.stopped
    ignore_stop_signals(router.loop)
    log.info("stopped (exit %d)", code)
    return code


def run_router(config_path: str, settings: Settings, *, timeout_s: float = 120.0, mirror_backlog: int = 64) -> int:
    """Route until SIGTERM/SIGINT; returns the exit code (2: the configuration cannot be used)."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a pinned dependency
        runner = asyncio.run
    return runner(_route(config_path, settings, timeout_s, mirror_backlog))
