"""Request bodies -> columns, for MLflow's scoring protocol and the reference ``/predict`` list form.

The hot path never builds a pandas object per request: JSON is parsed with orjson and turned into a
``Columns`` mapping (column name -> list of values), which the model layer validates and merges with
other requests into one batch. CSV goes through pandas (it is not the hot path).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import orjson

from .errors import BadRequest, UnsupportedMediaType

__all__ = ["ParsedInput", "parse_invocations", "parse_predict", "media_type", "SUPPORTED_FORMATS", "PARQUET"]

PARQUET = "application/vnd.apache.parquet"

SUPPORTED_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_FORMAT_HELP = f"The input must be a JSON object with exactly one of the fields {', '.join(SUPPORTED_FORMATS)}"


@dataclass(slots=True)
class ParsedInput:
    """Either ``columns`` (name -> values, all of length ``rows``, in the request's order) or ``raw``
    (data the model layer must hand to pyfunc as-is, e.g. tensors), plus optional ``params``."""

    columns: dict[str, list[Any]] | None
    rows: int
    raw: Any = None
    params: dict[str, Any] | None = None
    # Column names given positionally (dataframe_split without "columns"): matched to the signature order.
    positional: bool = False
    # Where the data came from: a JSON format key, "predict", "csv" or "parquet".
    fmt: str = ""


def media_type(content_type: str | None) -> str:
    if not content_type:
        raise UnsupportedMediaType("Missing Content-Type header; use application/json or text/csv")
    parts = [p.strip() for p in content_type.split(";")]
    mime = parts[0].lower()
    for param in parts[1:]:
        key, _, value = param.partition("=")
        key = key.strip().lower()
        if key == "charset":
            if value.strip().strip('"').lower() not in ("utf-8", "utf8"):
                raise UnsupportedMediaType(f"The scoring server only supports UTF-8, got charset={value.strip()}")
        elif key:
            raise UnsupportedMediaType(f"Unrecognized content type parameter: {key}")
    return mime


def _loads(body: bytes) -> Any:
    if not body or not body.strip():
        raise BadRequest("Empty request body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:  # Python's parser, as MLflow's server uses: it also takes the NaN/Infinity tokens
            return json.loads(body)
        except (ValueError, RecursionError):
            raise BadRequest(f"Malformed JSON: {exc}") from None


def parse_invocations(body: bytes, content_type: str | None) -> ParsedInput:
    """Parse a ``POST /invocations`` body the way ``mlflow models serve`` does."""
    mime = media_type(content_type)
    if mime == "application/json":
        return _parse_json_envelope(_loads(body))
    if mime == "text/csv":
        return _parse_csv(body)
    if mime == PARQUET:
        return ParsedInput(columns=None, rows=0, fmt="parquet")  # read by MLflow's parser (general path)
    raise UnsupportedMediaType(
        f"Unsupported Content-Type '{content_type}'; this server accepts application/json, text/csv and {PARQUET}"
    )


def parse_predict(body: bytes, content_type: str | None) -> ParsedInput:
    """``POST /predict``: a JSON list of records (or one record), as the reference proof of concept took."""
    mime = media_type(content_type)
    if mime != "application/json":
        raise UnsupportedMediaType(f"Unsupported Content-Type '{content_type}'; /predict accepts application/json")
    data = _loads(body)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise BadRequest(f"/predict expects a JSON list of records, got {type(data).__name__}")
    parsed = _from_records(data, "request body")
    parsed.fmt = "predict"
    return parsed


def _parse_json_envelope(data: Any) -> ParsedInput:
    if not isinstance(data, dict):
        raise BadRequest(f"{_FORMAT_HELP}; received a JSON {type(data).__name__}")
    keys = [k for k in data if k in SUPPORTED_FORMATS]
    if len(keys) != 1:
        raise BadRequest(f"{_FORMAT_HELP}; received fields {list(data)}")
    params = data.get("params")
    if params is not None and not isinstance(params, dict):
        raise BadRequest("'params' must be a JSON object")
    key = keys[0]
    value = data[key]
    if key == "dataframe_split":
        parsed = _from_split(value)
    elif key == "dataframe_records":
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list):
            raise BadRequest(f"'dataframe_records' must be a list of records, got {type(value).__name__}")
        parsed = _from_records(value, "dataframe_records")
    else:
        parsed = _from_tensor_style(value, key)
    parsed.params = params or None
    parsed.fmt = key
    return parsed


def _from_split(value: Any) -> ParsedInput:
    if not isinstance(value, dict):
        raise BadRequest(f"'dataframe_split' must be an object with 'columns' and 'data', got {type(value).__name__}")
    data = value.get("data")
    if not isinstance(data, list):
        raise BadRequest("'dataframe_split' needs a 'data' list of rows")
    columns = value.get("columns")
    positional = columns is None
    if positional:
        width = len(data[0]) if data and isinstance(data[0], list) else 1
        columns = list(range(width))
    if not isinstance(columns, list) or not all(isinstance(c, (str, int)) for c in columns):
        raise BadRequest("'dataframe_split.columns' must be a list of column names")
    if len(set(columns)) != len(columns):
        raise BadRequest("'dataframe_split.columns' has duplicate names")
    width = len(columns)
    if width and set(map(type, data)) == {list} and set(map(len, data)) == {width}:
        transposed = map(list, zip(*data, strict=True))
        return ParsedInput(columns=dict(zip(columns, transposed, strict=True)), rows=len(data), positional=positional)
    for i, row in enumerate(data):
        if not isinstance(row, list):
            if width == 1:  # a single column may be given as a flat list of values
                data = [[v] for v in data]
                break
            raise BadRequest(f"'dataframe_split.data' row {i} is not a list")
        if len(row) != width:
            raise BadRequest(f"'dataframe_split.data' row {i} has {len(row)} values for {width} columns")
    cols: dict[str, list[Any]] = {}
    for j, name in enumerate(columns):
        cols[name] = [row[j] for row in data]
    return ParsedInput(columns=cols, rows=len(data), positional=positional)


def _from_records(records: list[Any], where: str) -> ParsedInput:
    if not records:
        return ParsedInput(columns={}, rows=0)
    first = records[0]
    if not isinstance(first, dict):
        raise BadRequest(f"{where} must be a list of JSON objects (records); item 0 is a {type(first).__name__}")
    names = list(first)
    if len(records) == 1:
        return ParsedInput(columns={k: [v] for k, v in first.items()}, rows=1)
    if len(names) > 1 and set(map(type, records)) == {dict} and set(map(len, records)) == {len(names)}:
        # Every record has as many keys as the first: if each has the first's keys, all have the same keys.
        try:
            rows = list(map(itemgetter(*names), records))
        except KeyError:
            pass
        else:
            transposed = map(list, zip(*rows, strict=True))
            return ParsedInput(columns=dict(zip(names, transposed, strict=True)), rows=len(records))
    known = set(names)
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise BadRequest(f"{where} must be a list of JSON objects (records); item {i} is a {type(rec).__name__}")
        if len(rec) != len(known) or rec.keys() != known:
            for k in rec:
                if k not in known:
                    known.add(k)
                    names.append(k)
    # A key missing from some records is a null there, as pandas does.
    cols = {name: [rec.get(name) for rec in records] for name in names}
    return ParsedInput(columns=cols, rows=len(records))


def _from_tensor_style(value: Any, key: str) -> ParsedInput:
    """``instances``/``inputs``: records, a mapping of columns, or (for tensor models) raw arrays."""
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            return _from_records(value, key)
        return ParsedInput(columns=None, rows=len(value), raw=value)
    if isinstance(value, dict):
        lengths = {len(v) if isinstance(v, list) else None for v in value.values()}
        if lengths == {None}:  # {"a": 1, "b": "x"}: one row
            return ParsedInput(columns={k: [v] for k, v in value.items()}, rows=1)
        if None in lengths or len(lengths) > 1:
            raise BadRequest(f"'{key}' columns must all be lists of the same length")
        rows = lengths.pop() if lengths else 0
        return ParsedInput(columns={k: list(v) for k, v in value.items()}, rows=rows)
    return ParsedInput(columns=None, rows=1, raw=value)


def _parse_csv(body: bytes) -> ParsedInput:
    if not body or not body.strip():
        raise BadRequest("Empty request body")
    import pandas as pd

    try:
        text = body.decode("utf-8")
        frame = pd.read_csv(io.StringIO(text))
    except Exception as exc:  # pandas raises many types for bad CSV
        raise BadRequest(f"Malformed CSV: {exc}") from None
    cols: dict[str, list[Any]] = {}
    for name in frame.columns:
        values = frame[name].tolist()
        # NaN (an empty CSV cell) is a null, as in JSON.
        cols[str(name)] = [None if isinstance(v, float) and v != v else v for v in values]
    return ParsedInput(columns=cols, rows=len(frame), fmt="csv")
