"""Loading an MLflow model directory, validating columns against its signature, and predicting batches.

Fast path (a column signature of simple types, no ``params``): requests are validated column by
column in plain Python, merged into one pandas DataFrame per batch, and handed to the model's own
predict function (for the sklearn flavor the estimator's ``predict_fn`` directly, skipping pyfunc's
per-call schema enforcement, which our validation replaces). Anything else goes through
``PyFuncModel.predict`` one request at a time, exactly as ``mlflow models serve`` would.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BadRequest, InvalidInput, ScoringError
from .protocol import ParsedInput, parse_invocations

__all__ = ["ColumnSpec", "LoadedModel", "ModelError", "ModelRejectedInput", "jsonable"]

log = logging.getLogger("scoring.model")

# MLflow DataType names the fast path validates and converts itself.
SIMPLE_KINDS = ("string", "long", "integer", "double", "float", "boolean", "datetime")
_MAX_PROBLEMS = 5
_FLOAT_MAX = 1.7976931348623157e308
_INT_RANGES = {"long": (-(2**63), 2**63 - 1), "integer": (-(2**31), 2**31 - 1)}


class ModelError(ScoringError):
    """The model raised while predicting: a server-side failure (500)."""

    status = 500
    error_code = "INTERNAL_ERROR"


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    name: str
    kind: str
    required: bool


def jsonable(value: Any) -> Any:
    """What ``mlflow.pyfunc.scoring_server`` makes of a prediction before JSON encoding."""
    import numpy as np
    import pandas as pd

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, pd.DataFrame):
        return value.to_dict(orient="records")
    if isinstance(value, pd.Series):
        return value.tolist()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _row_values(value: Any, rows: int) -> list[Any] | None:
    """Per-row JSON values when ``value`` is row-aligned with the input, else None."""
    import numpy as np
    import pandas as pd

    if isinstance(value, np.ndarray) and value.ndim >= 1 and len(value) == rows:
        return value.tolist()
    if isinstance(value, pd.DataFrame) and len(value) == rows:
        return value.to_dict(orient="records")
    if isinstance(value, pd.Series) and len(value) == rows:
        return value.tolist()
    if isinstance(value, list) and len(value) == rows:
        return jsonable(value)
    return None


class LoadedModel:
    """An MLflow model directory, loaded once per worker process."""

    def __init__(self, model_dir: str | os.PathLike[str], *, unknown_columns: str = "reject") -> None:
        self.model_dir = Path(model_dir)
        self.unknown_columns = unknown_columns
        self.specs: list[ColumnSpec] | None = None
        self.spec_names: frozenset[str] = frozenset()
        self.batchable = False
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

        self._pyfunc = mlflow.pyfunc.load_model(str(self.model_dir))
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
        if schema is not None and schema.has_input_names() and all(isinstance(s, ColSpec) for s in schema.inputs):
            kinds = [getattr(s.type, "name", str(s.type)) for s in schema.inputs]
            if all(k in SIMPLE_KINDS for k in kinds):
                self.specs = [ColumnSpec(s.name, k, s.required) for s, k in zip(schema.inputs, kinds, strict=True)]
                self.spec_names = frozenset(s.name for s in self.specs)
        self._predict_frame = self._pyfunc.predict
        if pyfunc_conf.get("loader_module") == "mlflow.sklearn":
            # pyfunc's sklearn wrapper calls this same method after its own schema enforcement.
            raw = self._pyfunc.get_raw_model()
            self._predict_frame = getattr(raw, pyfunc_conf.get("predict_fn", "predict"))
        log.info(
            "loaded model %s (flavors %s, %s)",
            self.model_dir,
            ",".join(self.info["flavors"]),
            f"{len(self.specs)} signature columns, fast path" if self.specs else "generic pyfunc path",
        )

    def warm_up(self) -> int:
        """Score the model's own serving example (or one synthetic row); decides whether batching is safe."""
        example = self.model_dir / "serving_input_example.json"
        parsed: ParsedInput | None = None
        if example.is_file():
            try:
                parsed = parse_invocations(example.read_bytes(), "application/json")
            except ScoringError as exc:
                log.warning("ignoring unreadable %s: %s", example, exc.message)
        if parsed is None and self.specs:
            parsed = ParsedInput(columns={s.name: [_synthetic(s.kind)] for s in self.specs}, rows=1)
        if parsed is None:
            log.warning("no signature and no serving example: skipping warm-up")
            return 0
        if self.accepts_fast(parsed):
            columns = self.validate(parsed)
            out = self._predict_frame(self.frame([columns], [parsed.rows]))
            self.batchable = _row_values(out, parsed.rows) is not None
        else:
            self.predict_generic(parsed)
        log.info("warm-up scored %d row(s); micro-batching %s", parsed.rows, "on" if self.batchable else "off")
        return parsed.rows

    # ---------------------------------------------------------------- validation
    def accepts_fast(self, parsed: ParsedInput) -> bool:
        return self.specs is not None and parsed.columns is not None and parsed.params is None

    def validate(self, parsed: ParsedInput) -> list[list[Any]]:
        """Column values in signature order, type-checked; raises InvalidInput naming every problem found."""
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

    def predict_batch(self, parts: list[list[list[Any]]], sizes: list[int]) -> list[Any]:
        """Predict several requests with one call; returns each request's JSON-able predictions."""
        total = sum(sizes)
        try:
            out = self._predict_frame(self.frame(parts, sizes))
        except Exception as exc:
            raise _model_failure(exc) from exc
        rows = _row_values(out, total)
        if rows is None:
            if len(parts) == 1:
                return [jsonable(out)]
            raise ModelError("Model output is not row-aligned with its input; cannot split a merged batch")
        results = []
        start = 0
        for size in sizes:
            results.append(rows[start : start + size])
            start += size
        return results

    def predict_generic(self, parsed: ParsedInput) -> Any:
        """One request through ``PyFuncModel.predict`` (schema enforcement and params included)."""
        import numpy as np
        import pandas as pd
        from mlflow.exceptions import MlflowException

        if parsed.columns is not None:
            data: Any = pd.DataFrame(parsed.columns)
            if parsed.positional and self.specs and len(data.columns) == len(self.specs):
                data.columns = [s.name for s in self.specs]
        else:
            data = parsed.raw
            if isinstance(data, list):
                try:
                    data = np.asarray(data)
                except ValueError:
                    pass
        try:
            out = self._pyfunc.predict(data, params=parsed.params)
        except MlflowException as exc:
            if exc.get_http_status_code() < 500:
                raise InvalidInput(f"Invalid input: {exc.message[:1000]}") from None
            raise ModelError(f"Model prediction failed: {exc.message[:500]}") from exc
        except Exception as exc:
            raise _model_failure(exc) from exc
        return jsonable(out)


class ModelRejectedInput(InvalidInput):
    """The model raised ValueError/TypeError on values that passed the signature check (e.g. a number
    too large for the estimator's float32): by Python convention a bad argument, so a 422."""


def _model_failure(exc: Exception) -> ScoringError:
    detail = f"{type(exc).__name__}: {str(exc)[:500]}"
    if isinstance(exc, (ValueError, TypeError)):
        return ModelRejectedInput(f"The model rejected the input: {detail}")
    return ModelError(f"Model prediction failed: {detail}")


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
    if kind == "string":
        if all(type(v) is str for v in values):
            return values, None
        for i, v in enumerate(values):
            if type(v) is not str and not (v is None and not spec.required):
                return values, _bad(spec, i, v)
        return values, None
    if kind in ("double", "float"):
        if all(type(v) is float for v in values):
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
        if all(type(v) is int and low <= v <= high for v in values):
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
        return values  # pandas infers its string dtype, as for the training frame
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
