"""Pooled keep-alive HTTP/1.1 connections from the router to one backend (asyncio + httptools' response parser).

One request at a time per connection (no pipelining); idle connections wait in the pool for the next request.
A failure says whether the backend sent any byte of its answer: before that, the request can be sent again
elsewhere (a revision being stopped refuses or resets connections before answering).
"""

from __future__ import annotations

import asyncio
import socket

import httptools

__all__ = ["Pool", "UpstreamError", "UpstreamResponse"]

_CONNECT_TIMEOUT_S = 5.0


class UpstreamError(Exception):
    """The backend gave no complete answer. ``before_response``: not one byte of it arrived (safe to resend)."""

    def __init__(self, message: str, *, before_response: bool) -> None:
        super().__init__(message)
        self.before_response = before_response


class UpstreamResponse:
    __slots__ = ("status", "headers", "body", "keep_alive")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, keep_alive: bool) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive


class _Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[UpstreamResponse] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.received = False
        self.closed = False
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # bytes nobody asked for: the connection cannot be trusted any more
            self.close()
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"malformed answer: {exc}", before_response=False))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        what = f"connection lost ({exc})" if exc else "connection closed"
        self._fail(UpstreamError(what, before_response=not self.received))

    # ------------------------------------------------------------------ httptools callbacks
    def on_message_begin(self) -> None:
        self._headers = []
        self._body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_body(self, chunk: bytes) -> None:
        self._body.append(chunk)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        if self.timer is not None:
            self.timer.cancel()
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        answer = UpstreamResponse(self.parser.get_status_code(), self._headers, body, self.parser.should_keep_alive())
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)

    # ------------------------------------------------------------------ use
    def send(self, data: bytes, timeout: float) -> asyncio.Future[UpstreamResponse]:
        self.received = False
        self.waiter = waiter = self.loop.create_future()
        self.timer = self.loop.call_later(timeout, self._timed_out)
        assert self.transport is not None
        self.transport.write(data)
        return waiter

    def _timed_out(self) -> None:
        self._fail(TimeoutError())
        self.close()

    def _fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        if self.timer is not None:
            self.timer.cancel()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Keep-alive connections to one backend. ``request`` sends raw request bytes and returns the whole answer;
    a pooled connection the backend closed meanwhile is replaced by a fresh one, which is not a failure."""

    def __init__(self, host: str, port: int, *, max_idle: int = 256) -> None:
        self.host = host
        self.port = port
        self.max_idle = max_idle
        self.idle: list[_Connection] = []
        self.closed = False

    async def request(self, data: bytes, timeout: float) -> UpstreamResponse:
        conn = self._idle()
        if conn is not None:
            try:
                return await self._exchange(conn, data, timeout)
            except UpstreamError as exc:
                if not exc.before_response:
                    raise
        return await self._exchange(await self._connect(), data, timeout)

    def _idle(self) -> _Connection | None:
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                return conn
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop), self.host, self.port), _CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(f"cannot connect to {self.host}:{self.port}: {exc}", before_response=True) from None
        return conn

    async def _exchange(self, conn: _Connection, data: bytes, timeout: float) -> UpstreamResponse:
        try:
            answer = await conn.send(data, timeout)
        except BaseException:
            conn.close()
            raise
        if answer.keep_alive and not self.closed and len(self.idle) < self.max_idle:
            self.idle.append(conn)
        else:
            conn.close()
        return answer

    def close(self) -> None:
        """Close the idle connections now; busy ones close after their answer."""
        self.closed = True
        for conn in self.idle:
            conn.close()
        self.idle.clear()
