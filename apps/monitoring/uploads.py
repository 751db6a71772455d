"""Checks of an uploaded baseline file before anything parses it: its size, and by its bytes (not its name) that
it is a Parquet file or CSV text. Each refusal is a 4xx naming what is wrong."""

from __future__ import annotations

from pathlib import PurePath

from django.conf import settings

from apps.common.errors import ApplicationError

__all__ = [
    "DEFAULT_MAX_UPLOAD_BYTES",
    "FileTooLargeError",
    "UnsupportedFileError",
    "max_upload_bytes",
    "upload_kind",
]

DEFAULT_MAX_UPLOAD_BYTES = 100 * 2**20
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
