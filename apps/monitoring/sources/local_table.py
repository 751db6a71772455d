"""One telemetry file as columns, read incrementally: the local source's index.

Request lines become numpy columns (time, latency, status, revision, whether mirrored); the input rows of
sampled lines become one data frame (a column per input field) with the prediction of each row next to it; the
sampled lines themselves keep their request id and whole ``outputs``, to compare two revisions' predictions.
New bytes are parsed in chunks appended to the columns; the concatenated view is built once per change.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from apps.monitoring.drift import prediction_value
from apps.monitoring.sources.base import SampledRows

__all__ = ["TelemetryTable"]

_READ_BYTES = 64 * 2**20  # parse at most this much per chunk, to bound the memory of one read
_MAX_CHUNKS = 16


_SAMPLED = ("time", "revision", "request_id", "shadow", "outputs")


def _column(key: str, values: list) -> np.ndarray:
    if key == "time":
        return np.asarray(values, dtype=float)
    if key == "shadow":
        return np.asarray(values, dtype=bool)
    column = np.empty(len(values), dtype=object)  # outputs are lists: no nested array from np.asarray
    column[:] = values
    return column


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class _Chunk:
    """The columns of one parsed stretch of the file."""

    time: np.ndarray
    latency: np.ndarray
    status: np.ndarray
    revision: np.ndarray
    shadow: np.ndarray  # a mirrored copy of a request (``"shadow": true``), answered to no client
    row_time: np.ndarray
    row_version: np.ndarray
    row_revision: np.ndarray
    inputs: pd.DataFrame
    outputs: pd.Series
    sampled: dict[str, np.ndarray]  # per sampled line: time, revision, request_id, shadow, outputs (the list)

    @classmethod
    def parse(cls, data: bytes) -> tuple[_Chunk, int]:
        """The chunk of the complete lines in ``data``, and how many lines were unreadable."""
        time, latency, status, revision, shadow = [], [], [], [], []
        row_time, row_version, row_revision, inputs, outputs = [], [], [], [], []
        sampled: dict[str, list] = {key: [] for key in _SAMPLED}
        bad = 0
        for raw in data.splitlines():
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
                if line.get("type") != "scoring_request":
                    continue
                when = _epoch(line["time"])
            except (ValueError, KeyError, TypeError, AttributeError):
                bad += 1
                continue
            time.append(when)
            latency.append(float(line.get("latency_ms") or 0.0))
            status.append(int(line.get("status") or 0))
            revision.append(str(line.get("revision", "")))
            shadow.append(line.get("shadow") is True)
            if line.get("sampled"):
                rows = line.get("inputs") if isinstance(line.get("inputs"), list) else []
                outs = line.get("outputs") if isinstance(line.get("outputs"), list) else []
                version = str(line.get("model_version"))
                for key, value in zip(
                    _SAMPLED,
                    (when, revision[-1], str(line.get("request_id", "")), shadow[-1], line.get("outputs")),
                    strict=True,
                ):
                    sampled[key].append(value)
                for i, row in enumerate(rows):
                    if not isinstance(row, dict):
                        continue
                    row_time.append(when)
                    row_version.append(version)
                    row_revision.append(revision[-1])
                    inputs.append(row)
                    outputs.append(prediction_value(outs[i]) if i < len(outs) else None)
        chunk = cls(
            time=np.asarray(time, dtype=float),
            latency=np.asarray(latency, dtype=float),
            status=np.asarray(status, dtype=np.int64),
            revision=np.asarray(revision, dtype=object),
            shadow=np.asarray(shadow, dtype=bool),
            row_time=np.asarray(row_time, dtype=float),
            row_version=np.asarray(row_version, dtype=object),
            row_revision=np.asarray(row_revision, dtype=object),
            inputs=pd.DataFrame(inputs, index=range(len(inputs))) if inputs else pd.DataFrame(),
            outputs=pd.Series(outputs, dtype=object),
            sampled={key: _column(key, values) for key, values in sampled.items()},
        )
        return chunk, bad

    @classmethod
    def merge(cls, chunks: list[_Chunk]) -> _Chunk:
        """One chunk holding the lines of ``chunks``, in order."""
        if len(chunks) == 1:
            return chunks[0]
        if not chunks:
            return cls.parse(b"")[0]
        frames = [c.inputs for c in chunks if len(c.inputs)]
        return cls(
            time=np.concatenate([c.time for c in chunks]),
            latency=np.concatenate([c.latency for c in chunks]),
            status=np.concatenate([c.status for c in chunks]),
            revision=np.concatenate([c.revision for c in chunks]),
            shadow=np.concatenate([c.shadow for c in chunks]),
            row_time=np.concatenate([c.row_time for c in chunks]),
            row_version=np.concatenate([c.row_version for c in chunks]),
            row_revision=np.concatenate([c.row_revision for c in chunks]),
            inputs=pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(),
            outputs=pd.concat([c.outputs for c in chunks], ignore_index=True),
            sampled={key: np.concatenate([c.sampled[key] for c in chunks]) for key in _SAMPLED},
        )


@dataclass
class TelemetryTable:
    path: Path
    inode: int
    offset: int = 0  # bytes of complete lines read so far
    bad: int = 0
    chunks: list[_Chunk] = field(default_factory=list)
    _joined: _Chunk | None = None
    _derived: tuple | None = None

    @classmethod
    def refresh(cls, path: Path, table: TelemetryTable | None) -> TelemetryTable:
        """``table`` with the lines appended to ``path`` since, or a new table if the file was replaced or
        shrank. Raises FileNotFoundError (no file) or OSError (unreadable)."""
        with path.open("rb") as handle:
            stat = os.fstat(handle.fileno())
            if table is None or table.inode != stat.st_ino or stat.st_size < table.offset:
                table = cls(path=path, inode=stat.st_ino)
            if stat.st_size == table.offset:
                return table
            handle.seek(table.offset)
            pending = b""
            while data := handle.read(_READ_BYTES):
                data = pending + data
                complete = data.rfind(b"\n") + 1  # a last line without its newline is still being written
                pending = data[complete:]
                if not complete:
                    continue
                chunk, bad = _Chunk.parse(data[:complete])
                table.chunks.append(chunk)
                table.bad += bad
                table.offset += complete
                table._joined = None
        if len(table.chunks) > _MAX_CHUNKS:  # many small appends: one chunk again, so a join stays cheap
            table.chunks = [_Chunk.merge(table.chunks)]
        return table

    def _columns(self) -> _Chunk:
        joined = self._joined  # read once: a refresh in another thread may reset it meanwhile
        if joined is None:
            joined = self._joined = _Chunk.merge(list(self.chunks))
        return joined

    def requests(self) -> dict[str, np.ndarray]:
        """Columns of every request line: time (epoch seconds), latency, status, ``shadow`` (mirrored copies),
        ``revision`` (a code into ``revision_names``) and ``by_latency`` (the line numbers in ascending latency),
        the last three computed once per change of the file."""
        columns = self._columns()
        derived = self._derived
        if derived is None or derived[0] is not columns:
            codes, names = pd.factorize(columns.revision, use_na_sentinel=False)
            derived = (columns, codes.astype(np.int64), np.asarray(names, dtype=object), np.argsort(columns.latency))
            self._derived = derived
        _, codes, names, by_latency = derived
        return {
            "time": columns.time,
            "latency": columns.latency,
            "status": columns.status,
            "shadow": columns.shadow,
            "revision": codes,
            "revision_names": names,
            "by_latency": by_latency,
        }

    def sampled_rows(
        self, *, start: datetime, end: datetime, model_version: str, revision: str | None = None
    ) -> SampledRows:
        """The sampled input rows of lines of ``model_version`` (and of ``revision`` when named) with
        start <= time < end."""
        columns = self._columns()
        times = columns.row_time
        keep = (times >= start.timestamp()) & (times < end.timestamp()) & (columns.row_version == model_version)
        if revision is not None:
            keep &= columns.row_revision == revision
        index = np.flatnonzero(keep)
        inputs = columns.inputs
        return SampledRows(
            times=times[index],
            inputs=inputs.iloc[index].reset_index(drop=True)
            if len(inputs.columns)
            else pd.DataFrame(index=range(len(index))),
            outputs=columns.outputs.iloc[index].reset_index(drop=True),
        )

    def sampled_lines(self, *, start: datetime, end: datetime) -> dict[str, np.ndarray]:
        """The sampled lines with start <= time < end, as columns: time, revision, request_id, shadow and
        outputs (the line's list of predictions, None when it carried none)."""
        columns = self._columns().sampled
        times = columns["time"]
        keep = (times >= start.timestamp()) & (times < end.timestamp())
        return {key: values[keep] for key, values in columns.items()}
