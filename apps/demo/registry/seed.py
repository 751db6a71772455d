"""Train the demo models and register them in the configured MLflow registry.

Safe to run again: a model that already has its versions is left alone; aliases are re-pointed.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn import metrics
from sklearn.model_selection import train_test_split

from apps.demo.registry import credit_default, synthetic

__all__ = ["DEMO_MODELS", "demo_models_ensure", "DemoModel", "DemoVersion"]

# What the scoring image needs to load these models; pinned like pyproject.toml.
PIP_REQUIREMENTS = ["mlflow==3.17.2", "scikit-learn==1.9.1", "pandas==3.1.1", "numpy==2.4.6", "skops==0.16.0"]
REFERENCE_ARTIFACT = "reference/reference.parquet"
# We trained these trees ourselves in this process, so their node arrays are trusted.
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


@dataclass(frozen=True)
class DemoVersion:
    description: str
    params: dict[str, object]
    build: Callable[..., object]


@dataclass(frozen=True)
class DemoModel:
    name: str
    description: str
    task: str  # "classification" or "regression"
    target: str
    frame: Callable[..., pd.DataFrame]
    versions: list[DemoVersion]
    aliases: dict[str, int] = field(default_factory=dict)  # alias -> 1-based version
    stages: dict[int, str] = field(default_factory=dict)  # legacy stages, shown where registries have them
    tags: dict[str, str] = field(default_factory=dict)


def _credit(**params):
    return credit_default.build_pipeline(**params)


DEMO_MODELS = [
    DemoModel(
        name="credit-default",
        description=(
            "Will a credit-card client default next month? Answers a class label per row: 1 = will default, "
            "0 = will not (the reference PoC: one-hot + forest; roc_auc and log_loss rate its probabilities)."
        ),
        task="classification",
        target=credit_default.TARGET,
        frame=credit_default.make_frame,
        versions=[
            DemoVersion("Baseline forest, 50 shallow trees.", {"n_estimators": 50}, _credit),
            DemoVersion("200 trees, the reference configuration.", {"n_estimators": 200}, _credit),
        ],
        aliases={"production": 1, "staging": 2},
        tags={"team": "risk", "use_case": "credit-scoring"},
    ),
    DemoModel(
        name="house-prices",
        description="Sale price estimate from floor area, rooms, age and district.",
        task="regression",
        target="price",
        frame=synthetic.house_prices_frame,
        versions=[
            DemoVersion("Gradient boosting, 50 stages.", {"n_estimators": 50}, synthetic.house_prices_pipeline),
            DemoVersion("Gradient boosting, 150 stages.", {"n_estimators": 150}, synthetic.house_prices_pipeline),
        ],
        aliases={"production": 2},
        tags={"team": "pricing"},
    ),
    DemoModel(
        name="customer-churn",
        description=(
            "Will a subscriber cancel within 90 days? Answers a class label per row: 1 = will cancel, 0 = will "
            "not. Logistic regression on usage features."
        ),
        task="classification",
        target="churned",
        frame=synthetic.churn_frame,
        versions=[
            DemoVersion("Regularised (C=0.1).", {"c": 0.1}, synthetic.churn_pipeline),
            DemoVersion("C=1.0.", {"c": 1.0}, synthetic.churn_pipeline),
            DemoVersion("C=10, candidate.", {"c": 10.0}, synthetic.churn_pipeline),
        ],
        aliases={"staging": 3, "production": 2},
        stages={2: "Production", 3: "Staging"},
        tags={"team": "growth"},
    ),
]


def _scores(model: DemoModel, estimator, x: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    if model.task == "classification":
        proba = estimator.predict_proba(x)[:, 1]
        predicted = (proba >= 0.5).astype(int)
        return {
            "accuracy": metrics.accuracy_score(y, predicted),
            "roc_auc": metrics.roc_auc_score(y, proba),
            "f1": metrics.f1_score(y, predicted),
            "log_loss": metrics.log_loss(y, proba),
        }
    predicted = estimator.predict(x)
    return {"rmse": metrics.root_mean_squared_error(y, predicted), "r2": metrics.r2_score(y, predicted)}


def _experiment_id(client: MlflowClient, name: str, artifact_root: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment:
        return experiment.experiment_id
    # A tracking server chooses its own artifact store; a local registry keeps artifacts under var/.
    location = (
        Path(artifact_root, name.replace("/", "_")).resolve().as_uri()
        if artifact_root and "://" not in artifact_root
        else None
    )
    return client.create_experiment(name, artifact_location=location)


def _register_version(client: MlflowClient, model: DemoModel, index: int, experiment_id: str, rows: int) -> None:
    spec = model.versions[index]
    frame = model.frame(rows, seed=index)
    x, y = frame.drop(columns=[model.target]), frame[model.target]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=index)
    estimator = spec.build(**spec.params)
    estimator.fit(x_train, y_train)
    # What the served model answers: the pyfunc flavour calls predict, so a classifier answers class labels (the
    # signature says so, and so does the description), never the probability its metrics are computed from.
    output = estimator.predict(x_test.head(50))
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{model.name}-v{index + 1}"):
        mlflow.log_params({**spec.params, "rows": rows, "features": x.shape[1]})
        mlflow.log_metrics(_scores(model, estimator, x_test, y_test))
        mlflow.set_tags({"demo": "true", **model.tags})
        with tempfile.TemporaryDirectory() as tmp:
            reference = Path(tmp, "reference.parquet")
            # The drift baseline's reference data, with what the served model answers for it (prediction drift).
            x_test.assign(prediction=estimator.predict(x_test)).to_parquet(reference, index=False)
            mlflow.log_artifact(str(reference), artifact_path="reference")
        info = mlflow.sklearn.log_model(
            estimator,
            name="model",
            signature=infer_signature(x_test.head(50), output),
            input_example=x_test.head(3),
            pip_requirements=PIP_REQUIREMENTS,
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            registered_model_name=model.name,
        )
    version = str(info.registered_model_version)
    client.update_model_version(model.name, version, description=spec.description)
    client.set_model_version_tag(model.name, version, "demo", "true")


def demo_models_ensure(
    *, tracking_uri: str, registry_uri: str, artifact_root: str, rows: int = 4000, log: Callable[[str], None] = print
) -> list[str]:
    """Register every demo model with all its versions; returns the names of models that got new versions."""
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        # MLflow's chatter (deprecated stages, integer-column hints, "creating a new version") is not for users.
        warnings.simplefilter("ignore")
        return _ensure_all(tracking_uri, registry_uri, artifact_root, rows, log)


def _ensure_all(
    tracking_uri: str, registry_uri: str, artifact_root: str, rows: int, log: Callable[[str], None]
) -> list[str]:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
    changed = []
    for model in DEMO_MODELS:
        try:
            existing = len(client.search_model_versions(f"name = '{model.name}'"))
        except mlflow.exceptions.MlflowException:
            existing = 0
        if existing == 0 and not client.search_registered_models(f"name = '{model.name}'"):
            client.create_registered_model(model.name, tags=model.tags, description=model.description)
        elif client.get_registered_model(model.name).description != model.description:
            # a registry seeded before the description said what the model answers
            client.update_registered_model(model.name, description=model.description)
        experiment_id = _experiment_id(client, f"demo/{model.name}", artifact_root)
        for index in range(existing, len(model.versions)):
            log(f"  training {model.name} v{index + 1} ({model.versions[index].description})")
            _register_version(client, model, index, experiment_id, rows)
            changed.append(model.name)
        for alias, version in model.aliases.items():
            client.set_registered_model_alias(model.name, alias, str(version))
        for version, stage in model.stages.items():
            client.transition_model_version_stage(model.name, str(version), stage)
    return changed
