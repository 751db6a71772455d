"""Compile an MLflow scikit-learn, XGBoost or LightGBM model to a fast runtime, verify it, and record the decision
(image build time).

    python -m scoring compile MODEL_DIR OUT_DIR [--reference FILE.parquet|csv] [--sample-rows 1000]

What compiles: a scikit-learn estimator, or a ``Pipeline`` of an optional ``ColumnTransformer`` (whose parts are
``SimpleImputer`` (numeric or string, ``NaN`` or a value as missing, any strategy), ``OneHotEncoder`` (no ``drop``,
no infrequent categories), ``OrdinalEncoder``, ``StandardScaler``, ``MinMaxScaler``, passthrough / drop, or
``Pipeline`` chains of those) and of column-wise steps, ending in a tree, forest, gradient boosting, linear or
logistic model (the ``_ESTIMATORS`` below) or in XGBoost's or LightGBM's estimators; also the xgboost and lightgbm
flavors (their estimators, and Boosters answering one value per row). The preprocessing becomes ``preprocess.json``
(replayed in numpy by ``scoring/compiled.py``: this is how string imputers with ``NaN`` as the missing value, which
skl2onnx refuses, are handled); the estimator becomes ONNX (skl2onnx, double-precision input) and, for tree
ensembles, a Treelite model (XGBoost: ONNX through onnxmltools and Treelite; LightGBM: Treelite only, see
``_boosting_to_onnx``). Each candidate is timed on 1 and 64 rows; the fastest one that verifies wins.

Verification, before anything is served: the candidate and the original MLflow model (``predict_fn`` of the sklearn
flavor, the pyfunc of the others) score the same rows: the model's input example, up to ``sample_rows`` rows of the
logged reference data, and derived rows with a missing value in each column and an unseen category in each string
column. Labels must be equal exactly; probabilities and regression values within ``ATOL + RTOL * |value|`` (1e-5).
The tolerance: ONNX Runtime's tree ensembles keep leaf values as float32 and add them up in float32 (unit
roundoff u = 2^-24 = 6e-8): the average of n trees' probabilities is off by at most about n*u in the worst case
(1.2e-5 for 200 trees) and by about sqrt(n)*u typically (1e-6; measured: 3e-7 on the 200-tree demo forest).
Linear models run in float64. 1e-5 is far below any difference that matters in a probability. Near ties, where
the two best classes are within ``label_band`` = 2 * max(ATOL, n*u) of each other, are scored by the original
model at serve time, so a label cannot differ from scikit-learn's even outside the verified rows. Anything that
does not convert or does not verify is served by the original model.
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

from .compiled import COMPILED_FLAVORS, CompiledModel

__all__ = ["compile_model", "ATOL", "RTOL"]

NONAN_ONNX = "model.nonan.onnx"

log = logging.getLogger("scoring.compiler")

ATOL = 1e-5
RTOL = 1e-5
_FLOAT32_UNIT = 2.0**-24  # float32's unit roundoff
# scikit-learn estimators by family: "tree" (ONNX and Treelite candidates) or "linear" (ONNX). XGBoost's and
# LightGBM's estimators and Boosters are families of their own (``_family``).
_ESTIMATORS = {
    "DecisionTreeClassifier": "tree",
    "DecisionTreeRegressor": "tree",
    "ExtraTreeClassifier": "tree",
    "ExtraTreeRegressor": "tree",
    "RandomForestClassifier": "tree",
    "RandomForestRegressor": "tree",
    "ExtraTreesClassifier": "tree",
    "ExtraTreesRegressor": "tree",
    "GradientBoostingClassifier": "tree",
    "GradientBoostingRegressor": "tree",
    "LinearRegression": "linear",
    "Ridge": "linear",
    "Lasso": "linear",
    "ElasticNet": "linear",
    "LogisticRegression": "linear",
    "SGDClassifier": "linear",
    "LinearSVC": "linear",
}
_BOOSTING = {
    "xgboost": ("XGBClassifier", "XGBRegressor", "Booster"),
    "lightgbm": ("LGBMClassifier", "LGBMRegressor", "Booster"),
}


class NotCompilable(Exception):
    """The model (or one of its steps) is outside what the compiled runtime replays."""


# ---------------------------------------------------------------------------- preprocessing spec
def _json_value(v: Any) -> Any:
    import numpy as np

    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _column_steps(transformer: Any) -> list[dict[str, Any]] | None:
    """Column-wise steps of one transformer (per input column: a list of step dicts), or None for passthrough."""
    from sklearn.pipeline import Pipeline

    if transformer == "passthrough":
        return []
    name = type(transformer).__name__
    if isinstance(transformer, Pipeline):
        chains: list[list[dict[str, Any]]] | None = None
        for _, step in transformer.steps:
            if step in (None, "passthrough"):
                continue
            parts = _column_steps(step)
            if parts is None:
                continue
            if chains is None:
                chains = [list(p) for p in parts] if parts else None
                if not parts:
                    continue
            elif parts:
                if len(parts) != len(chains):
                    raise NotCompilable(f"{name}: steps of different widths")
                chains = [a + b for a, b in zip(chains, parts, strict=True)]
        return chains or []
    if name == "FunctionTransformer":
        if transformer.func is None:
            return []
        raise NotCompilable("FunctionTransformer with a function")
    if name == "SimpleImputer":
        if transformer.add_indicator:
            raise NotCompilable("SimpleImputer(add_indicator=True)")
        missing = transformer.missing_values
        if isinstance(missing, float) and math.isnan(missing):
            marker: Any = "nan"
        elif missing is None:
            marker = "nan"
        else:
            marker = _json_value(missing)
        stats = transformer.statistics_
        if any(isinstance(s, float) and math.isnan(s) for s in stats):
            raise NotCompilable("SimpleImputer dropped an all-missing column")
        if getattr(transformer, "keep_empty_features", False):
            raise NotCompilable("SimpleImputer(keep_empty_features=True)")
        return [[{"op": "impute", "missing": marker, "fill": _json_value(s)}] for s in stats]
    if name == "StandardScaler":
        mean = transformer.mean_ if transformer.with_mean else None
        scale = transformer.scale_ if transformer.with_std else None
        n = transformer.n_features_in_
        return [
            [
                {
                    "op": "scale",
                    "mean": None if mean is None else float(mean[i]),
                    "scale": None if scale is None else float(scale[i]),
                }
            ]
            for i in range(n)
        ]
    if name == "MinMaxScaler":
        lo, hi = transformer.feature_range
        return [
            [{"op": "minmax", "scale": float(s), "min": float(m), "clip": bool(transformer.clip), "lo": lo, "hi": hi}]
            for s, m in zip(transformer.scale_, transformer.min_, strict=True)
        ]
    if name == "OneHotEncoder":
        if transformer.drop is not None or getattr(transformer, "_infrequent_enabled", False):
            raise NotCompilable("OneHotEncoder with drop or infrequent categories")
        if transformer.handle_unknown not in ("ignore", "infrequent_if_exist"):
            raise NotCompilable("OneHotEncoder(handle_unknown='error')")
        return [[{"op": "onehot", "categories": [_json_value(c) for c in cats]}] for cats in transformer.categories_]
    if name == "OrdinalEncoder":
        if getattr(transformer, "_infrequent_enabled", False):
            raise NotCompilable("OrdinalEncoder with infrequent categories")
        encoded_missing = transformer.encoded_missing_value
        out = []
        for cats in transformer.categories_:
            values = [_json_value(c) for c in cats]
            has_nan = values and values[-1] is None
            if has_nan and not (isinstance(encoded_missing, float) and math.isnan(encoded_missing)):
                raise NotCompilable("OrdinalEncoder with a non-NaN encoded_missing_value")
            unknown = transformer.unknown_value if transformer.handle_unknown == "use_encoded_value" else None
            out.append([{"op": "ordinal", "categories": values, "unknown": _json_value(unknown)}])
        return out
    raise NotCompilable(f"{name} is not a supported preprocessing step")


def _preprocess_spec(pipeline: Any, inputs: list[str], kinds: dict[str, str]) -> tuple[dict[str, Any], Any]:
    """(the preprocessing spec, the final estimator)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    steps = [s for _, s in pipeline.steps] if isinstance(pipeline, Pipeline) else [pipeline]
    steps = [s for s in steps if s not in (None, "passthrough")]
    estimator, transforms = steps[-1], steps[:-1]
    position = {name: i for i, name in enumerate(inputs)}
    first = transforms[0] if transforms else None
    columns: list[dict[str, Any]] = []
    if isinstance(first, ColumnTransformer):
        transforms = transforms[1:]
        names_in = list(getattr(first, "feature_names_in_", inputs))
        for _, transformer, cols in first.transformers_:
            if transformer == "drop":
                continue
            if isinstance(cols, str):
                cols = [cols]
            cols = list(cols)
            if any(isinstance(c, bool) or type(c).__name__ == "bool_" for c in cols):
                raise NotCompilable("boolean column masks")
            cols = [names_in[c] if isinstance(c, int) or type(c).__name__.startswith("int") else c for c in cols]
            chains = _column_steps(transformer)
            if not chains:
                chains = [[] for _ in cols]
            if len(chains) != len(cols):
                raise NotCompilable("a transformer whose output is not one chain per input column")
            for col, chain in zip(cols, chains, strict=True):
                if col not in position:
                    raise NotCompilable(f"column {col!r} is not in the signature")
                columns.append({"index": position[col], "steps": chain})
    else:
        fitted_names = _feature_names(pipeline)
        names_in = inputs if fitted_names is None else [str(n) for n in fitted_names]
        columns = [{"index": position[c], "steps": []} for c in names_in if c in position]
        if len(columns) != len(names_in):
            raise NotCompilable("the model's feature names are not the signature's columns")
    for transformer in transforms:  # column-wise steps on the whole matrix (e.g. a scaler after the encoder)
        chains = _column_steps(transformer)
        if not chains:
            continue
        if len(chains) != len(columns) or any(c["steps"] and c["steps"][-1]["op"] == "onehot" for c in columns):
            raise NotCompilable(f"{type(transformer).__name__} after a one-hot encoder")
        for col, chain in zip(columns, chains, strict=True):
            col["steps"] = col["steps"] + chain
    for col in columns:
        kind = kinds.get(inputs[col["index"]], "double")
        encodes = col["steps"] and col["steps"][-1]["op"] in ("onehot", "ordinal")
        if kind == "string" and not encodes:
            raise NotCompilable(f"string column {inputs[col['index']]!r} is not encoded")
        if kind not in ("string", "long", "integer", "double", "float", "boolean"):
            raise NotCompilable(f"column type {kind}")
    width = sum(len(c["steps"][-1]["categories"]) if c["steps"] and c["steps"][-1]["op"] == "onehot" else 1
                for c in columns)  # fmt: skip
    takes = _feature_count(estimator)
    if takes is not None and takes != width:
        raise NotCompilable(f"the estimator takes {takes} features, preprocessing gives {width}")
    family = _family(estimator)
    strings = [i for i, name in enumerate(inputs) if kinds.get(name) == "string"]
    spec = {
        "inputs": inputs,
        "columns": columns,
        "width": width,
        # XGBoost, like scikit-learn's trees, compares float32 features; LightGBM compares float64 ones.
        "float32": family in ("tree", "xgboost"),
        "string_inputs": strings,
        # XGBoost takes the entries a sparse matrix does not store (a sparse ColumnTransformer's zeros) as missing
        "zero_is_missing": family == "xgboost" and bool(getattr(first, "sparse_output_", False)),
    }
    return spec, estimator


