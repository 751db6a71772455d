"""One JSON object per line for every scoring request (schema: docs/telemetry.md).

Lines are buffered and written once per event-loop turn, in chunks of whole lines no larger than
PIPE_BUF where possible, so several workers sharing one stdout pipe do not interleave lines.

Sampling is decided by the request id when the client sent one (``sampled_by_id``), so that every server seeing the
same request (the live revision and its shadow, both sent it by the router with one ``X-Request-ID``) samples it or
not alike, and their outputs can be joined by ``request_id``; by chance otherwise.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["Telemetry", "SCHEMA_VERSION", "SHADOW_HEADER", "sampled_by_id"]

SCHEMA_VERSION = 1
SHADOW_HEADER = "x-modelplane-shadow"  # the router's mark on mirrored copies (router.py); "1" makes a shadow line
_PIPE_BUF = 4096
_SPAN = float(2**64)


def sampled_by_id(request_id: str, rate: float) -> bool:
    """Whether the request ``request_id`` is sampled at ``rate``: the first 8 bytes of its BLAKE2b digest, read as a
    big-endian number below ``rate * 2**64``. The same answer in every process (Python's ``hash`` is salted)."""
    digest = hashlib.blake2b(request_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * _SPAN


class Telemetry:
    def __init__(
        self,
        *,
        path: str,
        sample_rate: float,
        max_rows: int,
        deployment: str,
        model_name: str,
        model_version: str,
        revision: str,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self.max_rows = max_rows
        self._static = {
            "deployment": deployment,
            "model": model_name,
            "model_version": model_version,
            "revision": revision,
        }
        self._own_fd = path not in ("-", "")
        if self._own_fd:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        else:
            self._fd = 1
        self._buf: list[bytes] = []
        self._loop = loop
        self._scheduled = False
        self._random = random.random

    def record(
        self,
        *,
        request_id: str,
        route: str,
        status: int,
        latency_s: float,
        rows: int,
        batch_rows: int = 0,
        columns: list[str] | None = None,
        inputs: list[list[Any]] | None = None,
        outputs: list[Any] | None = None,
        error: str | None = None,
        shadow: bool = False,
        sample_key: str = "",
    ) -> None:
        """Queue one line. ``inputs`` are column value lists (in ``columns`` order), sampled here: by ``sample_key``
        (the client's request id) when given, else at random. ``shadow``: a mirrored copy whose answer no client
        sees."""
        now = time.time()
        line: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "type": "scoring_request",
            "time": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            **self._static,
            "request_id": request_id,
            "route": route,
            "status": status,
            "latency_ms": round(latency_s * 1000.0, 3),
            "rows": rows,
            "batch_rows": batch_rows,
            "sampled": False,
            "shadow": shadow,
        }
        if error is not None:
            line["error"] = error[:500]
        rate = self.sample_rate
        if (
            rate > 0.0
            and inputs is not None
            and columns is not None
            and (rate >= 1.0 or (sampled_by_id(sample_key, rate) if sample_key else self._random() < rate))
        ):
            keep = min(rows, self.max_rows)
            line["sampled"] = True
            line["inputs"] = [{c: col[i] for c, col in zip(columns, inputs, strict=True)} for i in range(keep)]
            if outputs is not None:
                line["outputs"] = outputs[:keep]
        self._buf.append(orjson.dumps(line, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE))
        if not self._scheduled:
            if self._loop is None:
                self.flush()
            else:
                self._scheduled = True
                self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._buf:
            return
        lines, self._buf = self._buf, []
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            if chunk and size + len(line) > _PIPE_BUF:
                self._write(b"".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            self._write(b"".join(chunk))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            view = view[written:]

    def close(self) -> None:
        self.flush()
        if self._own_fd:
            os.close(self._fd)
            self._own_fd = False
