"""Real processes for the scoring tests: our server, MLflow's server, and the models they serve."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.registries import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
SCORING_IMAGE = REPO_ROOT / "scoring-image"
PYTHON = sys.executable


def wait_for(url: str, *, timeout: float, status: int = 200, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} while waiting for {url}")
        try:
            last = requests.get(url, timeout=2)
            if last.status_code == status:
                return
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer {status} within {timeout}s (last: {last})")


def compiled_dir_for(model_dir: Path | str) -> Path:
    """``python -m scoring compile`` of a model directory, as the image build does, once per directory
    (beside it, ``<model_dir>.compiled``); its decision.json says whether a compiled runtime serves it."""
    out = Path(f"{model_dir}.compiled")
    if not (out / "decision.json").is_file():
        env = dict(os.environ, MLFLOW_ALLOW_PICKLE_DESERIALIZATION="true")
        env["PYTHONPATH"] = os.pathsep.join([str(SCORING_IMAGE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        subprocess.run(
            [PYTHON, "-m", "scoring", "compile", str(model_dir), str(out)],
            env=env,
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
            timeout=600,
        )
    return out


class ServerProcess:
    """``python -m scoring serve MODEL_DIR`` as a child process, its stdout/stderr in files. Like the image, it
    serves the model compiled at "build" time (``compiled_dir_for``) unless ``compiled=False``."""

    def __init__(
        self,
        model_dir: Path | str,
        log_dir: Path,
        *,
        env: dict[str, str] | None = None,
        workers: int = 1,
        compiled: bool = True,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout_path = log_dir / f"scoring-{self.port}.out"
        self.stderr_path = log_dir / f"scoring-{self.port}.err"
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = os.pathsep.join([str(SCORING_IMAGE), full_env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
        full_env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
        if compiled and (Path(model_dir) / "MLmodel").is_file():
            full_env["SCORING_COMPILED_DIR"] = str(compiled_dir_for(model_dir))
        full_env.update(env or {})
        cmd = [PYTHON, "-m", "scoring", "serve", str(model_dir), "--port", str(self.port), "--host", "127.0.0.1"]
        if workers > 1:
            cmd += ["--workers", str(workers)]
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=self._err, env=full_env, cwd=REPO_ROOT)

    def wait_ready(self, timeout: float = 90) -> ServerProcess:
        try:
            wait_for(self.url + "/health/ready", timeout=timeout, proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"scoring server did not get ready:\n{self.stderr()}") from None
        return self

    def version(self) -> dict:
        return requests.get(self.url + "/version", timeout=10).json()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout_lines(self) -> list[str]:
        return self.stdout_path.read_text().splitlines()

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30) -> int:
        self.terminate()
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._out.close()
        self._err.close()
        return code


class MlflowServer:
    """``mlflow models serve --env-manager local`` (it runs uvicorn in a child: stop the whole group)."""

    def __init__(
        self, model_dir: Path | str, log_dir: Path, *, workers: int = 1, extra_env: dict[str, str] | None = None
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        mlflow_cli = Path(PYTHON).with_name("mlflow")
        # It runs `uvicorn` from PATH: the venv's bin directory must be on it.
        env = dict(os.environ, MLFLOW_ALLOW_PICKLE_DESERIALIZATION="true")
        env["PATH"] = os.pathsep.join([str(mlflow_cli.parent), env.get("PATH", "")])
        env.update(extra_env or {})
        cmd = [
            str(mlflow_cli),
            "models",
            "serve",
            "-m",
            str(model_dir),
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-w",
            str(workers),
        ]
        self._log = open(log_dir / f"mlflow-{self.port}.log", "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait_ready(self, timeout: float = 120) -> MlflowServer:
        wait_for(self.url + "/ping", timeout=timeout, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def metric_value(text: str, name: str, labels: str = "") -> float:
    """Sum of the samples of ``name`` whose label set contains ``labels`` (a substring like 'route="/predict"')."""
    total = 0.0
    found = False
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        metric, _, value = line.rpartition(" ")
        base = metric.split("{", 1)[0]
        if base == name and labels in metric:
            total += float(value)
            found = True
    if not found:
        raise KeyError(f"{name}{{{labels}}} not in metrics")
    return total


class RouterProcess:
    """``python -m scoring route CONFIG`` as a child process (the local target's stable endpoint), its log in a
    file. ``configure`` rewrites the file as the target does (os.replace) and, unless told not to, sends SIGHUP."""

    def __init__(self, config: dict, log_dir: Path, *, args: tuple[str, ...] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = log_dir / f"router-{self.port}.conf"
        self.log_path = log_dir / f"router-{self.port}.log"
        self._write(config)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(SCORING_IMAGE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        cmd = [PYTHON, "-m", "scoring", "route", str(self.config_path), "--port", str(self.port), *args]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
        wait_for(self.url + "/-/router/status", timeout=30, proc=self.proc)

    def _write(self, config: dict) -> str:
        import hashlib
        import json

        data = json.dumps(config).encode()
        tmp = self.config_path.with_name(self.config_path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self.config_path)
        return hashlib.sha256(data).hexdigest()

    def status(self) -> dict:
        return requests.get(self.url + "/-/router/status", timeout=10).json()

    def configure(self, config: dict, *, signal_it: bool = True) -> None:
        """Write ``config`` and wait until the router serves exactly it."""
        digest = self._write(config)
        if signal_it:
            self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while self.status()["digest"] != digest:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the router did not apply {config}:\n{self.log_path.read_text()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        return code