def _family(estimator: Any) -> str:
    """The estimator's family: tree or linear (scikit-learn), xgboost or lightgbm (estimators and Boosters)."""
    name = type(estimator).__name__
    library = type(estimator).__module__.split(".")[0]
    if name in _BOOSTING.get(library, ()):
        return library
    if name not in _ESTIMATORS or library != "sklearn":
        raise NotCompilable(f"{name} is not a supported estimator")
    return _ESTIMATORS[name]


def _booster(estimator: Any) -> Any:
    """The Booster of an XGBoost or LightGBM model, limited to the rounds its ``predict`` uses."""
    family = _family(estimator)
    if family == "xgboost":
        booster = estimator if type(estimator).__name__ == "Booster" else estimator.get_booster()
        missing = getattr(estimator, "missing", math.nan)
        if missing == missing:  # not NaN
            raise NotCompilable(f"missing={estimator.missing!r} (only NaN as the missing value compiles)")
        best = getattr(estimator, "best_iteration", None) if type(estimator).__name__ != "Booster" else None
        if best is not None and best + 1 < booster.num_boosted_rounds():  # early stopping: predict stops there
            booster = booster[: best + 1]
        return booster
    if family == "lightgbm":
        # LightGBM's predict and model_to_string (which Treelite reads) both stop at the best iteration, if any.
        return estimator if type(estimator).__name__ == "Booster" else estimator.booster_
    raise NotCompilable(f"{type(estimator).__name__} has no Booster")


