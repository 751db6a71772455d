"""The demo's classifiers say what they answer: a class label per row, in the description and the signature,
and that is what scoring them gives (not the probability the description once promised)."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("name", "labels"), [("credit-default", "1 = will default"), ("customer-churn", "1 = will")])
def test_the_classifiers_answer_the_class_label_they_describe(registry, monkeypatch, name, labels):
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    client = MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)
    description = client.get_registered_model(name).description
    assert "Answers a class label per row" in description and labels in description
    assert "Probability that" not in description
    mlflow.set_tracking_uri(registry.tracking_uri)  # the logged model's metadata is read from the tracking store
    mlflow.set_registry_uri(registry.tracking_uri)
    info = mlflow.models.get_model_info(f"models:/{name}/1")
    outputs = info.signature.outputs.to_dict()
    assert [o["tensor-spec"]["dtype"] for o in outputs] == ["int64"]  # an integer label, not a float probability
    model = mlflow.pyfunc.load_model(f"models:/{name}/1")
    answers = np.asarray(model.predict(model.input_example))
    assert answers.size and set(answers.tolist()) <= {0, 1}
