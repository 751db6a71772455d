"""Real MLflow registries for tests: a SQLite file, and an ``mlflow server`` process on loopback."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from apps.demo.registry.seed import demo_models_ensure

TEST_ROWS = 600


@dataclass(frozen=True)
class Registry:
    tracking_uri: str
    artifact_root: str


_HANDED_OUT: set[int] = set()
_HANDED_OUT_LOCK = threading.Lock()


def free_port() -> int:
    """A port nobody listens on now and that this test process has not handed out before: servers started
    together (the MLflow parity fixture starts sixteen) would otherwise be given the same just-released port."""
    with _HANDED_OUT_LOCK:
        while True:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                return port


def sqlite_registry(directory: Path) -> Registry:
    registry = Registry(tracking_uri=f"sqlite:///{directory / 'mlflow.sqlite3'}", artifact_root=str(directory / "art"))
    demo_models_ensure(
        tracking_uri=registry.tracking_uri,
        registry_uri=registry.tracking_uri,
        artifact_root=registry.artifact_root,
        rows=TEST_ROWS,
        log=lambda line: None,
    )
    return registry


@contextlib.contextmanager
def mlflow_server(directory: Path, *, backend_uri: str = "", timeout: float = 90) -> Iterator[str]:
    """A real ``mlflow server`` on loopback, on ``backend_uri`` (default: a new SQLite file in ``directory``)."""
    port = free_port()
    log = open(directory / "server.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            backend_uri or f"sqlite:///{directory / 'server.sqlite3'}",
            "--artifacts-destination",
            str(directory / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(directory / 'server.log').read_text()[-2000:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/health", timeout=1).ok:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not become healthy in {timeout:.0f} s")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@contextlib.contextmanager
def http_registry(directory: Path) -> Iterator[Registry]:
    with mlflow_server(directory) as url:
        registry = Registry(tracking_uri=url, artifact_root="")
        demo_models_ensure(tracking_uri=url, registry_uri=url, artifact_root="", rows=TEST_ROWS, log=lambda line: None)
        yield registry


def register_pyfunc_version(
    registry: Registry,
    python_model,
    *,
    model_name: str,
    input_example,
    code_paths: list[str] | None = None,
    experiment: str = "demo/credit-default",
) -> str:
    """Log ``python_model`` as a pyfunc in a run of ``experiment`` and register it as a new version of
    ``model_name``; returns the version."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(registry.tracking_uri)
    mlflow.set_registry_uri(registry.tracking_uri)
    client = MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=python_model,
            code_paths=code_paths,
            input_example=input_example,
            pip_requirements=["mlflow"],
            registered_model_name=model_name,
        )
    return str(info.registered_model_version)
