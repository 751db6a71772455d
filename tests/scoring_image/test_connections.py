"""Hostile clients: slow headers, slow bodies, half-closed requests, idle keep-alive, oversized
declared bodies and too many connections are each cut off within a bounded time, and normal
scoring on the same server is unaffected."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from .helpers import ServerProcess
from .models import credit_rows

LIMITS = {
    "SCORING_HEADER_TIMEOUT_S": "1",
    "SCORING_BODY_TIMEOUT_S": "1",
    "SCORING_KEEPALIVE_TIMEOUT_S": "2",
    "SCORING_MAX_CONNECTIONS": "6",
    "SCORING_MAX_BODY_BYTES": "4096",
    "SCORING_TELEMETRY_SAMPLE_RATE": "0",
}


@pytest.fixture(scope="module")
def guarded(model_dir, log_dir):
    server = ServerProcess(model_dir, log_dir, env=LIMITS)
    yield server.wait_ready()
    server.stop()


def _connect(server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=6)
    return sock


def _read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    started = time.monotonic()
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data, time.monotonic() - started
        data += chunk


def _score_ok(server) -> None:
    rows = credit_rows(1).to_dict(orient="records")
    response = requests.post(server.url + "/invocations", json={"dataframe_records": rows}, timeout=10)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1


def test_a_client_trickling_headers_is_cut_off(guarded):
    sock = _connect(guarded)
    started = time.monotonic()
    sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")
    closed = False
    for _ in range(20):  # one header byte every 0.2 s: never done in time
        try:
            sock.sendall(b"X")
        except OSError:
            closed = True
            break
        time.sleep(0.2)
        sock.settimeout(0.01)
        try:
            if sock.recv(1024, socket.MSG_PEEK):
                break
        except (TimeoutError, BlockingIOError):
            pass
        sock.settimeout(6)
    sock.settimeout(6)
    data = b"" if closed else _read_until_closed(sock)[0]
    elapsed = time.monotonic() - started
    assert elapsed < 3.5, elapsed
    assert closed or data.startswith(b"HTTP/1.1 408"), data
    sock.close()
    _score_ok(guarded)


def test_a_client_trickling_its_body_is_cut_off(guarded):
    sock = _connect(guarded)
    sock.sendall(
        b'POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"da'
    )
    data, elapsed = _read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 408"), data
    assert b"body did not arrive in time" in data
    assert elapsed < 3.0, elapsed
    sock.close()


def test_a_half_sent_request_then_half_close_is_closed_at_once(guarded):
    sock = _connect(guarded)
    sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
    sock.shutdown(socket.SHUT_WR)
    data, elapsed = _read_until_closed(sock)
    assert data == b""
    assert elapsed < 0.5, elapsed  # closed on the FIN, not after a timeout (no CLOSE-WAIT socket left)
    sock.close()


def test_an_idle_keep_alive_connection_is_closed(guarded):
    session = requests.Session()
    rows = credit_rows(1).to_dict(orient="records")
    assert session.post(guarded.url + "/invocations", json={"dataframe_records": rows}, timeout=10).ok
    sock = socket.create_connection(("127.0.0.1", guarded.port), timeout=6)
    sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    first = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200"), first
    rest, elapsed = _read_until_closed(sock)
    assert rest == b""
    assert 1.5 < elapsed < 4.0, elapsed  # the 2 s keep-alive timeout, not the 1 s header timeout
    sock.close()
    session.close()


def test_an_oversized_declared_body_gets_413_before_it_is_sent(guarded):
    sock = _connect(guarded)
    sock.sendall(
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
    )
    started = time.monotonic()
    first = sock.recv(65536)
    assert time.monotonic() - started < 0.5
    assert first.startswith(b"HTTP/1.1 413"), first
    assert b"REQUEST_LIMIT_EXCEEDED" in first and b"4096" in first
    sock.close()


def test_connections_past_the_cap_get_503_and_scoring_resumes(guarded):
    held = [_connect(guarded) for _ in range(6)]
    time.sleep(0.1)
    extra = _connect(guarded)
    data, _ = _read_until_closed(extra)
    assert data.startswith(b"HTTP/1.1 503"), data
    assert b"Too many connections" in data
    for sock in held + [extra]:
        sock.close()
    time.sleep(0.2)
    _score_ok(guarded)


def test_shutdown_does_not_wait_for_a_stalled_client(model_dir, log_dir):
    """SIGTERM with one client stalled mid-request and one that half-closed mid-request: the server
    exits once the header timeout cuts the first, not after the 30 s drain timeout."""
    server = ServerProcess(model_dir, log_dir, env=LIMITS).wait_ready()
    stalled = _connect(server)
    stalled.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Le")
    gone = _connect(server)
    gone.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
    gone.shutdown(socket.SHUT_WR)
    started = time.monotonic()
    server.terminate()
    assert server.proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 4.0
    server.stop()
    stalled.close()
    gone.close()
