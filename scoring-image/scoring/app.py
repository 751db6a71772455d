"""Routes, readiness, dynamic micro-batching and the worker's lifecycle.

Micro-batching: validated requests queue up; one predict call takes everything queued (up to
``max_batch_rows`` rows) and runs on the event loop thread. While it runs, new requests wait in the
kernel's socket buffers; the next loop turn reads them all and they form the next batch. So the
batch size follows the load by itself: one row at a time when idle, dozens under load.

One refinement keeps concurrent clients in one batch instead of two alternating halves: when a
batch is about to start while other keep-alive connections that scored recently have no request
queued (they are reading their last answer and about to send the next), it waits for them, at most
``max_batch_wait_ms``, and starts as soon as they are all in. A lone client never waits, and by default
neither does a model whose one-row call costs less than the wait (a compiled model's cost is per row, so
splitting a batch in two costs it less than the wait would).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import threading
import time
import uuid
import warnings
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson

from . import __version__
from .config import Settings
from .errors import BadRequest, NotReady, PayloadTooLarge, RequestTimeout, ScoringError
from .http import HttpServer, Request, ignore_stop_signals, make_socket
from .model import LoadedModel, ModelError
from .protocol import media_type, parse_invocations, parse_predict
from .telemetry import SHADOW_HEADER

__all__ = ["ScoringApp", "run_worker"]

log = logging.getLogger("scoring")
_perf = time.perf_counter
_SCORING_ROUTES = ("/invocations", "/predict")
_RECENT_CLIENT_S = 1.0  # a keep-alive connection that scored this recently is expected to score again
_JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


@dataclass(slots=True)
class _Job:
    req: Request
    route: str
    columns: list[list[Any]]
    rows: int


_JSON = "application/json"


class ScoringApp:
    """The request handler behind ``HttpServer``; one per worker process."""

    def __init__(self, model_dir: str, settings: Settings) -> None:
        from .metrics import Metrics
        from .telemetry import Telemetry

        self.settings = settings
        self.model = LoadedModel(
            model_dir,
            validation=settings.validation,
            unknown_columns=settings.effective_unknown_columns,
            batching=settings.batching,
            runtime=settings.runtime,
            compiled_dir=settings.compiled_dir or None,
            compiled_threads=settings.effective_compiled_threads,
        )
        self.metrics = Metrics()
        self.loop = asyncio.get_running_loop()
        self.telemetry = Telemetry(
            path=settings.telemetry_path,
            sample_rate=settings.telemetry_sample_rate,
            max_rows=settings.telemetry_max_rows,
            deployment=settings.deployment,
            model_name=settings.model_name,
            model_version=settings.model_version,
            revision=settings.revision,
            loop=self.loop,
        )
        self.server = HttpServer(self, settings)
        self.state = "loading"  # loading -> ready -> draining; or failed
        self.queue: deque[_Job] = deque()
        self.queued_rows = 0
        self.last_tick = time.monotonic()
        self._batch_handle: asyncio.Handle | asyncio.TimerHandle | None = None
        self._wait_ms = 0.0  # set once the model is warm (batching_info)
        self._in_predict = False
        self._general_running = 0  # requests on the general path (in threads, as MLflow's server runs them)
        self.stopped: asyncio.Future[int] = self.loop.create_future()
        self._column_names: list[str] | None = None
        self._rid_prefix = f"{os.getpid():x}-{uuid.uuid4().hex[:8]}-"
        self._rid_counter = 0

    # ---------------------------------------------------------------- lifecycle
    def start_ticking(self) -> None:
        """Note every second that the event loop runs (the health thread's liveness answer reads it)."""
        self.last_tick = time.monotonic()
        self.loop.call_later(1.0, self.start_ticking)

    def start_loading(self) -> None:
        threading.Thread(target=self._load, name="model-loader", daemon=True).start()

    def _load(self) -> None:
        try:
            started = time.monotonic()
            self.model.load()
            self.model.warm_up()
            self._column_names = [s.name for s in self.model.specs] if self.model.specs else None
            log.info("model ready in %.1fs", time.monotonic() - started)
            self.loop.call_soon_threadsafe(self._mark_ready)
        except BaseException as exc:  # noqa: BLE001 - any load failure must end the worker visibly
            log.exception("model failed to load or warm up: %s", exc)
            self.loop.call_soon_threadsafe(self._mark_failed)

    def _mark_ready(self) -> None:
        # The model and mlflow's imports are long-lived: keep the cyclic GC from rescanning them.
        gc.collect()
        gc.freeze()
        compact_warning_filters()
        # A second, smaller call costs less than waiting unless a call has a fixed cost above the wait (auto).
        self._wait_ms = self.batching_info()["wait_ms"]
        if self.state == "loading":
            self.state = "ready"
            self.metrics.ready.set(1)

    def _mark_failed(self) -> None:
        self.state = "failed"
        if not self.stopped.done():
            self.stopped.set_result(3)

    def begin_shutdown(self) -> None:
        if self.state == "draining":
            return
        log.info(
            "SIGTERM: draining (delay %.1fs, timeout %.1fs)",
            self.settings.shutdown_delay_s,
            self.settings.shutdown_timeout_s,
        )
        self.state = "draining"
        self.metrics.ready.set(0)
        self.loop.create_task(self._shutdown())

    async def _shutdown(self) -> None:
        if self.settings.shutdown_delay_s:
            await asyncio.sleep(self.settings.shutdown_delay_s)  # let load balancers see "not ready"
        self.server.stop_accepting()
        self.server.drain()
        ok = await self.server.wait_closed(
            self.settings.shutdown_timeout_s, lambda: bool(self.queue) or self._in_predict or self._general_running > 0
        )
        self.telemetry.flush()
        if not ok:
            log.warning("shutdown timeout: closed connections with work still pending")
        if not self.stopped.done():
            self.stopped.set_result(0)

    # ---------------------------------------------------------------- routing
    def handle(self, req: Request) -> None:
        rid = req.headers.get("x-request-id")
        if rid and len(rid) <= 128:
            req.request_id = rid
        else:
            self._rid_counter += 1
            req.request_id = self._rid_prefix + str(self._rid_counter)
        path = req.path
        if path in _SCORING_ROUTES:
            if req.method != "POST":
                return self._simple(req, path, 405, {"error_code": "BAD_REQUEST", "message": f"{path} accepts POST"})
            return self._score(req, path)
        if req.method not in ("GET", "HEAD"):
            if path in _GET_ROUTES:
                return self._simple(req, path, 405, {"error_code": "BAD_REQUEST", "message": f"{path} accepts GET"})
        if path == "/health/live":
            return self._simple(req, path, 200, {"status": "alive"})
        if path in ("/health/ready", "/ping", "/health"):
            ready = self.state == "ready"
            return self._simple(req, path, 200 if ready else 503, {"status": self.state})
        if path == "/metrics":
            body = self.metrics.render()
            self.metrics.observe_request(path, 200, _perf() - req.t0)
            return req.respond(200, body, b"text/plain; version=0.0.4; charset=utf-8")
        if path == "/version":
            return self._simple(req, path, 200, self.version())
        return self._simple(req, "other", 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"No route {path}"})

    def version(self) -> dict[str, Any]:
        s = self.settings
        return {
            "deployment": s.deployment,
            "model_name": s.model_name,
            "model_version": s.model_version,
            "revision": s.revision,
            "image_digest": s.image_digest,
            "server_version": __version__,
            "model_run_id": self.model.info.get("run_id"),
            "model_uuid": self.model.info.get("model_uuid"),
            "mlflow_version": self.model.info.get("mlflow_version"),
            "flavors": self.model.info.get("flavors"),
            "runtime": self.model.runtime_info,
            "batching": self.batching_info(),
        }

    def batching_info(self) -> dict[str, Any]:
        """Whether concurrent requests are merged, and the window a batch may wait for more clients (ms)."""
        s, model = self.settings, self.model
        waits = model.batchable and s.max_batch_wait_ms > 0
        if waits and s.batch_wait_auto:
            waits = model.one_row_s * 1000.0 >= s.max_batch_wait_ms
        return {
            "merged": model.batchable,
            "max_rows": s.max_batch_rows,
            "wait_ms": s.max_batch_wait_ms if waits else 0.0,
            "one_row_ms": round(model.one_row_s * 1000.0, 3),
        }

    def _simple(self, req: Request, route: str, status: int, payload: dict[str, Any]) -> None:
        req.respond(status, orjson.dumps(payload, option=_JSON_OPTS))
        self.metrics.observe_request(route, status, _perf() - req.t0)

    def too_large(self, req: Request) -> None:
        self.handle_error(
            req,
            req.path if req.path in _SCORING_ROUTES else "other",
            PayloadTooLarge(f"Request body exceeds the limit of {self.settings.max_body_bytes} bytes"),
        )

    def protocol_error(self, req: Request, status: int) -> None:
        self.metrics.observe_request("other", status, _perf() - req.t0)

    # ---------------------------------------------------------------- scoring
    def _score(self, req: Request, route: str) -> None:
        req.conn.last_scored = time.monotonic()
        try:
            if self.state != "ready":
                if self.state == "loading":
                    raise NotReady("Model is still loading")
                if self.state != "draining":
                    raise NotReady(f"Server is {self.state}")
            ctype = req.headers.get("content-type")
            mime = media_type(ctype)
            body = req.body
            try:
                parsed = parse_predict(body, ctype) if route == "/predict" else parse_invocations(body, ctype)
            except BadRequest as exc:
                if self.model.strict or route != "/invocations" or mime != _JSON:
                    raise
                # A body MLflow may still accept (chat-style input, other shapes): its parser decides.
                return self._score_general(req, route, body, mime, exc)
            columns = self.model.fast_columns(parsed)
            if columns is not None:
                return self._enqueue(_Job(req, route, columns, parsed.rows))
            if route == "/predict":
                body = b'{"dataframe_records": ' + (b"[%s]" % body if body.lstrip()[:1] == b"{" else body) + b"}"
            self._score_general(req, route, body, mime, None)
        except ScoringError as exc:
            self.handle_error(req, route, exc)

    def _score_general(self, req: Request, route: str, body: bytes, mime: str, parse_error: BadRequest | None) -> None:
        """MLflow's own path, in a thread with MLflow's request timeout (504 when it passes)."""
        self._general_running += 1
        started = _perf()
        future = self.loop.run_in_executor(None, self.model.score_general, body, mime)
        task = asyncio.ensure_future(asyncio.wait_for(future, self.settings.request_timeout_s))
        task.add_done_callback(lambda t: self._general_done(t, req, route, started, parse_error))

    def _general_done(
        self,
        task: asyncio.Future[tuple[bytes, int]],
        req: Request,
        route: str,
        started: float,
        parse_error: BadRequest | None,
    ) -> None:
        self._general_running -= 1
        try:
            answer, rows = task.result()
        except TimeoutError:
            return self.handle_error(req, route, RequestTimeout("Request processing time exceeded limit"))
        except BadRequest as exc:  # MLflow cannot read it either: our message names the problem better
            return self.handle_error(req, route, parse_error or exc)
        except ScoringError as exc:
            return self.handle_error(req, route, exc)
        except Exception as exc:  # a bug, not the model: still answer
            log.exception("general path failed for request %s", req.request_id)
            return self.handle_error(req, route, ModelError(f"Internal error: {type(exc).__name__}: {exc}"))
        self.metrics.observe_batch(rows, 1, _perf() - started)
        self._respond_ok(req, route, answer, rows, rows, None, None)

    def _enqueue(self, job: _Job) -> None:
        self.queue.append(job)
        self.queued_rows += job.rows
        if self._batch_handle is None:
            if self._worth_waiting():
                self._batch_handle = self.loop.call_later(self._wait_ms / 1000.0, self._run_batch)
            else:
                self._batch_handle = self.loop.call_soon(self._run_batch)
        elif isinstance(self._batch_handle, asyncio.TimerHandle) and not self._worth_waiting():
            self._batch_handle.cancel()
            self._batch_handle = self.loop.call_soon(self._run_batch)

    def _worth_waiting(self) -> bool:
        """Whether a client that scored within the last second has no request queued yet."""
        if not self._wait_ms:
            return False
        if self.queued_rows >= self.settings.max_batch_rows:
            return False
        recent = time.monotonic() - _RECENT_CLIENT_S
        for conn in self.server.connections:
            if conn.last_scored > recent and not conn.pending and conn.transport is not None:
                return True
        return False

    def _take_batch(self) -> list[_Job]:
        limit = self.settings.max_batch_rows if self.model.batchable else 0
        jobs = [self.queue.popleft()]
        rows = jobs[0].rows
        while self.queue and rows + self.queue[0].rows <= limit:
            job = self.queue.popleft()
            jobs.append(job)
            rows += job.rows
        self.queued_rows -= rows
        return jobs

    def _run_batch(self) -> None:
        self._batch_handle = None
        if not self.queue:
            return
        jobs = self._take_batch()
        rows = sum(j.rows for j in jobs)
        started = _perf()
        self._in_predict = True
        results: list[Any]
        try:
            results = self.model.predict_batch([j.columns for j in jobs], [j.rows for j in jobs])
        except ScoringError as exc:
            # One bad request must not fail its neighbours: retry each on its own.
            results = [exc] if len(jobs) == 1 else [self._predict_alone(job) for job in jobs]
        except Exception as exc:  # a bug, not the model: still answer every request
            log.exception("batch of %d request(s) failed", len(jobs))
            results = [ModelError(f"Internal error: {type(exc).__name__}: {exc}")] * len(jobs)
        finally:
            self._in_predict = False
        took = _perf() - started
        self.metrics.observe_batch(rows, len(jobs), took)
        for job, result in zip(jobs, results, strict=True):
            if isinstance(result, ScoringError):
                self.handle_error(job.req, job.route, result)
            else:
                body, predictions = result
                self._respond_ok(job.req, job.route, body, job.rows, rows, job.columns, predictions)
        if self.queue:
            self._batch_handle = self.loop.call_soon(self._run_batch)

    def _predict_alone(self, job: _Job) -> Any:
        try:
            return self.model.predict_batch([job.columns], [job.rows])[0]
        except ScoringError as exc:
            return exc

    def _respond_ok(
        self,
        req: Request,
        route: str,
        body: bytes,
        rows: int,
        batch_rows: int,
        columns: list[list[Any]] | None,
        predictions: list[Any] | None,
    ) -> None:
        req.respond(200, body)
        latency = _perf() - req.t0
        self.metrics.observe_request(route, 200, latency)
        headers = req.headers
        self.telemetry.record(
            request_id=req.request_id,
            route=route,
            status=200,
            latency_s=latency,
            rows=rows,
            batch_rows=batch_rows,
            columns=self._column_names if columns is not None else None,
            inputs=columns,
            outputs=predictions,
            shadow=headers.get(SHADOW_HEADER) == "1",
            sample_key=req.request_id if headers.get("x-request-id") == req.request_id else "",
        )

    def handle_error(self, req: Request, route: str, exc: ScoringError) -> None:
        if not req.request_id:
            self._rid_counter += 1
            req.request_id = self._rid_prefix + str(self._rid_counter)
        message = exc.message
        if exc.status >= 500 and not isinstance(exc, NotReady):
            log.error("request %s failed: %s", req.request_id, message, exc_info=exc.__cause__ or exc)
            message = f"{message} (request id {req.request_id})"
        payload = {"error_code": exc.error_code, "message": message, "request_id": req.request_id}
        headers = [(b"retry-after", b"1")] if isinstance(exc, NotReady) else None
        req.respond(exc.status, orjson.dumps(payload), headers=headers)
        latency = _perf() - req.t0
        self.metrics.observe_request(route, exc.status, latency)
        if route in _SCORING_ROUTES:
            self.telemetry.record(
                request_id=req.request_id,
                route=route,
                status=exc.status,
                latency_s=latency,
                rows=0,
                error=message,
                shadow=req.headers.get(SHADOW_HEADER) == "1",
            )


