"""A small HTTP/1.1 server on asyncio (uvloop) with httptools' parser.

Why not uvicorn + ASGI: per-request overhead matters when a whole batch of requests shares one
predict call, and we need TCP_NODELAY, SO_REUSEPORT across workers, in-order answers for pipelined
requests and a drain-on-SIGTERM that finishes in-flight requests. Keep-alive, pipelining, chunked
request bodies and ``Expect: 100-continue`` are supported; responses always carry Content-Length.

Hostile clients: a request's headers must arrive within ``header_timeout_s`` of its first byte (a
new connection must start one within that time too) and its body within ``body_timeout_s`` of the
headers, else 408 and close; idle keep-alive connections close after ``keepalive_timeout_s``; a
client that half-closes mid-request is closed at once; a declared ``Content-Length`` over the limit
is answered 413 before the body is read; past ``max_connections`` a new connection gets 503.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import httptools

__all__ = ["Request", "Connection", "HttpServer", "make_socket", "ignore_stop_signals"]

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_perf = time.perf_counter
_LINGER_S = 1.0


class Request:
    __slots__ = (
        "method",
        "path",
        "target",
        "headers",
        "body",
        "t0",
        "request_id",
        "_conn",
        "_slot",
        "keep_alive",
        "answered",
    )

    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes, t0: float, conn: Connection):
        self.method = method
        self.path = path
        self.target = path  # the request-target as sent (with its query string), for a proxy to forward
        self.headers = headers
        self.body = body
        self.t0 = t0
        self.request_id = ""
        self._conn = conn
        self._slot: list[Any] = [None]
        self.keep_alive = True
        self.answered = False

    @property
    def conn(self) -> Connection:
        return self._conn

    def respond(
        self,
        status: int,
        body: bytes,
        content_type: bytes = b"application/json",
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        if self.answered:
            return
        self.answered = True
        self._conn.answer(self, status, body, content_type, headers)


class Connection(asyncio.Protocol):
    """One client connection: parses requests, hands them to ``handler``, writes answers in order."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.pending: deque[Request] = deque()
        self.last_active = time.monotonic()
        self.last_scored = -1e9  # monotonic time of this connection's last scoring request
        self.in_message = False
        self.started = time.monotonic()  # when the current request's first byte (or the connection) arrived
        self.headers_at = 0.0  # when the current request's headers were complete; 0 while they are not
        self.served = False  # at least one request completed on this connection
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_len = 0
        self._too_large = False
        self._t0 = 0.0
        self._closing = False
        self._eof = False

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        if len(self.server.connections) >= self.server.max_connections:
            transport.write(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 90\r\n"
                b"connection: close\r\nretry-after: 1\r\n\r\n"
                b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "Too many connections; retry later"}'
            )
            self._closing = True
            transport.close()
            return
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None
        for req in self.pending:
            req.answered = True  # nobody to answer any more
        self.pending.clear()

    def eof_received(self) -> bool:
        # A client may half-close after sending its request: answer it before closing. A request
        # still incomplete can never complete: close now (no CLOSE-WAIT socket left behind).
        if self.pending and not self.in_message:
            self._eof = True
            return True
        return False

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return  # after a fatal answer (400/408/413): discard what the client still sends
        self.last_active = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, b"Protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            self._fail(400, f"Malformed HTTP request: {exc}".encode())

    # ------------------------------------------------------------------ httptools callbacks
    def on_message_begin(self) -> None:
        self.in_message = True
        self.started = time.monotonic()
        self.headers_at = 0.0
        self._t0 = _perf()
        self._url = b""
        self._headers = {}
        self._body = []
        self._body_len = 0
        self._too_large = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.headers_at = time.monotonic()
        limit = self.server.max_body_bytes
        length = self._headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            # Refuse before the client sends the body; the connection cannot be reused.
            self._too_large = True
            self._closing = True  # nothing after this on the connection is handled
            req = Request(self.parser.get_method().decode("latin-1"), self._path(), self._headers, b"", self._t0, self)
            req.keep_alive = False
            self.pending.append(req)
            self.server.handler.too_large(req)
            return
        if self._headers.get("expect", "").lower() == "100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        if self._too_large:
            return
        self._body_len += len(chunk)
        if self._body_len > self.server.max_body_bytes:
            self._too_large = True
            self._body = []
            return
        self._body.append(chunk)

    def on_message_complete(self) -> None:
        self.in_message = False
        self.served = True
        if self.transport is None or self._closing:
            return
        path = self._path()
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        req = Request(self.parser.get_method().decode("latin-1"), path, self._headers, body, self._t0, self)
        req.target = self._url.decode("latin-1")
        req.keep_alive = self.parser.should_keep_alive()
        self.pending.append(req)
        try:
            if self._too_large:
                req.keep_alive = False
                self.server.handler.too_large(req)
            else:
                self.server.handler.handle(req)
        except Exception:  # a bug in a handler must not kill the connection silently
            logging.getLogger("scoring").exception("unhandled error for %s %s", req.method, req.path)
            req.respond(500, b'{"error_code": "INTERNAL_ERROR", "message": "Internal server error"}')

    def _path(self) -> str:
        path = self._url.decode("latin-1")
        q = path.find("?")
        return path[:q] if q >= 0 else path

    # ------------------------------------------------------------------ answers
    def answer(
        self,
        req: Request,
        status: int,
        body: bytes,
        content_type: bytes,
        headers: list[tuple[bytes, bytes]] | None,
    ) -> None:
        close = not req.keep_alive or self.server.draining
        head = [
            b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
            % (status, _REASONS.get(status, "Unknown").encode(), content_type, len(body))
        ]
        if req.request_id:
            head.append(b"x-request-id: %s\r\n" % req.request_id.encode("latin-1", "replace"))
        if headers:
            for name, value in headers:
                head.append(b"%s: %s\r\n" % (name, value))
        if close:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        if req.method != "HEAD":
            head.append(body)
        req._slot[0] = (b"".join(head), close)
        self._flush()

    def _flush(self) -> None:
        transport = self.transport
        while self.pending and self.pending[0]._slot[0] is not None:
            data, close = self.pending.popleft()._slot[0]
            if transport is None:
                continue
            transport.write(data)
            if close:
                self._closing = True
                self.pending.clear()
                self._close_after_answer(transport)
                return
        self.last_active = time.monotonic()
        if self._eof and not self.pending and transport is not None:
            transport.close()
        elif self.server.draining and not self.pending and not self.in_message and transport is not None:
            transport.close()

    def _close_after_answer(self, transport: asyncio.Transport) -> None:
        """Close after a final answer. If the client may still be sending (a refused body), stop
        writing but keep reading (and discarding) for a moment, so the answer is not lost to a reset."""
        if self.in_message and transport.can_write_eof():
            transport.write_eof()
            asyncio.get_running_loop().call_later(_LINGER_S, transport.close)
        else:
            transport.close()

    def _fail(self, status: int, message: bytes) -> None:
        """A protocol-level error: answer it (after earlier pipelined answers) and close."""
        if self.transport is None or self._closing:
            return
        body = b'{"error_code": "BAD_REQUEST", "message": ' + _json_str(message) + b"}"
        if status == 413:
            body = b'{"error_code": "REQUEST_LIMIT_EXCEEDED", "message": ' + _json_str(message) + b"}"
        req = Request("", "", {}, b"", self._t0 or _perf(), self)
        req.keep_alive = False
        self.pending.append(req)
        self._closing = True  # nothing after this on the connection is handled
        req.respond(status, body)
        self.server.handler.protocol_error(req, status)

    def close_if_idle(self, now: float, idle_timeout: float) -> None:
        if self.transport is None or self._closing:
            return
        server = self.server
        if self.in_message:
            if not self.headers_at and now - self.started > server.header_timeout_s:
                self._fail(408, b"The request headers did not arrive in time")
            elif self.headers_at and now - self.headers_at > server.body_timeout_s:
                self._fail(408, b"The request body did not arrive in time")
            return
        if self.pending:
            return
        if not self.served and now - self.started > server.header_timeout_s:
            self.transport.close()  # connected but never sent a request
        elif server.draining or now - self.last_active > idle_timeout:
            self.transport.close()


