"""PythonModels and a ``loader_module`` for the parity suite; shipped to both servers via ``code_paths``
(imported as the top-level module ``parity_pymodels``, so pickles refer to it by that name)."""

from __future__ import annotations

import time

import mlflow.pyfunc
import numpy as np
import pandas as pd


class DtypesModel(mlflow.pyfunc.PythonModel):
    """Answers what reached it: each column's dtype, and the binary column's values as hex."""

    def predict(self, context, model_input, params=None):
        out = [[k, str(v)] for k, v in model_input.dtypes.items()]
        out.append(["values", model_input.astype(str).to_dict("list")])
        if "binary" in model_input:
            out.append(["binary-values", [bytes(b).hex() if b is not None else None for b in model_input["binary"]]])
        return out


class ShapesModel(mlflow.pyfunc.PythonModel):
    """No signature. A DataFrame with a ``kind`` column picks the output's shape; any other input is
    described (its Python type, dtypes), so the test sees what the server handed the model."""

    def predict(self, context, model_input, params=None):
        if not isinstance(model_input, pd.DataFrame) or "kind" not in model_input:
            return describe(model_input)
        kind = model_input["kind"].iloc[0]
        n = len(model_input)
        if kind == "sleep":
            time.sleep(float(model_input["seconds"].iloc[0]))
            return [0] * n
        if kind == "dict":
            return {"count": n, "names": list(model_input.columns)}
        if kind == "string":
            return "a string"
        if kind == "list":
            return list(range(n))
        if kind == "scalar":
            return 42
        if kind == "ndarray":
            return np.arange(n * 2, dtype=np.float32).reshape(n, 2)
        if kind == "nan":
            return np.array([np.nan] * n)
        if kind == "series":
            return pd.Series(range(n), name="score")
        if kind == "unnamed_series":
            return pd.Series(range(n))
        if kind == "frame":
            return pd.DataFrame({"x": range(n), "y": ["a"] * n})
        if kind == "datetime_frame":
            return pd.DataFrame({"when": pd.to_datetime(["2024-01-02T03:04:05"] * n), "x": range(n)})
        if kind == "echo":
            return model_input.drop(columns=["kind"])
        if kind == "dtypes":
            return describe(model_input)
        raise ValueError(f"unknown kind {kind!r}")


def describe(value):
    out = {"type": type(value).__name__}
    if isinstance(value, pd.DataFrame):
        out["dtypes"] = {str(k): str(v) for k, v in value.dtypes.items()}
    elif isinstance(value, np.ndarray):
        out["dtype"] = str(value.dtype)
        out["shape"] = list(value.shape)
    elif isinstance(value, dict):
        out["keys"] = sorted(value)
        out["values"] = {k: type(v).__name__ for k, v in value.items()}
    return out


class TensorModel(mlflow.pyfunc.PythonModel):
    """Refuses anything but float32 (as a torch model would), answers the row sums."""

    def predict(self, context, model_input, params=None):
        if not isinstance(model_input, np.ndarray) or model_input.dtype != np.float32:
            raise TypeError(f"expected a float32 array, got {getattr(model_input, 'dtype', type(model_input))}")
        return model_input.sum(axis=1)


class _Scaler:
    def __init__(self, factor: float) -> None:
        self.factor = factor

    def predict(self, data, params=None):
        return data.select_dtypes("number") * self.factor


def _load_pyfunc(path):
    """The ``loader_module`` entry point: ``path`` is the model's data file."""
    with open(path) as f:
        return _Scaler(float(f.read()))
