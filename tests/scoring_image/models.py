"""Models for the scoring tests, saved as real MLflow model directories."""

from __future__ import annotations

import sys
from pathlib import Path

from .helpers import REPO_ROOT

TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def save_credit_default(path: Path, *, n_estimators: int = 20, rows: int = 1500) -> Path:
    """The demo credit-default pipeline, trained on synthetic rows, saved with a signature and example."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from apps.demo.registry.credit_default import INPUT_COLUMNS, TARGET, build_pipeline, make_frame

    frame = make_frame(rows, seed=7)
    features, target = frame[INPUT_COLUMNS], frame[TARGET]
    pipeline = build_pipeline(n_estimators=n_estimators).fit(features, target)
    mlflow.sklearn.save_model(
        pipeline,
        str(path),
        signature=infer_signature(features, pipeline.predict(features)),
        input_example=features.head(3),
        skops_trusted_types=TRUSTED_TYPES,
    )
    return path


def credit_rows(rows: int, *, seed: int = 11):
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from apps.demo.registry.credit_default import INPUT_COLUMNS, make_frame

    return make_frame(rows, seed=seed)[INPUT_COLUMNS]


def save_trouble_model(path: Path) -> Path:
    """A pyfunc that doubles ``x``, raises for tag "boom", sleeps ``x`` seconds for tag "slow",
    and sleeps $TROUBLE_LOAD_DELAY_S seconds while loading (to observe /health/ready before ready)."""
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import infer_signature

    class Trouble(mlflow.pyfunc.PythonModel):
        def load_context(self, context):
            import os
            import time as _time

            _time.sleep(float(os.environ.get("TROUBLE_LOAD_DELAY_S", "0")))

        def predict(self, context, model_input, params=None):
            import time as _time

            if (model_input["tag"] == "boom").any():
                raise RuntimeError("boom requested")
            slow = model_input.loc[model_input["tag"] == "slow", "x"]
            if len(slow):
                _time.sleep(float(slow.max()))
            return (model_input["x"] * 2).to_numpy()

    example = pd.DataFrame({"x": [1.0, 2.0], "tag": ["a", "b"]})
    mlflow.pyfunc.save_model(
        str(path),
        python_model=Trouble(),
        signature=infer_signature(example, example["x"].to_numpy()),
        input_example=example,
    )
    return path


def save_scale_model(path: Path, factor: float) -> Path:
    """A pyfunc that answers ``x * factor``: two of them with different factors tell whose answer a client got."""
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import infer_signature

    class Scale(mlflow.pyfunc.PythonModel):
        def __init__(self, factor: float) -> None:
            self.factor = factor

        def predict(self, context, model_input, params=None):
            return (model_input["x"] * self.factor).to_numpy()

    example = pd.DataFrame({"x": [1.0, 2.0]})
    mlflow.pyfunc.save_model(
        str(path),
        python_model=Scale(factor),
        signature=infer_signature(example, example["x"].to_numpy()),
        input_example=example,
    )
    return path
