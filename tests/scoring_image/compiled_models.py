"""Pipelines of every kind the compiled runtime supports, and two it must refuse, saved as MLflow models.

Data: two doubles with missing values (NaN), a long, a string column with missing values (NaN) and one more
string column, so string imputers with NaN as the missing value (what skl2onnx refuses) are exercised.
"""

from __future__ import annotations

from pathlib import Path

from .models import TRUSTED_TYPES

COLORS = ["red", "green", "blue", "teal"]
SIZES = ["S", "M", "L"]
INPUTS = ["num1", "num2", "count", "color", "size"]


def frame(rows: int, *, seed: int = 0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    num1 = rng.normal(10, 3, rows)
    num1[rng.random(rows) < 0.1] = np.nan
    color = rng.choice(COLORS, rows).astype(object)
    color[rng.random(rows) < 0.1] = np.nan
    size = rng.choice(SIZES, rows).astype(object)
    size[rng.random(rows) < 0.1] = np.nan
    data = pd.DataFrame(
        {
            "num1": num1,
            "num2": rng.lognormal(3, 1, rows).round(2),
            "count": rng.integers(0, 20, rows).astype("int64"),
            "color": color,
            "size": size,
        }
    )
    score = np.nan_to_num(num1, nan=10) / 3 + (data["color"] == "red") * 2 + data["count"] / 7 - 4
    label = (score + rng.normal(0, 0.7, rows) > 0).astype("int64") + (score > 2.5).astype("int64")
    return data, label, score.to_numpy()


def preprocessing():
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    return ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer(strategy="mean")), ("scale", StandardScaler())]), ["num1"]),
            ("median", SimpleImputer(strategy="median"), ["num2"]),
            (
                "color",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                ["color"],
            ),
            (
                "size",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                        ("ordinal", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)),
                    ]
                ),
                ["size"],
            ),
        ],
        remainder="passthrough",
    )


def estimator(kind: str):
    import lightgbm
    import xgboost
    from sklearn import ensemble, linear_model, tree

    return {
        "decision_tree": lambda: tree.DecisionTreeClassifier(max_depth=6, random_state=0),
        "random_forest": lambda: ensemble.RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0),
        "binary_forest": lambda: ensemble.RandomForestClassifier(n_estimators=15, random_state=0),
        "extra_trees_regressor": lambda: ensemble.ExtraTreesRegressor(n_estimators=10, max_depth=6, random_state=0),
        "random_forest_regressor": lambda: ensemble.RandomForestRegressor(n_estimators=10, random_state=0),
        "gradient_boosting": lambda: ensemble.GradientBoostingClassifier(n_estimators=15, random_state=0),
        "gradient_boosting_regressor": lambda: ensemble.GradientBoostingRegressor(n_estimators=15, random_state=0),
        "logistic": lambda: linear_model.LogisticRegression(max_iter=500),
        "linear": lambda: linear_model.LinearRegression(),
        "ridge": lambda: linear_model.Ridge(alpha=0.5),
        "xgboost": lambda: xgboost.XGBClassifier(n_estimators=20, max_depth=4, n_jobs=1),
        "xgboost_binary": lambda: xgboost.XGBClassifier(n_estimators=20, max_depth=4, n_jobs=1),
        "xgboost_sparse": lambda: xgboost.XGBClassifier(n_estimators=20, max_depth=4, n_jobs=1),
        "xgboost_regressor": lambda: xgboost.XGBRegressor(n_estimators=20, max_depth=4, n_jobs=1),
        "lightgbm": lambda: lightgbm.LGBMClassifier(n_estimators=20, num_leaves=15, n_jobs=1, verbose=-1),
        "lightgbm_regressor": lambda: lightgbm.LGBMRegressor(n_estimators=20, num_leaves=15, n_jobs=1, verbose=-1),
    }[kind]()


KINDS = [
    "decision_tree",
    "random_forest",
    "binary_forest",
    "extra_trees_regressor",
    "random_forest_regressor",
    "gradient_boosting",
    "gradient_boosting_regressor",
    "logistic",
    "linear",
    "ridge",
    "xgboost",
    "xgboost_binary",
    "xgboost_sparse",
    "xgboost_regressor",
    "lightgbm",
    "lightgbm_regressor",
]
REGRESSORS = {
    "extra_trees_regressor",
    "random_forest_regressor",
    "gradient_boosting_regressor",
    "linear",
    "ridge",
    "xgboost_regressor",
    "lightgbm_regressor",
}
BINARY = {"binary_forest", "xgboost_binary"}  # fitted on two classes (label > 0) instead of three
BOOSTING = {"xgboost", "xgboost_binary", "xgboost_sparse", "xgboost_regressor", "lightgbm", "lightgbm_regressor"}
# The ColumnTransformer's output is a sparse matrix (as the demo credit pipeline's is): XGBoost takes the entries
# it does not store, zeros, as missing values.
SPARSE = {"xgboost_sparse"}


