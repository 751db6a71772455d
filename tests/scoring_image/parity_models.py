"""The kinds of model MLflow's own scoring-server tests build, saved small, for the parity suite.

Each ``save_*`` writes a real MLflow model directory; ``PARITY_MODELS`` maps a short name to it.
The PythonModels live in ``parity_pymodels.py`` (imported by both servers through ``code_paths``).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CODE = [str(HERE / "parity_pymodels.py")]
REQS = ["mlflow"]  # skip requirement inference (a subprocess per model)
if str(HERE) not in sys.path:  # pickles must name the module as the servers import it (code_paths)
    sys.path.insert(0, str(HERE))


def iris_xy():
    from sklearn import datasets

    iris = datasets.load_iris()
    return iris.data[:, :2], iris.target


def save_sklearn_skops(path: Path) -> Path:
    """MLflow's test model: KNN on two iris features, default (skops) format, no signature."""
    import mlflow.sklearn
    from sklearn.neighbors import KNeighborsClassifier

    x, y = iris_xy()
    trusted = ["sklearn.metrics._dist_metrics.EuclideanDistance64", "sklearn.neighbors._kd_tree.KDTree"]
    mlflow.sklearn.save_model(
        KNeighborsClassifier().fit(x, y), str(path), skops_trusted_types=trusted, pip_requirements=REQS
    )
    return path


def save_sklearn_pickle_with_params(path: Path) -> Path:
    """Logistic regression in cloudpickle format, column signature (fast path) and a params schema."""
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from mlflow.types import DataType, ParamSchema, ParamSpec
    from sklearn.linear_model import LogisticRegression

    x, y = iris_xy()
    frame = pd.DataFrame(x, columns=["a", "b"])
    model = LogisticRegression(max_iter=200).fit(frame, y)
    signature = infer_signature(frame, model.predict(frame))
    signature.params = ParamSchema([ParamSpec("param1", DataType.datetime, np.datetime64("2023-07-01"))])
    mlflow.sklearn.save_model(
        model, str(path), signature=signature, serialization_format="cloudpickle", pip_requirements=REQS
    )
    return path


def all_types_frame():
    import numpy as np
    import pandas as pd

    return pd.DataFrame(
        {
            "boolean": [True, False, True],
            "integer": np.array([1, 2, 3], np.int32),
            "long": np.array([1, 2, 3], np.int64),
            "float": np.array([math.pi, 2 * math.pi, 3 * math.pi], np.float32),
            "double": [math.pi, 2 * math.pi, 3 * math.pi],
            "binary": [bytes([1, 2, 3]), bytes([4, 5, 6]), bytes([7, 8, 9])],
            "datetime": pd.to_datetime(["2021-01-01 00:00:00", "2021-02-02 00:00:00", "2021-03-03 12:00:00"]),
            "string": np.array(["a", "b", "c"], dtype=object),
        }
    )


def save_all_types(path: Path) -> Path:
    """A PythonModel that answers the dtypes (and binary values) it got; a column signature of every type."""
    import mlflow.pyfunc
    import parity_pymodels
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    schema = Schema([ColSpec(c, c) for c in all_types_frame().columns])
    mlflow.pyfunc.save_model(
        str(path),
        python_model=parity_pymodels.DtypesModel(),
        signature=ModelSignature(schema),
        code_paths=CODE,
        pip_requirements=REQS,
    )
    return path


def save_simple_types(path: Path) -> Path:
    """The same dtype-reporting PythonModel on a signature the fast path takes (long, double, string,
    boolean, and an optional double): its answers show the frame our fast path builds is MLflow's."""
    import mlflow.pyfunc
    import parity_pymodels
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    schema = Schema(
        [
            ColSpec("long", "n"),
            ColSpec("double", "x"),
            ColSpec("string", "s"),
            ColSpec("boolean", "flag"),
            ColSpec("double", "opt", required=False),
        ]
    )
    mlflow.pyfunc.save_model(
        str(path),
        python_model=parity_pymodels.DtypesModel(),
        signature=ModelSignature(schema),
        code_paths=CODE,
        pip_requirements=REQS,
    )
    return path


def save_shapes(path: Path) -> Path:
    """A PythonModel without a signature: its output kind is chosen by the input's ``kind`` column."""
    import mlflow.pyfunc
    import parity_pymodels

    mlflow.pyfunc.save_model(
        str(path), python_model=parity_pymodels.ShapesModel(), code_paths=CODE, pip_requirements=REQS
    )
    return path


def save_tensor_float32(path: Path) -> Path:
    """A tensor signature (float32, shape (-1, 3)), the usual PyTorch/TensorFlow case."""
    import mlflow.pyfunc
    import numpy as np
    import parity_pymodels
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    signature = ModelSignature(
        Schema([TensorSpec(np.dtype(np.float32), (-1, 3))]), Schema([TensorSpec(np.dtype(np.float32), (-1,))])
    )
    mlflow.pyfunc.save_model(
        str(path),
        python_model=parity_pymodels.TensorModel(),
        signature=signature,
        code_paths=CODE,
        pip_requirements=REQS,
    )
    return path


def save_type_hints_from_code(path: Path) -> Path:
    """MLflow 3: a model from code whose signature comes from ``list[str]`` type hints."""
    import mlflow.pyfunc

    mlflow.pyfunc.save_model(
        str(path), python_model=str(HERE / "parity_code_model.py"), input_example=["a"], pip_requirements=REQS
    )
    return path


def save_custom_loader(path: Path) -> Path:
    """A custom ``loader_module`` with a data file, no PythonModel."""
    import mlflow.pyfunc

    data = path.parent / "loader-data.txt"
    data.write_text("3")
    mlflow.pyfunc.save_model(
        str(path), loader_module="parity_pymodels", data_path=str(data), code_paths=CODE, pip_requirements=REQS
    )
    return path


PARITY_MODELS = {
    "sklearn_skops": save_sklearn_skops,
    "sklearn_pickle_params": save_sklearn_pickle_with_params,
    "all_types": save_all_types,
    "simple_types": save_simple_types,
    "shapes": save_shapes,
    "tensor_f32": save_tensor_float32,
    "type_hints": save_type_hints_from_code,
    "custom_loader": save_custom_loader,
}
