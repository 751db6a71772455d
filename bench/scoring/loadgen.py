"""A small closed-loop HTTP/1.1 load generator (asyncio + uvloop, keep-alive, raw sockets).

Each of ``concurrency`` connections sends one request, waits for the full answer, records the
latency and sends the next, for ``duration`` seconds after ``warmup`` seconds. Only 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

__all__ = ["LoadResult", "run_load"]


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        k = min(len(data) - 1, max(0, int(round(p / 100.0 * len(data) + 0.5)) - 1))
        return data[k]

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.latencies_ms) if self.latencies_ms else float("nan")


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            break
    if length:
        await reader.readexactly(length)
    return status


async def _client(host: str, port: int, request: bytes, stop_at: float, record_from: float, out: LoadResult) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    import socket

    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    perf = time.perf_counter
    try:
        while True:
            t0 = perf()
            if t0 >= stop_at:
                break
            writer.write(request)
            status = await _read_response(reader)
            t1 = perf()
            if t0 >= record_from:
                out.requests += 1
                out.latencies_ms.append((t1 - t0) * 1000.0)
                if status != 200:
                    out.errors += 1
    finally:
        writer.close()


async def _run(host: str, port: int, path: str, body: bytes, concurrency: int, duration: float, warmup: float):
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    result = LoadResult(0, 0, duration, [])
    start = time.perf_counter()
    record_from = start + warmup
    stop_at = record_from + duration
    await asyncio.gather(*(_client(host, port, request, stop_at, record_from, result) for _ in range(concurrency)))
    # The last requests may end after stop_at; count the real window.
    result.seconds = max(duration, time.perf_counter() - record_from) if result.requests else duration
    return result


def run_load(
    port: int, body: bytes, *, concurrency: int, duration: float, warmup: float = 1.0, path: str = "/invocations"
) -> LoadResult:
    import uvloop

    return uvloop.run(_run("127.0.0.1", port, path, body, concurrency, duration, warmup))
