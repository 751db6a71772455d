"""Session-wide models and servers for the scoring tests (real processes, no mocks of our code)."""

from __future__ import annotations

import os

import pytest

from .helpers import MlflowServer, ServerProcess
from .models import save_credit_default, save_trouble_model

os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return save_credit_default(tmp_path_factory.mktemp("models") / "credit-default")


@pytest.fixture(scope="session")
def trouble_model_dir(tmp_path_factory):
    return save_trouble_model(tmp_path_factory.mktemp("models") / "trouble")


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def ours(model_dir, log_dir):
    """Our server on the credit-default model in strict validation mode (named 422s); telemetry to a file,
    every request sampled."""
    telemetry = log_dir / "telemetry-ours.jsonl"
    server = ServerProcess(
        model_dir,
        log_dir,
        env={
            "SCORING_TELEMETRY_PATH": str(telemetry),
            "SCORING_TELEMETRY_SAMPLE_RATE": "1",
            "SCORING_VALIDATION": "strict",
            "SCORING_MAX_BODY_BYTES": str(256 * 1024),
            "SCORING_DEPLOYMENT": "credit-default-dev",
            "SCORING_MODEL_NAME": "credit-default",
            "SCORING_MODEL_VERSION": "7",
            "SCORING_REVISION": "rev-42",
            "SCORING_IMAGE_DIGEST": "sha256:" + "ab" * 32,
        },
    )
    server.telemetry_path = telemetry
    yield server.wait_ready()
    server.stop()


@pytest.fixture(scope="session")
def mlflow_server(model_dir, log_dir):
    server = MlflowServer(model_dir, log_dir)
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def trouble(trouble_model_dir, log_dir):
    server = ServerProcess(
        trouble_model_dir, log_dir, env={"SCORING_TELEMETRY_SAMPLE_RATE": "0", "SCORING_BATCHING": "row-aligned"}
    )
    yield server.wait_ready()
    server.stop()