def _json_str(message: bytes) -> bytes:
    import orjson

    return orjson.dumps(message.decode("utf-8", "replace"))


class HttpServer:
    """Owns the listening socket and the live connections; ``handler`` answers requests."""

    def __init__(self, handler: Any, settings: Any) -> None:
        self.handler = handler
        self.max_body_bytes: int = settings.max_body_bytes
        self.keepalive_timeout_s: float = settings.keepalive_timeout_s
        self.header_timeout_s: float = settings.header_timeout_s
        self.body_timeout_s: float = settings.body_timeout_s
        self.max_connections: int = settings.max_connections
        self._sweep_every = min(1.0, self.header_timeout_s / 4, self.body_timeout_s / 4, self.keepalive_timeout_s / 4)
        self.connections: set[Connection] = set()
        self.draining = False
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self, sock: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(lambda: Connection(self), sock=sock, backlog=2048)
        self._schedule_sweep()

    def _schedule_sweep(self) -> None:
        assert self._loop is not None
        self._sweeper = self._loop.call_later(self._sweep_every, self._sweep)

    def _sweep(self) -> None:
        now = time.monotonic()
        for conn in list(self.connections):
            conn.close_if_idle(now, self.keepalive_timeout_s)
        self._schedule_sweep()

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    def drain(self) -> None:
        """Stop reusing connections: idle ones close now, busy ones after their last answer."""
        self.draining = True
        now = time.monotonic()
        for conn in list(self.connections):
            conn.close_if_idle(now, 0.0)

    async def wait_closed(self, timeout: float, busy: Callable[[], bool]) -> bool:
        """Wait until no connection is left and ``busy()`` is false; True if that happened in time."""
        deadline = time.monotonic() + timeout
        while (self.connections or busy()) and time.monotonic() < deadline:
            self.drain()
            await asyncio.sleep(0.02)
        ok = not self.connections and not busy()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        return ok


def make_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def ignore_stop_signals(loop: asyncio.AbstractEventLoop) -> None:
    """Once a server has drained: SIGTERM/SIGINT are ignored while the process exits. Closing the loop would
    restore their default action, and a second SIGTERM (a supervisor's, a test's) would then kill the process
    mid-exit (status -15) instead of letting it end with its own exit code."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)
