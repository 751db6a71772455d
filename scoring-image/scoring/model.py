"""Loading an MLflow model directory, the fast path's column checks, and predicting batches.

Fast path (a model with a column signature of simple types, ``dataframe_split``/``dataframe_records``
or ``/predict`` bodies, no ``params``): requests are checked column by column in plain Python,
merged into one pandas DataFrame per batch, and handed to ``PyFuncModel.predict`` or, for the
sklearn flavor, to the estimator's own predict function (the flavor's ``predict_fn``; pyfunc's
sklearn wrapper calls that same method after its schema enforcement). Requests are merged only for
scikit-learn, XGBoost and LightGBM models (their predict is row by row) unless ``batching`` says ``row-aligned``.

In the default ``mlflow`` validation mode a request takes the fast path only when every value
already has the signature's exact JSON type, so the frame is the one MLflow would build; anything
else (coercions, nulls, unknown columns, other formats, other signatures) goes to the general path
(``general.py``), which is MLflow's own code. In ``strict`` mode our checks answer 422 naming the
column instead, and the fast path converts what it can losslessly.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .compiled import COMPILED_FLAVORS
from .errors import BadRequest, InvalidInput, ScoringError
from .general import ModelError, ModelRejectedInput, mlflow_encode, model_failure, score_general
from .protocol import ParsedInput, parse_invocations

__all__ = ["ColumnSpec", "LoadedModel", "ModelError", "ModelRejectedInput"]

log = logging.getLogger("scoring.model")

# MLflow DataType names strict mode validates and converts itself.
SIMPLE_KINDS = ("string", "long", "integer", "double", "float", "boolean", "datetime")
# Kinds whose exact JSON values give the same DataFrame column as MLflow's parser (mlflow mode).
_EXACT_KINDS = ("string", "long", "double", "boolean")
_FAST_FORMATS = ("dataframe_split", "dataframe_records", "predict")
_MAX_PROBLEMS = 5
_FLOAT_MAX = 1.7976931348623157e308
_INT_RANGES = {"long": (-(2**63), 2**63 - 1), "integer": (-(2**31), 2**31 - 1)}
_EXACT_INT = 2**53  # ints up to this convert to float64 exactly
_JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_FLOAT, _INT, _STR, _BOOL, _FLOAT_INT = {float}, {int}, {str}, {bool}, {float, int}


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    name: str
    kind: str
    required: bool


def _plain_rows(value: Any, rows: int) -> list[Any] | None:
    """Per-row JSON values when ``value`` is a numeric/bool ndarray row-aligned with the input and
    without NaN/inf (orjson would write null where MLflow writes NaN), else None."""
    import numpy as np

    if not isinstance(value, np.ndarray) or value.ndim < 1 or len(value) != rows or value.dtype.kind not in "biuf":
        return None
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        return None
    return value.tolist()


class LoadedModel:
    """An MLflow model directory, loaded once per worker process."""

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        *,
        validation: str = "mlflow",
        unknown_columns: str = "ignore",
        batching: str = "sklearn",
        runtime: str = "auto",
        compiled_dir: str | os.PathLike[str] | None = None,
        compiled_threads: int = 1,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.runtime_setting = runtime
        self.compiled_dir = Path(compiled_dir) if compiled_dir else None
        self.compiled_threads = compiled_threads
        self.compiled: Any = None  # a scoring.compiled.CompiledModel when the fast path runs compiled
        self.runtime_info: dict[str, Any] = {"active": "original"}
        self.strict = validation == "strict"
        self.unknown_columns = unknown_columns
        self.batching = batching
        self.specs: list[ColumnSpec] | None = None
        self.spec_names: frozenset[str] = frozenset()
        self.fast = False  # the model can take the fast path at all
        self.batchable = False
        # The fastest one-row predict call at warm-up (s): at most what merging two requests into one call saves.
        self.one_row_s = 0.0
        self.info: dict[str, Any] = {}
        self._pyfunc: Any = None
        self._predict_frame: Any = None

    # ---------------------------------------------------------------- loading
    def load(self) -> None:
        """Import mlflow and load the model (seconds); called off the event loop."""
        if not (self.model_dir / "MLmodel").is_file():
            raise FileNotFoundError(f"{self.model_dir} is not an MLflow model directory (no MLmodel file)")
        import mlflow.pyfunc
        from mlflow.types.schema import ColSpec

        extra: dict[str, Any] = {}
        if config := os.environ.get("SERVING_MODEL_CONFIG"):  # as `mlflow models serve`
            extra["model_config"] = json.loads(config)
        self._pyfunc = mlflow.pyfunc.load_model(str(self.model_dir), **extra)
        os.environ["_MLFLOW_IS_IN_SERVING_ENVIRONMENT"] = "true"  # as MLflow's server sets it
        meta = self._pyfunc.metadata
        pyfunc_conf = meta.flavors.get("python_function", {})
        self.info = {
            "run_id": meta.run_id,
            "model_uuid": getattr(meta, "model_uuid", None),
            "flavors": sorted(meta.flavors),
            "loader_module": pyfunc_conf.get("loader_module"),
            "mlflow_version": getattr(meta, "mlflow_version", None),
        }
        schema = meta.get_input_schema()
        type_hint = getattr(meta, "_is_signature_from_type_hint", lambda: False)()
        if (
            schema is not None
            and not type_hint
            and schema.has_input_names()
            and all(isinstance(s, ColSpec) for s in schema.inputs)
        ):
            kinds = [getattr(s.type, "name", str(s.type)) for s in schema.inputs]
            if all(k in SIMPLE_KINDS for k in kinds):
                self.specs = [ColumnSpec(s.name, k, s.required) for s, k in zip(schema.inputs, kinds, strict=True)]
                self.spec_names = frozenset(s.name for s in self.specs)
        self.fast = self.specs is not None
        self._predict_frame = self._pyfunc.predict
        if self.specs and pyfunc_conf.get("loader_module") == "mlflow.sklearn":
            # pyfunc's sklearn wrapper calls this same method after its own schema enforcement.
            raw = self._pyfunc.get_raw_model()
            self._predict_frame = getattr(raw, pyfunc_conf.get("predict_fn", "predict"))
        if self.specs and pyfunc_conf.get("loader_module") in COMPILED_FLAVORS:
            self._load_compiled()
        # scikit-learn's, XGBoost's and LightGBM's predict score each row on its own: requests may be merged.
        merge = {"sklearn": pyfunc_conf.get("loader_module") in COMPILED_FLAVORS, "row-aligned": True}
        self._may_merge = merge.get(self.batching, False)
        log.info(
            "loaded model %s (flavors %s, %s)",
            self.model_dir,
            ",".join(self.info["flavors"]),
            f"{len(self.specs or [])} signature columns, fast path" if self.fast else "general (MLflow) path",
        )

    def _load_compiled(self) -> None:
        """The compiled runtime the image build chose and verified (``compiled/decision.json``), unless
        ``SCORING_RUNTIME=original``; any problem loading it leaves the original model serving."""
        from .compiled import RUNTIMES, CompiledModel, load_decision

        decision = load_decision(self.compiled_dir)
        info: dict[str, Any] = {"active": "original", "setting": self.runtime_setting}
        self.runtime_info = info
        if decision is None:
            info["reason"] = "no compiled model in the image"
            return
        shown = ("runtime", "reason", "max_abs_diff", "model_kind", "verified_rows")
        info["build"] = {k: decision.get(k) for k in shown}
        if self.runtime_setting == "original":
            info["reason"] = "SCORING_RUNTIME=original"
            return
        if decision.get("runtime") not in RUNTIMES:
            info["reason"] = decision.get("reason", "not compiled")
            return
        try:
            self.compiled = CompiledModel(self.compiled_dir, decision, threads=self.compiled_threads)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - e.g. the runtime package missing: serve the original
            log.warning("compiled model not loaded, serving the original: %s", exc)
            info["reason"] = f"compiled model not loaded: {type(exc).__name__}: {exc}"
            return
        info["active"] = decision["runtime"]
        info["reason"] = decision.get("reason", "")
        info["threads"] = self.compiled_threads

    def _startup_check(self, columns: list[list[Any]], rows: int, original: Any) -> None:
        """The compiled answer to the warm-up input must equal the original's here too (the image's own
        packages): else the original serves."""
        import numpy as np

        try:
            got = self.compiled.predict(columns, rows, self._original_rows(columns))
            same = isinstance(original, np.ndarray) and got.shape == original.shape and got.dtype == original.dtype
            if same and self.compiled.output == "label":
                same = bool((got == original).all())
            elif same:  # within the tolerance the image build verified with
                tolerance = self.compiled.decision.get("tolerance", {})
                atol, rtol = tolerance.get("atol", 1e-6), tolerance.get("rtol", 1e-6)
                same = bool(np.allclose(got, original, rtol=rtol, atol=atol))
        except Exception as exc:  # noqa: BLE001
            same = False
            log.warning("compiled model failed on the warm-up input: %s", exc)
        if not same:
            log.warning("compiled model disagrees with the original on the warm-up input; serving the original")
            self.compiled = None
            self.runtime_info.update(active="original", reason="disagreed with the original at start-up")
        else:
            self.runtime_info["startup_check"] = f"equal on {rows} warm-up row(s)"

    def _warm_up_columns(self, parsed: ParsedInput | None) -> tuple[list[list[Any]] | None, bool]:
        """The warm-up input's columns in signature order, and whether they take the fast path as they are. An
        example that takes MLflow's general path (nulls, coercions) still shows what the model answers: whether
        that is row-aligned (batching) and whether the compiled model agrees."""
        if parsed is None:
            return None, False
        columns = self.fast_columns(parsed)
        if columns is not None:
            return columns, True
        if parsed.columns is None or not self.specs:
            return None, False
        named = [parsed.columns[s.name] for s in self.specs if s.name in parsed.columns]
        return (named if len(named) == len(self.specs) else None), False

    def _learn_from(self, columns: list[list[Any]], rows: int, *, exact: bool) -> None:
        """Score the warm-up columns: whether requests may be merged, the compiled model's start-up check, and the
        cost of a one-row call (the batching window's decision)."""
        try:
            out = self._predict_frame(self.frame([columns], [rows]))
        except Exception as exc:
            if exact:
                raise
            log.warning("the model cannot score its example's columns as the fast path builds them: %s", exc)
            return
        self.batchable = self._may_merge and _plain_rows(out, rows) is not None
        if self.compiled is not None:
            self._startup_check(columns, rows, out)
        if self.batchable:
            self.one_row_s = self._time_one_row([[c[0]] for c in columns])

    def _time_one_row(self, row: list[list[Any]]) -> float:
        """The fastest of up to five one-row calls, within about half a second (a slow model is timed once)."""
        best, spent = math.inf, 0.0
        for _ in range(5):
            started = time.perf_counter()
            self.predict_batch([row], [1])
            took = time.perf_counter() - started
            best, spent = min(best, took), spent + took
            if spent > 0.5:
                break
        return best

    def _original_rows(self, columns: list[list[Any]]) -> Any:
        def original(index: Any) -> Any:
            picked = [[col[i] for i in index] for col in columns]
            return self._predict_frame(self.frame([picked], [len(index)]))

        return original

    def warm_up(self) -> int:
        """Score the model's own serving example (or one synthetic row); decides whether batching is safe."""
        example = self.model_dir / "serving_input_example.json"
        parsed: ParsedInput | None = None
        body: bytes | None = None
        if example.is_file():
            body = example.read_bytes()
            try:
                parsed = parse_invocations(body, "application/json")
            except ScoringError as exc:
                log.warning("%s is not a fast-path input (%s)", example, exc.message)
        if parsed is None and body is None and self.specs:
            parsed = ParsedInput(columns={s.name: [_synthetic(s.kind)] for s in self.specs}, rows=1, fmt="predict")
        columns, exact = self._warm_up_columns(parsed)
        if columns is not None and parsed is not None:
            self._learn_from(columns, parsed.rows, exact=exact)
        if self.compiled is not None and "startup_check" not in self.runtime_info:
            self.runtime_info["startup_check"] = "no warm-up input in the signature's columns to compare on"
        if body is not None:
            self.score_general(body, "application/json")
            rows = parsed.rows if parsed is not None else 1
        elif exact and parsed is not None:
            rows = parsed.rows  # the synthetic row
        else:
            log.warning("no fast-path signature and no serving example: skipping warm-up")
            return 0
        log.info("warm-up scored %d row(s); micro-batching %s", rows, "on" if self.batchable else "off")
        return rows

    # ---------------------------------------------------------------- validation
    def fast_columns(self, parsed: ParsedInput) -> list[list[Any]] | None:
        """Column values in signature order for the fast path, or None: the general path answers.
        In strict mode a request that does not match the signature raises InvalidInput (422) here."""
        if self.specs is None or parsed.columns is None:
            return None
        if self.strict:
            columns = self.validate(parsed)
            ok = self.fast and parsed.params is None and parsed.rows > 0 and parsed.fmt in _FAST_FORMATS
            return columns if ok else None
        if not self.fast or parsed.params is not None or parsed.positional or parsed.fmt not in _FAST_FORMATS:
            return None
        cols = parsed.columns
        if parsed.rows == 0 or len(cols) != len(self.specs):
            return None  # unknown or missing columns: MLflow decides
        out = []
        for spec in self.specs:
            values = cols.get(spec.name)
            if values is None or not _exact_column(spec.kind, values):
                return None
            out.append(values)
        return out

    def validate(self, parsed: ParsedInput) -> list[list[Any]]:
        """Strict mode: column values in signature order, type-checked; raises InvalidInput naming every problem."""
        assert self.specs is not None and parsed.columns is not None
        cols = parsed.columns
        if parsed.positional:
            if len(cols) != len(self.specs):
                raise InvalidInput(
                    f"dataframe_split without 'columns' has {len(cols)} values per row; "
                    f"the model signature has {len(self.specs)} columns"
                )
            cols = {s.name: v for s, v in zip(self.specs, cols.values(), strict=True)}
        problems: list[str] = []
        unknown = [k for k in cols if k not in self.spec_names]
        if unknown and self.unknown_columns == "reject":
            problems.append(f"unknown column(s) {', '.join(repr(str(k)) for k in unknown[:20])}")
        missing = [s.name for s in self.specs if s.required and s.name not in cols]
        if missing:
            problems.append(f"missing required column(s) {', '.join(repr(m) for m in missing)}")
        rows = parsed.rows
        out: list[list[Any]] = []
        for spec in self.specs:
            values = cols.get(spec.name)
            if values is None:
                out.append([None] * rows)
                continue
            checked, problem = _check_column(spec, values)
            if problem:
                problems.append(problem)
                if len(problems) >= _MAX_PROBLEMS:
                    break
            out.append(checked)
        if problems:
            raise InvalidInput("Invalid input: " + "; ".join(problems))
        return out

    # ---------------------------------------------------------------- predicting
    def frame(self, parts: list[list[list[Any]]], sizes: list[int]) -> Any:
        """One DataFrame from several validated requests (each a list of columns in signature order)."""
        import numpy as np
        import pandas as pd

        assert self.specs is not None
        data: dict[str, Any] = {}
        for j, spec in enumerate(self.specs):
            if len(parts) == 1:
                values = parts[0][j]
            else:
                values = []
                for part in parts:
                    values.extend(part[j])
            data[spec.name] = _to_array(spec.kind, values, np, pd)
        return pd.DataFrame(data, copy=False)

    def predict_batch(self, parts: list[list[list[Any]]], sizes: list[int]) -> list[tuple[bytes, list[Any] | None]]:
        """Predict several requests with one call; each request's (answer body, JSON predictions or None)."""
        total = sum(sizes)
        out = None
        if self.compiled is not None:
            columns = parts[0] if len(parts) == 1 else _merge(parts)
            try:
                out = self.compiled.predict(columns, total, self._original_rows(columns))
            except Exception:  # noqa: BLE001 - e.g. an unknown category the encoder refuses: the original answers
                out = None
        try:
            if out is None:
                out = self._predict_frame(self.frame(parts, sizes))
        except Exception as exc:
            raise model_failure(exc) from exc
        rows = _plain_rows(out, total)
        if rows is None:
            if len(parts) == 1:
                return [(mlflow_encode(out), None)]
            raise ModelError("Model output is not a numeric array row-aligned with its input; cannot split a batch")
        results = []
        start = 0
        for size in sizes:
            chunk = rows[start : start + size]
            results.append((orjson.dumps({"predictions": chunk}, option=_JSON_OPTS), chunk))
            start += size
        return results

    def score_general(self, body: bytes | dict[str, Any], mime: str) -> tuple[bytes, int]:
        """One request through MLflow's own parsing, ``PyFuncModel.predict`` and encoding."""
        return score_general(self._pyfunc, body, mime)


def _merge(parts: list[list[list[Any]]]) -> list[list[Any]]:
    merged: list[list[Any]] = [[] for _ in parts[0]]
    for part in parts:
        for column, values in zip(merged, part, strict=True):
            column.extend(values)
    return merged


def _exact_column(kind: str, values: list[Any]) -> bool:
    """Whether every value has exactly the JSON type MLflow's parser turns into this kind unchanged."""
    types = set(map(type, values))  # C loops (map, set, min, max) rather than a Python loop per value
    if kind == "double":
        if types == _FLOAT or not values:
            return True
        if not types <= _FLOAT_INT:
            return False
        if -_EXACT_INT <= min(values) and max(values) <= _EXACT_INT:
            return True
        return all(type(v) is float or -_EXACT_INT <= v <= _EXACT_INT for v in values)
    if kind == "long":
        return not values or (types == _INT and -(2**63) <= min(values) and max(values) < 2**63)
    if kind == "string":
        return types <= _STR
    if kind == "boolean":
        return types <= _BOOL
    return False


def _synthetic(kind: str) -> Any:
    return {"string": "", "boolean": False, "datetime": "2000-01-01", "double": 0.0, "float": 0.0}.get(kind, 0)


def _bad(spec: ColumnSpec, row: int, value: Any) -> str:
    if value is None:
        return f"column {spec.name!r} has a null at row {row} but is required"
    shown = json.dumps(value, default=str)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"column {spec.name!r} expects {spec.kind}, got {_json_type(value)} {shown} at row {row}"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _check_column(spec: ColumnSpec, values: list[Any]) -> tuple[list[Any], str | None]:
    """(values converted where lossless, first problem or None). Fast when every value is fine."""
    kind = spec.kind
    types = set(map(type, values))
    if kind == "string":
        if types == _STR:
            return values, None
        for i, v in enumerate(values):
            if type(v) is not str and not (v is None and not spec.required):
                return values, _bad(spec, i, v)
        return values, None
    if kind in ("double", "float"):
        if types == _FLOAT:
            return values, None
        for i, v in enumerate(values):
            if type(v) is float or (v is None and not spec.required):
                continue
            if type(v) is int:
                if -_FLOAT_MAX <= v <= _FLOAT_MAX:
                    continue
                return values, f"column {spec.name!r} value at row {i} is out of range for {kind}"
            return values, _bad(spec, i, v)
        return values, None
    if kind in ("long", "integer"):
        low, high = _INT_RANGES[kind]
        if types == _INT and low <= min(values) and max(values) <= high:
            return values, None
        converted = []
        for i, v in enumerate(values):
            if type(v) is float and v.is_integer():
                v = int(v)
            if type(v) is int:
                if not low <= v <= high:
                    return values, f"column {spec.name!r} value at row {i} is out of range for {kind}"
                converted.append(v)
            elif v is None and not spec.required:
                converted.append(v)
            else:
                return values, _bad(spec, i, v)
        return converted, None
    if kind == "boolean":
        if types == _BOOL:
            return values, None
        for i, v in enumerate(values):
            if type(v) is not bool and not (v is None and not spec.required):
                return values, _bad(spec, i, v)
        return values, None
    if kind == "datetime":
        import pandas as pd

        for i, v in enumerate(values):
            if v is None and not spec.required:
                continue
            if type(v) is not str:
                return values, _bad(spec, i, v)
            try:
                pd.Timestamp(v)
            except (ValueError, TypeError):
                return values, f"column {spec.name!r} expects a datetime, got {v!r} at row {i}"
        return values, None
    raise BadRequest(f"column {spec.name!r} has unsupported type {kind}")  # pragma: no cover


def _to_array(kind: str, values: list[Any], np: Any, pd: Any) -> Any:
    if kind == "string":
        return values  # pandas infers its string dtype, as MLflow's schema enforcement hands strings over
    if kind == "datetime":
        return pd.to_datetime(values)
    has_null = None in values
    if kind in ("double", "float"):
        dtype = np.float64 if kind == "double" else np.float32
        if has_null:
            values = [np.nan if v is None else v for v in values]
        return np.array(values, dtype=dtype)
    if kind in ("long", "integer"):
        if has_null:
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        return np.array(values, dtype=np.int64 if kind == "long" else np.int32)
    if kind == "boolean":
        return np.array(values, dtype=object if has_null else bool)
    return values