def compact_warning_filters() -> None:
    """Replace the ~16 warning filters that numpy/scipy/mlflow imports leave with one, unless the
    operator chose filters (-W / PYTHONWARNINGS).

    Why: scikit-learn re-applies every active filter around each parallel task it dispatches, i.e.
    once per tree in a forest's predict (even with n_jobs=1). With 16 filters that is about a fifth of
    a 200-tree forest's predict time. Warnings still reach stderr, once per location ("default").
    """
    if sys.warnoptions:
        return
    warnings.resetwarnings()
    warnings.simplefilter("default")


_GET_ROUTES = ("/health/live", "/health/ready", "/ping", "/health", "/metrics", "/version")


async def _serve(model_dir: str, settings: Settings, reuse_port: bool) -> int:
    app = ScoringApp(model_dir, settings)
    sock = make_socket(settings.host, settings.port, reuse_port=reuse_port)
    await app.server.start(sock)
    log.info("listening on %s:%d (pid %d)", settings.host, sock.getsockname()[1], os.getpid())
    for sig in (signal.SIGTERM, signal.SIGINT):
        app.loop.add_signal_handler(sig, app.begin_shutdown)
    health = None
    if settings.health_port:
        from .health import HealthServer

        health = HealthServer(
            settings.host,
            settings.health_port,
            state=lambda: app.state,
            last_tick=lambda: app.last_tick,
            stall_s=settings.liveness_stall_s,
            reuse_port=reuse_port,
        )
        health.start()
        log.info("health probes on %s:%d", settings.host, health.port)
    app.start_ticking()
    app.start_loading()
    code = await app.stopped
    ignore_stop_signals(app.loop)
    if health is not None:
        health.stop()
    app.telemetry.close()
    log.info("stopped (exit %d)", code)
    return code


def run_worker(model_dir: str, settings: Settings, *, reuse_port: bool = False) -> int:
    """Serve until SIGTERM/SIGINT; returns the process exit code (3 if the model failed to load)."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a pinned dependency
        runner = asyncio.run
    return runner(_serve(model_dir, settings, reuse_port))
