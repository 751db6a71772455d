"""A small HTTP/1.1 server on asyncio (uvloop) with httptools' parser.

Why not uvicorn + ASGI: per-request overhead matters when a whole batch of requests shares one
predict call, and we need TCP_NODELAY, SO_REUSEPORT across workers, in-order answers for pipelined
requests and a drain-on-SIGTERM that finishes in-flight requests. Keep-alive, pipelining, chunked
request bodies and ``Expect: 100-continue`` are supported; responses always carry Content-Length.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import httptools

__all__ = ["Request", "Connection", "HttpServer", "make_socket"]

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_perf = time.perf_counter


class Request:
    __slots__ = ("method", "path", "headers", "body", "t0", "request_id", "_conn", "_slot", "keep_alive", "answered")

    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes, t0: float, conn: Connection):
        self.method = method
        self.path = path
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
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None
        for req in self.pending:
            req.answered = True  # nobody to answer any more
        self.pending.clear()

    def eof_received(self) -> bool:
        # A client may half-close after sending its request: answer it before closing.
        if self.pending or self.in_message:
            self._eof = True
            return True
        return False

    def data_received(self, data: bytes) -> None:
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
        limit = self.server.max_body_bytes
        length = self._headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            self._too_large = True
        if self._headers.get("expect", "").lower() == "100-continue" and self.transport is not None:
            if self._too_large:
                # Refuse before the client sends the body; the connection cannot be reused.
                self._fail(413, f"Request body exceeds the limit of {limit} bytes".encode())
                return
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
        if self.transport is None or self._closing:
            return
        path = self._url.decode("latin-1")
        q = path.find("?")
        if q >= 0:
            path = path[:q]
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        req = Request(self.parser.get_method().decode("latin-1"), path, self._headers, body, self._t0, self)
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
                transport.close()
                return
        self.last_active = time.monotonic()
        if (self.server.draining or self._eof) and not self.pending and not self.in_message and transport is not None:
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
        if self.transport is None or self.pending or self.in_message:
            return
        if self.server.draining or now - self.last_active > idle_timeout:
            self.transport.close()


def _json_str(message: bytes) -> bytes:
    import orjson

    return orjson.dumps(message.decode("utf-8", "replace"))


class HttpServer:
    """Owns the listening socket and the live connections; ``handler`` answers requests."""

    def __init__(self, handler: Any, *, max_body_bytes: int, keepalive_timeout_s: float) -> None:
        self.handler = handler
        self.max_body_bytes = max_body_bytes
        self.keepalive_timeout_s = keepalive_timeout_s
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
        self._sweeper = self._loop.call_later(1.0, self._sweep)

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