def _feature_names(model: Any) -> list[str] | None:
    """The column names the model was fitted on, if it kept them."""
    library = type(model).__module__.split(".")[0]
    try:
        names = getattr(model, "feature_names_in_", None)
    except Exception:  # noqa: BLE001 - LightGBM's property raises when the model was not fitted on named columns
        names = None
    if names is None and type(model).__name__ == "Booster":
        names = model.feature_names if library == "xgboost" else model.feature_name()
    names = [str(n) for n in names] if names is not None and len(names) else None
    if library == "lightgbm" and names == [f"Column_{i}" for i in range(len(names or []))]:
        return None  # fitted on an unnamed matrix: LightGBM takes the columns in order
    return names


def _feature_count(model: Any) -> int | None:
    if hasattr(model, "n_features_in_"):
        return int(model.n_features_in_)
    if type(model).__name__ == "Booster":
        return int(model.num_features() if hasattr(model, "num_features") else model.num_feature())
    return None


def describe(model: Any) -> str:
    """A short name of a (nested) sklearn model, e.g. Pipeline(ColumnTransformer(...), RandomForestClassifier)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        return "Pipeline(" + ", ".join(describe(s) for _, s in model.steps if s not in (None, "passthrough")) + ")"
    if isinstance(model, ColumnTransformer):
        parts = sorted({describe(t) for _, t, _ in model.transformers_ if t != "drop"})
        return "ColumnTransformer(" + ", ".join(parts) + ")"
    if isinstance(model, str):
        return model
    name = type(model).__name__
    return f"{type(model).__module__.split('.')[0]}.{name}" if name == "Booster" else name


# ---------------------------------------------------------------------------- candidates
def _to_onnx(estimator: Any, width: int, out: Path, *, tree: bool) -> dict[str, str]:
    """Write model.onnx (and, for trees, model.nonan.onnx); the preprocess spec's ONNX keys: ``onnx_output`` (the
    output to read: probabilities or variable), ``onnx_input`` (the input dtype), ``onnx_nonan`` (the file for
    inputs without NaN).

    Trees take float32 input (scikit-learn's trees compare float32 features too) with every threshold set to
    the largest float32 not above scikit-learn's float64 threshold, so ``x <= threshold`` decides exactly as
    scikit-learn does for every float32 ``x``; skl2onnx rounds thresholds to the nearest float32 (even for
    double input), which sends a feature equal to a rounded-up threshold down the wrong branch. Linear models
    take float64 input.

    Two rewrites make ONNX Runtime's tree walk cheaper (measured on the 200-tree demo forest, 512 rows, one
    thread: about 1.5x together); the verification below covers both, as it scores through them:
    - a binary forest classifier becomes a regressor of P(class 1) (ONNX Runtime's classifier aggregates each
      row's scores in a per-class vector; the regressor in one number; ``CompiledModel`` answers [1 - p, p]);
    - ``model.nonan.onnx`` is the same trees without the NaN branches, scored when the input has no NaN.
    """
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "classes_") else None
    tensor = FloatTensorType if tree else DoubleTensorType
    onx = to_onnx(estimator, initial_types=[("X", tensor([None, width]))], options=options)
    names = [o.name for o in onx.graph.output]
    name = ("probabilities" if "probabilities" in names else names[-1]) if hasattr(estimator, "classes_") else names[0]
    keys = {"onnx_input": "float32" if tree else "float64"}
    if tree:
        _exact_thresholds(onx, estimator)
        name = _binary_forest_as_regressor(onx) or name
        nonan = _without_nan_branches(onx)
        if nonan is not None:
            (out / NONAN_ONNX).write_bytes(nonan.SerializeToString())
            keys["onnx_nonan"] = NONAN_ONNX
    (out / "model.onnx").write_bytes(onx.SerializeToString())
    keys["onnx_output"] = name
    return keys


def _binary_forest_as_regressor(onx: Any) -> str | None:
    """Rewrite a binary forest classifier (one TreeEnsembleClassifier node whose leaves hold non-negative weights
    of one class, averaged without a transform: skl2onnx's random forests and extra trees) into a
    TreeEnsembleRegressor of the same trees and weights, i.e. P(class 1) as ONNX Runtime's binary classifier
    computes it. Returns the new output's name, or None when the graph is not of that shape."""
    from onnx import TensorProto, helper

    graph = onx.graph
    if len(graph.node) != 1 or graph.node[0].op_type != "TreeEnsembleClassifier":
        return None
    node = graph.node[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    labels = attrs.get("classlabels_int64s") or attrs.get("classlabels_strings") or []
    if (
        len(labels) != 2
        or set(attrs.get("class_ids", [])) != {0}
        or attrs.get("post_transform", b"NONE") not in (b"NONE", "NONE")
        or attrs.get("base_values")
        or min(attrs.get("class_weights", [-1.0])) < 0
    ):
        return None
    kept = {k: v for k, v in attrs.items() if k.startswith("nodes_")}
    regressor = helper.make_node(
        "TreeEnsembleRegressor",
        [node.input[0]],
        ["p1"],
        domain="ai.onnx.ml",
        n_targets=1,
        aggregate_function="SUM",
        post_transform="NONE",
        target_ids=attrs["class_ids"],
        target_nodeids=attrs["class_nodeids"],
        target_treeids=attrs["class_treeids"],
        target_weights=attrs["class_weights"],
        **kept,
    )
    del graph.node[:]
    graph.node.append(regressor)
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("p1", TensorProto.FLOAT, [None, 1]))
    return "p1"


def _without_nan_branches(onx: Any) -> Any | None:
    """A copy of a tree ensemble without ``nodes_missing_value_tracks_true`` (every NaN takes the false branch):
    ONNX Runtime then walks the trees without a NaN test per node. Equal to the original for inputs without
    NaN; None when no node sends NaN to its true branch."""
    import copy

    found = False
    nonan = copy.deepcopy(onx)
    for node in nonan.graph.node:
        for attr in list(node.attribute):
            if attr.name == "nodes_missing_value_tracks_true":
                found = found or any(attr.ints)
                node.attribute.remove(attr)
    return nonan if found else None


def _sklearn_trees(estimator: Any) -> list[Any]:
    import numpy as np

    if hasattr(estimator, "tree_"):
        return [estimator.tree_]
    members = getattr(estimator, "estimators_", None)
    if members is None:
        raise NotCompilable(f"{type(estimator).__name__}: no scikit-learn trees to take thresholds from")
    return [m.tree_ for m in np.ravel(np.asarray(members, dtype=object))]


def _exact_thresholds(onx: Any, estimator: Any) -> None:
    """Replace the ONNX tree ensemble's float32 thresholds by round-down(scikit-learn threshold) and send NaN
    where scikit-learn does; refuse the conversion (NotCompilable) when the ONNX nodes cannot be matched to
    scikit-learn's one to one."""
    import numpy as np
    from onnx import helper

    trees = _sklearn_trees(estimator)
    changed = 0
    for node in onx.graph.node:
        if not node.op_type.startswith("TreeEnsemble"):
            continue
        attrs = {a.name: a for a in node.attribute}
        tree_ids = list(attrs["nodes_treeids"].ints)
        node_ids = list(attrs["nodes_nodeids"].ints)
        modes = [m.decode() for m in attrs["nodes_modes"].strings]
        values = np.array(attrs["nodes_values"].floats, dtype=np.float32)
        missing_left = [0] * len(values)
        if len(set(tree_ids)) != len(trees):
            raise NotCompilable(f"{len(set(tree_ids))} ONNX trees for {len(trees)} scikit-learn trees")
        for i, (t, n, mode) in enumerate(zip(tree_ids, node_ids, modes, strict=True)):
            if mode == "LEAF":
                continue
            if mode != "BRANCH_LEQ":
                raise NotCompilable(f"tree node mode {mode}")
            exact = float(trees[t].threshold[n])
            down = np.float32(exact)
            if float(down) > exact:
                down = np.nextafter(down, np.float32(-np.inf))
            if values[i] != down and values[i] != np.nextafter(down, np.float32(np.inf)):
                raise NotCompilable("ONNX tree nodes do not match scikit-learn's")
            changed += values[i] != down
            values[i] = down
            # Where scikit-learn sends a NaN: its learned (or, for features without NaN in training, the
            # larger child's) side; ONNX's "true" branch of BRANCH_LEQ is scikit-learn's left child.
            missing_left[i] = int(trees[t].missing_go_to_left[n])
        node.attribute.remove(attrs["nodes_values"])
        node.attribute.append(helper.make_attribute("nodes_values", values.tolist()))
        if "nodes_missing_value_tracks_true" in attrs:
            node.attribute.remove(attrs["nodes_missing_value_tracks_true"])
        node.attribute.append(helper.make_attribute("nodes_missing_value_tracks_true", missing_left))
    log.info("%d tree threshold(s) rounded down to match scikit-learn", changed)


def _boosting_to_onnx(estimator: Any, width: int, out: Path) -> dict[str, Any]:
    """XGBoost's trees in ONNX (onnxmltools), float32 input: XGBoost compares float32 features with float32
    thresholds (``x < t``), as the converted trees do (``BRANCH_LT``), so every row takes the same branches.
    LightGBM compares float64 features with float64 thresholds, which ONNX's tree ensembles cannot hold: its
    models are left to Treelite."""
    if _family(estimator) != "xgboost":
        raise NotCompilable("LightGBM's float64 thresholds do not fit ONNX's float32 tree ensembles")
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    booster = _booster(estimator).copy()
    booster.feature_names = None  # onnxmltools reads features by position (f0, f1, ...), as the matrix has them
    onx = convert_xgboost(booster, initial_types=[("X", FloatTensorType([None, width]))])
    names = [o.name for o in onx.graph.output]
    keys: dict[str, Any] = {"onnx_input": "float32"}
    keys["onnx_output"] = "probabilities" if "probabilities" in names else names[0]
    if keys["onnx_output"] == "probabilities" and not hasattr(estimator, "classes_"):
        keys["onnx_column"] = 1  # a binary Booster: its predict answers P(class 1)
    nonan = _without_nan_branches(onx)
    if nonan is not None:
        (out / NONAN_ONNX).write_bytes(nonan.SerializeToString())
        keys["onnx_nonan"] = NONAN_ONNX
    (out / "model.onnx").write_bytes(onx.SerializeToString())
    return keys


def _to_treelite(estimator: Any, out: Path) -> None:
    import treelite

    family = _family(estimator)
    if family == "tree":
        import treelite.sklearn

        model = treelite.sklearn.import_model(estimator)
    elif family == "xgboost":
        model = treelite.frontend.from_xgboost(_booster(estimator))
    elif family == "lightgbm":
        model = treelite.frontend.from_lightgbm(_booster(estimator))
    else:
        raise NotCompilable(f"Treelite does not import {type(estimator).__name__}")
    model.serialize(str(out / "model.treelite"))


def _tree_count(estimator: Any, family: str) -> int:
    if family == "xgboost":
        return len(_booster(estimator).get_dump())
    if family == "lightgbm":
        return int(_booster(estimator).num_trees())
    return len(_sklearn_trees(estimator))


# ---------------------------------------------------------------------------- verification rows
def _rows(model_dir: Path, reference: Path | None, inputs: list[str], kinds: dict[str, str], limit: int):
    """The rows to verify on: the input example, up to ``limit`` reference rows, and derived edge rows."""
    import pandas as pd

    frames = []
    for name in ("input_example.json", "serving_input_example.json"):
        path = model_dir / name
        if path.is_file():
            data = json.loads(path.read_text())
            if name.startswith("serving"):
                data = data.get("dataframe_split") or data.get("dataframe_records") or data.get("inputs")
            try:
                frame = pd.DataFrame(**data) if isinstance(data, dict) and "data" in data else pd.DataFrame(data)
            except (TypeError, ValueError):
                continue
            frames.append(frame)
            break
    if reference is not None and reference.is_file():
        ref = pd.read_parquet(reference) if reference.suffix == ".parquet" else pd.read_csv(reference)
        if len(ref) > limit:
            ref = ref.sample(n=limit, random_state=0)
        frames.append(ref)
    frames = [f for f in frames if set(inputs) <= set(f.columns)]
    if not frames:
        raise NotCompilable("no input example or reference data with the signature's columns to verify on")
    base = pd.concat([f[inputs] for f in frames], ignore_index=True)
    columns = [base[c].tolist() for c in inputs]
    # Edge rows: a missing value in each column in turn, an unseen category in each string column.
    first = [c[0] for c in columns]
    edges = []
    for j, name in enumerate(inputs):
        row = list(first)
        row[j] = None
        edges.append(row)
        if kinds.get(name) == "string":
            row = list(first)
            row[j] = "__unseen_category__"
            edges.append(row)
    return columns, edges


def _plain(columns: list[list[Any]], kinds: dict[str, str], inputs: list[str]) -> list[list[Any]]:
    """JSON-like values as the fast path hands them over (Python ints/floats/strs, None for missing)."""
    out = []
    for name, values in zip(inputs, columns, strict=True):
        kind = kinds.get(name)
        clean = []
        for v in values:
            if hasattr(v, "item"):
                v = v.item()
            if v is None or (isinstance(v, float) and math.isnan(v)):
                clean.append(None)
            elif kind in ("long", "integer") and isinstance(v, float) and v.is_integer():
                clean.append(int(v))
            else:
                clean.append(v)
        out.append(clean)
    return out


def _compare(expected: Any, got: Any, output: str) -> tuple[bool, float, str]:
    """(equal within tolerance, max abs difference, why not)."""
    import numpy as np

    expected = np.asarray(expected)
    got = np.asarray(got)
    if expected.shape != got.shape:
        return False, math.inf, f"shape {got.shape} vs {expected.shape}"
    if output == "label":
        if expected.dtype != got.dtype:
            return False, math.inf, f"dtype {got.dtype} vs {expected.dtype}"
        same = bool((expected == got).all())
        return same, 0.0, "" if same else f"{int((expected != got).sum())} label(s) differ"
    diff = np.abs(expected.astype(np.float64) - got.astype(np.float64))
    worst = float(diff.max()) if diff.size else 0.0
    ok = bool((diff <= ATOL + RTOL * np.abs(expected.astype(np.float64))).all())
    return ok, worst, "" if ok else f"max difference {worst:.3g} over the tolerance"


def _time_ms(fn, *args, repeat: int = 30) -> float:
    fn(*args)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


# ---------------------------------------------------------------------------- entry point
def compile_model(
    model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    reference: str | os.PathLike[str] | None = None,
    sample_rows: int = 1000,
    runtimes: tuple[str, ...] = ("onnxruntime", "treelite"),
) -> dict[str, Any]:
    """Write ``out_dir`` (``decision.json`` always; the compiled files when a candidate verified) and return
    the decision: ``{"runtime": "onnxruntime" | "treelite" | "original", "reason", "max_abs_diff", ...}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("model.onnx", NONAN_ONNX, "model.treelite", "preprocess.json", "requirements.txt"):
        (out / name).unlink(missing_ok=True)
    started = time.monotonic()
    try:
        decision = _compile(Path(model_dir), out, Path(reference) if reference else None, sample_rows, runtimes)
    except NotCompilable as exc:
        decision = {"runtime": "original", "reason": f"not compiled: {exc}"}
    except Exception as exc:  # a converter's bug must never stop an image build: serve the original
        log.exception("compilation failed")
        decision = {"runtime": "original", "reason": f"not compiled: {type(exc).__name__}: {exc}"}
    decision["seconds"] = round(time.monotonic() - started, 2)
    if decision["runtime"] == "original":
        for name in ("model.onnx", NONAN_ONNX, "model.treelite", "preprocess.json"):
            (out / name).unlink(missing_ok=True)
    else:
        for name in ("model.onnx", NONAN_ONNX, "model.treelite"):
            if not name.endswith("onnx" if decision["runtime"] == "onnxruntime" else "treelite"):
                (out / name).unlink(missing_ok=True)
    (out / "requirements.txt").write_text(_requirements(decision["runtime"]))
    (out / "decision.json").write_text(json.dumps(decision, indent=2, sort_keys=True) + "\n")
    return decision


def _requirements(runtime: str) -> str:
    """The compiled runtime's package, pinned to what this compiler verified with (installed into the image)."""
    from importlib.metadata import version

    if runtime == "onnxruntime":
        return f"onnxruntime=={version('onnxruntime')}\n"
    if runtime == "treelite":
        return f"treelite=={version('treelite')}\n"
    return "# the original model's runtime only\n"


def _compile(model_dir: Path, out: Path, reference: Path | None, sample_rows: int, runtimes) -> dict[str, Any]:
    import mlflow.pyfunc
    import numpy as np
    from mlflow.types.schema import ColSpec

    from .model import _to_array

    pyfunc = mlflow.pyfunc.load_model(str(model_dir))
    meta = pyfunc.metadata
    conf = meta.flavors.get("python_function", {})
    loader = conf.get("loader_module")
    if loader not in COMPILED_FLAVORS:
        raise NotCompilable(f"flavor {loader} (scikit-learn, XGBoost and LightGBM models compile)")
    schema = meta.get_input_schema()
    if schema is None or not schema.has_input_names() or not all(isinstance(s, ColSpec) for s in schema.inputs):
        raise NotCompilable("no column signature")
    inputs = [s.name for s in schema.inputs]
    kinds = {s.name: getattr(s.type, "name", str(s.type)) for s in schema.inputs}
    raw = pyfunc.get_raw_model()
    predict_fn = conf.get("predict_fn", "predict") if loader == "mlflow.sklearn" else "predict"
    kind = describe(raw)
    spec, estimator = _preprocess_spec(raw, inputs, kinds)
    is_classifier = hasattr(estimator, "classes_")
    if predict_fn == "predict":
        output = "label" if is_classifier else "value"
    elif predict_fn == "predict_proba" and is_classifier:
        output = "proba"
    else:
        raise NotCompilable(f"predict_fn {predict_fn}")
    classes = estimator.classes_ if is_classifier else None
    if classes is not None and classes.dtype.kind not in "iub" and classes.dtype != object:
        raise NotCompilable(f"class labels of dtype {classes.dtype}")
    if classes is not None and classes.dtype == object and not all(isinstance(c, str) for c in classes):
        raise NotCompilable("class labels that are not all strings")

    columns, edges = _rows(model_dir, reference, inputs, kinds, sample_rows)
    columns = _plain(columns, kinds, inputs)
    rows = len(columns[0])
    # The sklearn flavor's pyfunc calls the estimator's predict_fn after its schema checks; XGBoost's and
    # LightGBM's wrap it (a DMatrix, validated feature names): the whole pyfunc is the reference for those.
    predict = getattr(raw, predict_fn) if loader == "mlflow.sklearn" else pyfunc.predict

    def frame(cols: list[list[Any]]):
        import pandas as pd

        return pd.DataFrame({n: _to_array(kinds[n], v, np, pd) for n, v in zip(inputs, cols, strict=True)})

    expected = predict(frame(columns))
    if output == "value" and np.ndim(expected) != 1:
        raise NotCompilable(f"predictions of shape {np.shape(expected)} (one value per row compiles)")
    proba = None
    if output == "label" and hasattr(raw, "predict_proba"):

        def proba(cols: list[list[Any]]):
            return raw.predict_proba(frame(cols))

    edge_cols = [list(c) for c in zip(*edges, strict=True)] if edges else None
    edge_expected: list[tuple[list[list[Any]], Any]] = []
    if edge_cols is not None:
        for i in range(len(edges)):  # one at a time: a row the original refuses is left out, not the whole set
            one = [[c[i]] for c in edge_cols]
            try:
                edge_expected.append((one, predict(frame(one))))
            except Exception:  # noqa: BLE001 - the original cannot score it either: nothing to compare
                continue

    def original_for(cols: list[list[Any]]):
        def original(index):
            return predict(frame([[c[i] for i in index] for c in cols]))

        return original

    family = _family(estimator)
    try:
        allow_nan = family in _BOOSTING or bool(estimator.__sklearn_tags__().input_tags.allow_nan)
    except AttributeError:
        allow_nan = False
    preprocess = {
        # the original's float dtype (XGBoost answers float32): the compiled answer is cast to it
        "dtype": None if output == "label" else str(np.asarray(expected).dtype),
        "allow_nan": allow_nan,
        "preprocess": spec,
        "output": output,
        "classes": None if classes is None else classes.tolist(),
        "classes_dtype": None if classes is None else str(classes.dtype),
    }
    (out / "preprocess.json").write_text(json.dumps(preprocess, sort_keys=True))
    band = 2 * ATOL
    if family != "linear":
        try:
            band = 2 * max(ATOL, _tree_count(estimator, family) * _FLOAT32_UNIT)
        except NotCompilable:
            band = 2 * max(ATOL, 1000 * _FLOAT32_UNIT)
    candidates: dict[str, dict[str, Any]] = {}
    bench64 = [c * (64 // max(1, rows) + 1) for c in columns]
    bench64 = [c[:64] for c in bench64]
    bench1 = [c[:1] for c in columns]
    original_ms = {
        "1": round(_time_ms(lambda: predict(frame(bench1)), repeat=10), 4),
        "64": round(_time_ms(lambda: predict(frame(bench64)), repeat=10), 4),
    }
    for runtime in runtimes:
        entry: dict[str, Any] = {}
        candidates[runtime] = entry
        try:
            if runtime == "onnxruntime":
                for key in ("onnx_output", "onnx_input", "onnx_nonan", "onnx_column"):
                    preprocess.pop(key, None)
                if family in _BOOSTING:
                    preprocess.update(_boosting_to_onnx(estimator, spec["width"], out))
                else:
                    preprocess.update(_to_onnx(estimator, spec["width"], out, tree=family == "tree"))
                (out / "preprocess.json").write_text(json.dumps(preprocess, sort_keys=True))
            elif runtime == "treelite":
                _to_treelite(estimator, out)
            decision = {"runtime": runtime, "label_band": band}
            compiled = CompiledModel(out, decision)
        except Exception as exc:  # noqa: BLE001 - a candidate that does not convert is only not chosen
            entry["error"] = f"{type(exc).__name__}: {exc}"[:500]
            continue

        # Verification compares without the near-tie guard: the raw compiled answer must already agree.
        compiled.label_band = 0.0
        ok, worst, why = _check(compiled, columns, rows, expected, output, proba, original_for(columns))
        for one, want in edge_expected if ok else []:
            try:
                ok1, worst1, why1 = _check(compiled, one, 1, want, output, proba, original_for(one))
            except Exception as exc:  # noqa: BLE001
                ok1, worst1, why1 = False, math.inf, f"an edge row failed: {type(exc).__name__}: {exc}"
            worst = max(worst, worst1)
            if not ok1:
                ok, why = False, f"edge row {one}: {why1}"
                break
        entry.update(verified=ok, max_abs_diff=worst)
        if not ok:
            entry["error"] = why
            continue
        entry["ms"] = {
            "1": round(_time_ms(compiled.predict, bench1, 1), 4),
            "64": round(_time_ms(compiled.predict, bench64, 64), 4),
        }
    good = {k: v for k, v in candidates.items() if v.get("verified")}
    base = {
        "model_kind": kind,
        "output": output,
        "verified_rows": rows + len(edge_expected),
        "tolerance": {"atol": ATOL, "rtol": RTOL},
        "candidates": candidates,
        "original_ms": original_ms,
    }
    if not good:
        reasons = "; ".join(f"{k}: {v.get('error', 'not verified')}" for k, v in candidates.items())
        return {"runtime": "original", "reason": f"no candidate verified ({reasons})", **base}
    best = min(good, key=lambda k: good[k]["ms"]["1"] + good[k]["ms"]["64"] / 8)
    return {
        "runtime": best,
        "reason": f"verified on {base['verified_rows']} rows; fastest of {', '.join(sorted(good))}",
        "max_abs_diff": good[best]["max_abs_diff"],
        "label_band": band,
        **base,
    }


def _check(compiled, columns, rows, expected, output, proba=None, original=None) -> tuple[bool, float, str]:
    """The compiled answer (without the near-tie guard) against the original's; for labels, also the
    probabilities behind them (``proba``)."""
    got = compiled.predict(columns, rows, original)
    ok, worst, why = _compare(expected, got, output)
    if ok and output == "label" and proba is not None and not compiled.uses_original(columns):
        ok, worst, why = _compare(proba(columns), compiled.raw(columns, rows), "proba")
    return ok, worst, why
