"""The compiled runtime at serve time: numpy preprocessing in front of an ONNX Runtime or Treelite estimator.

``scoring/compiler.py`` writes a directory at image build time (``decision.json``, ``preprocess.json``, and
``model.onnx`` or ``model.treelite``); this module loads it and scores the fast path's validated columns
(lists of JSON values in signature order) with no pandas and no scikit-learn:

- ``Preprocessor`` replays the fitted ColumnTransformer column by column (imputation, one-hot, ordinal codes,
  scaling, passthrough) into one matrix, each feature computed in float64 as scikit-learn computes it; for
  tree models the matrix is float32 (each feature rounded when stored), as scikit-learn's trees round their
  input before comparing with their thresholds, and goes to ONNX Runtime without another copy; for XGBoost
  after a ColumnTransformer with sparse output, zeros become NaN (XGBoost takes a sparse matrix's unstored
  entries as missing values);
- the estimator runs in ONNX Runtime or Treelite's GTIL;
- a batch with a null in a string column is scored by the original model (what scikit-learn makes of it
  depends on the DataFrame pandas builds around it);
- classifiers answer ``classes_[argmax(probabilities)]``; a row whose two best probabilities are closer than
  ``label_band`` (twice the verified tolerance) is scored by the original model instead, so a label can never
  differ from scikit-learn's through float rounding.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CompiledModel", "Preprocessor", "COMPILED_FLAVORS", "DECISION_FILE", "RUNTIMES", "load_decision"]

DECISION_FILE = "decision.json"
RUNTIMES = ("onnxruntime", "treelite")
# The pyfunc loader modules whose models may compile (scoring/compiler.py) and be served compiled (model.py).
COMPILED_FLAVORS = ("mlflow.sklearn", "mlflow.xgboost", "mlflow.lightgbm")
_MISSING = object()
# From this many rows on, a column is encoded with a few numpy calls; below, a value at a time is cheaper.
_VECTOR_ROWS = 16


def load_decision(compiled_dir: str | Path | None) -> dict[str, Any] | None:
    if not compiled_dir:
        return None
    path = Path(compiled_dir) / DECISION_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _is_missing(v: Any) -> bool:
    return v is None or (type(v) is float and v != v)


def _has_missing(column: list[Any]) -> bool:
    return None in column or (float in set(map(type, column)) and any(v != v for v in column))


class _Column:
    """One input column's chain of column-wise steps; writes 1 (or, for one-hot, k) output features."""

    __slots__ = ("index", "steps", "width", "onehot", "nan_index", "lookup", "unknown")

    def __init__(self, spec: dict[str, Any]) -> None:
        self.index: int = spec["index"]
        self.steps: list[dict[str, Any]] = spec["steps"]
        self.onehot: dict[Any, int] | None = None
        self.lookup: dict[Any, int] | None = None
        self.nan_index = -1
        self.unknown: Any = None
        self.width = 1
        last = self.steps[-1] if self.steps else None
        if last is not None and last["op"] in ("onehot", "ordinal"):
            categories = last["categories"]
            table = {}
            for i, c in enumerate(categories):
                if c is None:
                    self.nan_index = i
                else:
                    table[c] = i
            if last["op"] == "onehot":
                self.onehot = table
                self.width = len(categories)
            else:
                self.lookup = table
                self.unknown = last.get("unknown")  # None: unknown categories are an error, as scikit-learn's
        for step in self.steps[:-1] if (self.onehot is not None or self.lookup is not None) else self.steps:
            if step["op"] in ("onehot", "ordinal"):
                raise ValueError("one-hot/ordinal encoding must be a column's last step")

    def values(self, column: list[Any]) -> list[Any]:
        """Imputation steps on the raw values (strings or numbers), before encoding or scaling."""
        for step in self.steps:
            if step["op"] != "impute":
                continue
            fill = step["fill"]
            if step["missing"] == "nan":
                if _has_missing(column):
                    column = [fill if _is_missing(v) else v for v in column]
            else:
                marker = step["missing"]
                if marker in column:
                    column = [fill if v == marker else v for v in column]
        return column

    def codes(self, column: list[Any]) -> np.ndarray:
        """Category positions of the values (-1: unknown), missing values at the missing category's position."""
        table = self.onehot if self.onehot is not None else self.lookup
        assert table is not None
        # Missing values are never keys of the table (their category is ``nan_index``): they come out as -1 here.
        codes = np.fromiter(map(table.get, column, repeat(-1)), dtype=np.intp, count=len(column))
        if self.nan_index >= 0:
            for r in np.flatnonzero(codes < 0).tolist():
                if _is_missing(column[r]):
                    codes[r] = self.nan_index
        return codes

    def write(self, column: list[Any], out: np.ndarray, offset: int) -> None:
        column = self.values(column)
        if len(column) < _VECTOR_ROWS:
            return self.write_few(column, out, offset)
        if self.onehot is not None:
            codes = self.codes(column)
            known = codes >= 0
            if known.all():
                out[np.arange(len(codes)), offset + codes] = 1.0
            else:
                out[np.flatnonzero(known), offset + codes[known]] = 1.0
            return
        if self.lookup is not None:
            codes = self.codes(column)
            array = codes.astype(np.float64)
            for r in np.flatnonzero(codes < 0).tolist():
                v = column[r]
                if _is_missing(v):  # no missing category: NaN, as scikit-learn encodes it
                    array[r] = math.nan
                elif self.unknown is None:
                    raise ValueError(f"Found unknown categories [{v!r}] during transform")
                else:
                    array[r] = float(self.unknown)
        else:
            array = np.array(column, dtype=np.float64)  # None becomes NaN
        out[:, offset] = self.scaled(array)

    def write_few(self, column: list[Any], out: np.ndarray, offset: int) -> None:
        """``write`` for a few rows, a value at a time: cheaper than numpy's per-call cost there."""
        if self.onehot is not None:
            table, nan_index = self.onehot, self.nan_index
            for r, v in enumerate(column):
                j = nan_index if _is_missing(v) else table.get(v, -1)
                if j >= 0:
                    out[r, offset + j] = 1.0
            return
        if self.lookup is not None:
            codes = []
            for v in column:
                if _is_missing(v):
                    codes.append(float(self.nan_index) if self.nan_index >= 0 else math.nan)
                    continue
                j = self.lookup.get(v, -1)
                if j < 0:
                    if self.unknown is None:
                        raise ValueError(f"Found unknown categories [{v!r}] during transform")
                    codes.append(float(self.unknown))
                else:
                    codes.append(float(j))
            array = np.array(codes, dtype=np.float64)
        else:
            array = np.array(column, dtype=np.float64)  # None becomes NaN
        out[:, offset] = self.scaled(array)

    def scaled(self, array: np.ndarray) -> np.ndarray:
        for step in self.steps:
            op = step["op"]
            if op == "scale":
                if step["mean"] is not None:
                    array = array - step["mean"]
                if step["scale"] is not None:
                    array = array / step["scale"]
            elif op == "minmax":
                array = array * step["scale"] + step["min"]
                if step["clip"]:
                    np.clip(array, step["lo"], step["hi"], out=array)
        return array


