"""Checks of an uploaded baseline file before anything parses it: its size, and by its bytes (not its name) that
it is a Parquet file or CSV text; then reading it within limits on rows and decoded memory (:func:`table_read`),
checked before the table is materialised; then its columns against the model's signature (:func:`columns_check`).
Each refusal is a 4xx naming what is wrong."""

from __future__ import annotations

import io
from pathlib import PurePath

import pandas as pd
import pyarrow.parquet as pq
from django.conf import settings

from apps.common.errors import ApplicationError
from apps.monitoring.drift import PREDICTION
from apps.registry.types import Signature

__all__ = [
    "DEFAULT_MAX_UPLOAD_BYTES",
    "FileTooLargeError",
    "UnsupportedFileError",
    "columns_check",
    "max_upload_bytes",
    "table_read",
    "upload_kind",
]

DEFAULT_MAX_UPLOAD_BYTES = 100 * 2**20
DEFAULT_MAX_ROWS = 1_000_000
DEFAULT_MAX_DECODED_BYTES = 512 * 2**20
CSV_CHUNK_ROWS = 50_000
PARQUET_MAGIC = b"PAR1"
EXTENSIONS = {".csv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}
# what people upload by mistake, recognised by its first bytes
SIGNATURES = [
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook?)"),
    (b"\xd0\xcf\x11\xe0", "an Office document (an Excel .xls workbook?)"),
    (b"\x1f\x8b", "gzip-compressed"),
    (b"ARROW1", "an Arrow/Feather file"),
    (b"SQLite format 3\x00", "a SQLite database"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
]
_TEXT_SAMPLE = 64 * 1024
_NAMES_SHOWN = 10


class FileTooLargeError(ApplicationError):
    status_code = 413
    code = "file_too_large"


class UnsupportedFileError(ApplicationError):
    status_code = 415
    code = "unsupported_file_type"


def max_upload_bytes() -> int:
    """``MONITORING_BASELINE_MAX_UPLOAD_BYTES`` (default 100 MiB)."""
    return int(getattr(settings, "MONITORING_BASELINE_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES))


def _size_text(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size:,} bytes"


def _content_kind(data: bytes, name: str) -> str:
    if data[:4] == PARQUET_MAGIC:
        if data[-4:] != PARQUET_MAGIC or len(data) < 12:
            raise UnsupportedFileError(f"{name} starts like a Parquet file but is cut short (no footer).")
        return "parquet"
    for signature, what in SIGNATURES:
        if data.startswith(signature):
            raise UnsupportedFileError(f"{name} is {what}, not a CSV or Parquet file.")
    sample = data[:_TEXT_SAMPLE]
    if b"\x00" in sample:
        raise UnsupportedFileError(f"{name} is binary, not a CSV or Parquet file.")
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 3:  # not just a character cut at the end of the sample
            raise UnsupportedFileError(
                f"{name} is not UTF-8 text (byte {exc.start}), so not a CSV file; nor is it Parquet."
            ) from None
    return "csv"


def upload_kind(data: bytes, *, filename: str = "", size: int | None = None) -> str:
    """``"parquet"`` or ``"csv"``, judged by the content; ``size`` is the upload's declared size when known (so a
    huge file is refused before it is read)."""
    name = filename or "The file"
    limit = max_upload_bytes()
    actual = max(size or 0, len(data))
    if actual > limit:
        raise FileTooLargeError(
            f"{name} is {_size_text(actual)}; a baseline file may be at most {_size_text(limit)}.",
            extra={"max_bytes": limit},
        )
    if not data:
        raise ApplicationError(f"{name} is empty.", code="invalid_file")
    extension = PurePath(filename).suffix.lower()
    if extension and extension not in EXTENSIONS:
        raise UnsupportedFileError(f"{name}: only CSV (.csv) and Parquet (.parquet) files can be baselines.")
    kind = _content_kind(data, name)
    if extension and EXTENSIONS[extension] != kind:
        raise UnsupportedFileError(f"{name} is named like a {EXTENSIONS[extension]} file but its content is {kind}.")
    return kind


def _limits() -> tuple[int, int]:
    """``MONITORING_BASELINE_MAX_ROWS`` (default 1,000,000) and ``MONITORING_BASELINE_MAX_DECODED_BYTES`` (512 MiB)."""
    return (
        int(getattr(settings, "MONITORING_BASELINE_MAX_ROWS", DEFAULT_MAX_ROWS)),
        int(getattr(settings, "MONITORING_BASELINE_MAX_DECODED_BYTES", DEFAULT_MAX_DECODED_BYTES)),
    )


def _check(name: str, rows: int, decoded: int, *, at_least: bool = False) -> None:
    max_rows, max_bytes = _limits()
    more = "more than " if at_least else ""
    if rows > max_rows:
        raise FileTooLargeError(
            f"{name} holds {more}{rows:,} rows; a baseline file may hold at most {max_rows:,} rows "
            "(a random sample of that size profiles as well).",
            extra={"max_rows": max_rows},
        )
    if decoded > max_bytes:
        raise FileTooLargeError(
            f"{name} decodes to more than {_size_text(max_bytes)} in memory; send fewer rows or columns.",
            extra={"max_decoded_bytes": max_bytes},
        )


def table_read(data: bytes, kind: str, *, filename: str = "") -> pd.DataFrame:
    """The table in ``data`` (``kind`` from :func:`upload_kind`), refused (413) past the row or memory limit before
    it is materialised: a Parquet file by its metadata, a CSV file chunk by chunk. Parse errors propagate."""
    name = filename or "The file"
    if kind == "parquet":
        parquet = pq.ParquetFile(io.BytesIO(data))
        meta = parquet.metadata
        stored = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        _check(name, meta.num_rows, max(stored, meta.num_rows * max(meta.num_columns, 1) * 8))
        return parquet.read().to_pandas()
    chunks, rows, decoded = [], 0, 0
    for chunk in pd.read_csv(io.BytesIO(data), chunksize=CSV_CHUNK_ROWS):
        rows += len(chunk)
        decoded += int(chunk.memory_usage(deep=True).sum())
        _check(name, rows, decoded, at_least=True)
        chunks.append(chunk)
    return pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()


def _names(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_NAMES_SHOWN])
    return shown + (f" and {len(names) - _NAMES_SHOWN} more" if len(names) > _NAMES_SHOWN else "")


def columns_check(columns: list[str], signature: Signature | None, *, filename: str = "") -> None:
    """Refuse (400) a table whose columns the model does not have, or that lacks a column the model requires,
    naming them. Only for a signature with named input columns: without one there is nothing to check against.
    The model's output columns (and ``prediction``) are allowed, for prediction drift."""
    inputs = [c for c in (signature.inputs if signature else []) if c.name]
    if not inputs:
        return
    known = {c.name for c in inputs} | {c.name for c in signature.outputs if c.name} | {PREDICTION}
    present = {str(c) for c in columns}
    unknown = [str(c) for c in columns if str(c) not in known]
    missing = [c.name for c in inputs if c.required and c.name not in present]
    problems = []
    if unknown:
        problems.append(f"columns the model does not have: {_names(unknown)}")
    if missing:
        problems.append(f"required columns missing: {_names(missing)}")
    if problems:
        raise ApplicationError(
            f"{filename or 'The file'} does not match the model's signature: {'; '.join(problems)}.",
            code="columns_mismatch",
            extra={"unknown_columns": unknown, "missing_columns": missing},
        )