def save_kind(path: Path, kind: str, *, reference: Path | None = None, **save_options) -> Path:
    """A fitted ``preprocessing() -> estimator(kind)`` pipeline with a signature and an input example; the
    reference data set written to ``reference`` (Parquet) when given."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.pipeline import Pipeline

    data, label, score = frame(600, seed=1)
    target = score if kind in REGRESSORS else (label > 0).astype("int64") if kind in BINARY else label
    pre = preprocessing().set_params(sparse_threshold=1.0) if kind in SPARSE else preprocessing()
    model = Pipeline([("pre", pre), ("model", estimator(kind))]).fit(data, target)
    if reference is not None:
        frame(300, seed=2)[0].to_parquet(reference)
    if kind in BOOSTING:  # skops does not take XGBoost's and LightGBM's estimators
        save_options.setdefault("serialization_format", "cloudpickle")
    else:
        save_options.setdefault(
            "skops_trusted_types", [*TRUSTED_TYPES, "numpy.dtype", "sklearn._loss.loss.HalfBinomialLoss"]
        )
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=infer_signature(data, model.predict(data)),
        input_example=data.head(3),
        **save_options,
    )
    return path


def save_overridden_predict(path: Path) -> Path:
    """A random forest pipeline whose ``predict`` was replaced on the instance (labels shifted by one): its
    fitted trees say one thing and its predict another, so a faithful conversion cannot verify."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.pipeline import Pipeline

    data, label, _ = frame(400, seed=1)
    model = Pipeline([("pre", preprocessing()), ("model", estimator("random_forest"))]).fit(data, label)
    fitted_predict = model.predict
    model.predict = lambda X: (fitted_predict(X) + 1) % 3  # noqa: E731 - pickled with the instance
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=infer_signature(data, model.predict(data)),
        input_example=data.head(3),
        serialization_format="cloudpickle",
    )
    return path


def save_knn(path: Path) -> Path:
    """An estimator the compiled runtime does not support (k nearest neighbours)."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline

    data, label, _ = frame(200, seed=1)
    model = Pipeline([("pre", preprocessing()), ("model", KNeighborsClassifier())]).fit(data, label)
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=infer_signature(data, model.predict(data)),
        input_example=data.head(3),
        serialization_format="cloudpickle",
    )
    return path


def save_numeric(path: Path, kind: str) -> Path:
    """Numbers only, no ColumnTransformer: a bare estimator ("bare_forest") or a scaler before a logistic
    regression ("scaled_logistic")."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    data, label, score = frame(400, seed=1)
    data = data[["num2", "count"]]
    if kind == "bare_forest":
        model = RandomForestRegressor(n_estimators=8, max_depth=5, random_state=0).fit(data, score)
    else:
        model = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())]).fit(data, label)
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=infer_signature(data, model.predict(data)),
        input_example=data.head(5),
        serialization_format="cloudpickle",
    )
    return path


def save_boosting_flavor(path: Path, flavor: str) -> Path:
    """A model logged with XGBoost's or LightGBM's own MLflow flavor, on numbers only:
    - "xgboost": an ``XGBClassifier`` stopped early (its predict uses the first ``best_iteration + 1`` rounds of
      more), answering labels;
    - "xgboost_booster": a ``Booster`` of ``xgboost.train`` on a binary objective, answering P(class 1);
    - "lightgbm": a ``Booster`` of ``lightgbm.train`` on a binary objective, answering P(class 1)."""
    import lightgbm
    import mlflow.lightgbm
    import mlflow.xgboost
    import xgboost
    from mlflow.models import infer_signature

    data, label, _ = frame(500, seed=1)
    data = data[["num1", "num2", "count"]]
    held_out, held_out_label, _ = frame(200, seed=3)
    held_out = held_out[["num1", "num2", "count"]]
    binary = (label > 0).astype("int64")
    save = mlflow.lightgbm.save_model if flavor == "lightgbm" else mlflow.xgboost.save_model
    if flavor == "xgboost":
        model = xgboost.XGBClassifier(n_estimators=200, learning_rate=0.5, early_stopping_rounds=2, n_jobs=1)
        model.fit(data, label, eval_set=[(held_out, held_out_label)], verbose=False)
        assert model.best_iteration + 1 < 200, "the classifier must stop early for this model to mean anything"
    elif flavor == "xgboost_booster":
        params = {"objective": "binary:logistic", "max_depth": 4, "nthread": 1}
        model = xgboost.train(params, xgboost.DMatrix(data, binary), num_boost_round=25)
    else:
        params = {"objective": "binary", "num_leaves": 15, "verbose": -1, "num_threads": 1}
        model = lightgbm.train(params, lightgbm.Dataset(data, binary), num_boost_round=25)
    scored = model.predict(xgboost.DMatrix(data) if flavor == "xgboost_booster" else data)
    save(model, str(path), signature=infer_signature(data, scored), input_example=data.head(3))
    return path
