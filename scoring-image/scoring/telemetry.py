"""One JSON object per line for every scoring request (schema: docs/telemetry.md).

Lines are buffered and written once per event-loop turn, in chunks of whole lines no larger than
PIPE_BUF where possible, so several workers sharing one stdout pipe do not interleave lines.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["Telemetry", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1
_PIPE_BUF = 4096


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
    ) -> None:
        """Queue one line. ``inputs`` are column value lists (in ``columns`` order), sampled here."""
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
        }
        if error is not None:
            line["error"] = error[:500]
        rate = self.sample_rate
        if rate > 0.0 and (rate >= 1.0 or self._random() < rate) and inputs is not None and columns is not None:
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