class Preprocessor:
    """The fitted preprocessing of a scikit-learn pipeline, replayed on the fast path's columns."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.inputs: list[str] = spec["inputs"]
        self.columns = [_Column(c) for c in spec["columns"]]
        # Input columns of strings: a null there is left to the original model (below).
        self.string_inputs: list[int] = spec.get("string_inputs", [])
        self.width: int = spec["width"]
        self.float32: bool = spec["float32"]
        self.zero_is_missing: bool = spec.get("zero_is_missing", False)
        offsets = []
        offset = 0
        for col in self.columns:
            offsets.append(offset)
            offset += col.width
        if offset != self.width:
            raise ValueError(f"preprocessing writes {offset} features, the estimator takes {self.width}")
        self.offsets = offsets

    def transform(self, columns: list[list[Any]], rows: int) -> np.ndarray:
        """The estimator's input matrix: float32 for tree models (each feature computed in float64, then rounded
        to float32 when stored, as scikit-learn's trees do), else float64."""
        out = np.zeros((rows, self.width), dtype=np.float32 if self.float32 else np.float64)
        for col, offset in zip(self.columns, self.offsets, strict=True):
            col.write(columns[col.index], out, offset)
        if self.zero_is_missing:
            out[out == 0] = np.nan
        return out


class CompiledModel:
    """A compiled estimator behind its preprocessing; ``predict`` answers what the sklearn pipeline's
    ``predict_fn`` answers (same dtype, same labels)."""

    def __init__(
        self, compiled_dir: str | Path, decision: dict[str, Any], *, runtime: str | None = None, threads: int = 1
    ) -> None:
        self.dir = Path(compiled_dir)
        self.threads = threads
        self.decision = decision
        self.runtime = runtime or decision["runtime"]
        spec = json.loads((self.dir / "preprocess.json").read_text())
        self.pre = Preprocessor(spec["preprocess"])
        self.output: str = spec["output"]  # "label", "proba" or "value"
        self.dtype = np.dtype(spec.get("dtype") or "float64")  # of probabilities and values
        classes = spec.get("classes")
        self.classes = None if classes is None else np.array(classes, dtype=spec["classes_dtype"])
        self.label_band: float = decision.get("label_band", 0.0)
        # Estimators that refuse NaN (gradient boosting, linear models): so does the compiled one, and the
        # caller's fallback lets the original model answer with its own error.
        self.allow_nan: bool = spec.get("allow_nan", True)
        self._run = self._load_runtime(spec)

    def _load_runtime(self, spec: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
        if self.runtime == "onnxruntime":
            import onnxruntime as ort

            options = ort.SessionOptions()
            # SCORING_COMPILED_THREADS (by default the worker's share of the CPUs it may use). Idle pool threads
            # sleep rather than spin: a spinning thread takes the core the event loop needs next.
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL

            def session(path: Path) -> Any:
                return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

            full = session(self.dir / "model.onnx")
            nonan = session(self.dir / spec["onnx_nonan"]) if spec.get("onnx_nonan") else None
            name = full.get_inputs()[0].name
            dtype = np.float32 if spec.get("onnx_input") == "float32" else np.float64
            wanted = [spec["onnx_output"]]
            run = full.run
            run_nonan = nonan.run if nonan is not None else None
            isnan = np.isnan
            column = spec.get("onnx_column")  # one column of the output (a binary XGBoost Booster's P(class 1))

            def predict(x: np.ndarray) -> np.ndarray:
                x = x.astype(dtype, copy=False)
                if run_nonan is not None and not isnan(x).any():
                    out = run_nonan(wanted, {name: x})[0]
                else:
                    out = run(wanted, {name: x})[0]
                return out if column is None else out[:, column]

            return predict
        if self.runtime == "treelite":
            import treelite
            import treelite.gtil

            model = treelite.Model.deserialize(str(self.dir / "model.treelite"))
            gtil_predict = treelite.gtil.predict

            def predict(x: np.ndarray) -> np.ndarray:
                out = gtil_predict(model, x.astype(np.float64, copy=False), nthread=self.threads)
                return out.reshape(x.shape[0], -1)

            return predict
        raise ValueError(f"unknown compiled runtime {self.runtime!r}")

    def raw(self, columns: list[list[Any]], rows: int) -> np.ndarray:
        """The estimator's numeric output: probabilities (classifiers) or values (regressors), float64."""
        x = self.pre.transform(columns, rows)
        if not self.allow_nan and np.isnan(x).any():
            raise ValueError("Input X contains NaN")
        out = np.asarray(self._run(x), dtype=np.float64)
        if self.output == "value":
            return out.reshape(rows)
        if out.ndim == 2 and out.shape[1] == 1 and self.classes is not None and len(self.classes) == 2:
            out = np.hstack([1.0 - out, out])  # a binary model that answers P(class 1) only
        return out

    def uses_original(self, columns: list[list[Any]]) -> bool:
        """Whether ``predict`` hands these columns to the original model whole (a null in a string column)."""
        return any(None in columns[i] for i in self.pre.string_inputs)

    def predict(
        self, columns: list[list[Any]], rows: int, original: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> np.ndarray:
        """What the original ``predict_fn`` returns. ``original(row_indices)`` scores rows whose label the
        compiled probabilities cannot decide beyond doubt (a near tie)."""
        if original is not None and self.uses_original(columns):
            # What scikit-learn makes of a null string depends on the DataFrame pandas builds around it: a NaN
            # (missing, imputed) when the column has other strings, None (an unknown category) when it has
            # none, object None throughout with pandas 2. The original model answers such batches.
            return original(np.arange(rows))
        out = self.raw(columns, rows)
        if self.output != "label":
            return out.astype(self.dtype, copy=False)
        assert self.classes is not None
        best = out.argmax(axis=1)
        labels = self.classes.take(best)
        if self.label_band > 0 and out.shape[1] > 1:
            top2 = np.partition(out, -2, axis=1)[:, -2:]
            close = np.flatnonzero(top2[:, 1] - top2[:, 0] <= self.label_band)
            if len(close):
                if original is None:
                    raise ValueError("a near tie needs the original model")
                labels = labels.copy() if labels.dtype != object else labels
                labels[close] = original(close)
        return labels
