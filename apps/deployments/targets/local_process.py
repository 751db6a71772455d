"""The embedded default's target: each revision's scoring server runs as a child process on a free port, behind
the deployment's one stable endpoint (a router process on a port kept for the deployment's life: local_router.py).

Processes start in their own session, so they outlive the worker that started them; a state file per
revision (pid, port, model directory) lets any later worker adopt them, stop them, or restart them.

Progressive delivery: every revision is a full scoring process of its own, so a candidate needs no other objects;
``set_traffic`` only rewrites the router's weights and mirror, and ``promote`` only routes all traffic to the
candidate. ``stable_url`` starts the router when it does not run (routing everything to the given revision when no
traffic was ever set), so the URL it returns always answers.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from django.conf import settings

from apps.deployments.backends import PermanentBackendError
from apps.deployments.targets.base import PRIMARY, DeploymentTarget, Log, Readiness, ServingSpec, TrafficSplit
from apps.deployments.targets.local_router import ROUTER_FILES, LocalRouter

__all__ = ["LocalProcessTarget"]

LOG_TAIL_LINES = 6


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive(pid: int, model_dir: str) -> bool:
    """The pid runs and is our scoring server for that model (pids are reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if not cmdline or b"scoring" not in cmdline or model_dir.encode() not in cmdline:
        return False
    status = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()
    return bool(status) and status[0] != "Z"


class LocalProcessTarget(DeploymentTarget):
    name = "local"

    def __init__(
        self,
        *,
        base_dir: Path | str | None = None,
        telemetry_dir: Path | str | None = None,
        host: str = "127.0.0.1",
        **options,
    ) -> None:
        """``base_dir`` and ``telemetry_dir`` default to ``DEPLOY_LOCAL_DIR`` and ``TELEMETRY_DIR``."""
        super().__init__(**options)
        self.base_dir = Path(base_dir or settings.DEPLOY_LOCAL_DIR)
        self.telemetry_dir = Path(telemetry_dir or settings.TELEMETRY_DIR)
        self.host = host

    # ------------------------------------------------------------------ state files
    def _dir(self, spec: ServingSpec) -> Path:
        return self.base_dir / spec.environment / spec.deployment

    def _state_path(self, spec: ServingSpec) -> Path:
        return self._dir(spec) / f"{spec.revision}.json"

    def _state(self, spec: ServingSpec) -> dict | None:
        try:
            return json.loads(self._state_path(spec).read_text())
        except (OSError, ValueError):
            return None

    def _router(self, spec: ServingSpec) -> LocalRouter:
        return LocalRouter(self._dir(spec), self.host, free_port=_free_port, alive=_alive)

    def is_running(self, spec: ServingSpec) -> bool:
        """The revision's scoring process runs, and so does the deployment's router once it has one."""
        state = self._state(spec)
        if not (state and _alive(state["pid"], state["model_dir"])):
            return False
        router = self._router(spec)
        return router.state() is None or router.running()

    # ------------------------------------------------------------------ the interface
    def apply(self, spec: ServingSpec, log: Log) -> None:
        if not spec.model_dir or not Path(spec.model_dir, "MLmodel").is_file():
            raise PermanentBackendError(f"no model directory to serve for {spec.revision} ({spec.model_dir or 'none'})")
        router = self._router(spec)
        if router.state() is not None and not router.running():
            router.ensure(log)  # a dead router comes back on its port with its last configuration
        state = self._state(spec)
        if state and _alive(state["pid"], state["model_dir"]):
            log(f"scoring server of {spec.revision} already runs (pid {state['pid']}, port {state['port']})")
            return
        port = state["port"] if state and self._port_free(state["port"]) else _free_port()
        directory = self._dir(spec)
        directory.mkdir(parents=True, exist_ok=True)
        self.telemetry_dir.mkdir(parents=True, exist_ok=True)
        log_path = directory / f"{spec.revision}.log"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(settings.SCORING_IMAGE_DIR), os.environ.get("PYTHONPATH", "")]),
            # Registered models of the configured registry are what this control plane is trusted to serve.
            "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",
            "SCORING_DEPLOYMENT": spec.deployment,
            "SCORING_MODEL_NAME": spec.model_name,
            "SCORING_MODEL_VERSION": spec.model_version,
            "SCORING_REVISION": spec.revision,
            "SCORING_TELEMETRY_PATH": str(self.telemetry_dir / f"{spec.environment}--{spec.deployment}.jsonl"),
            **spec.env,
        }
        command = [sys.executable, "-m", "scoring", "serve", spec.model_dir, "--host", self.host, "--port", str(port)]
        with open(log_path, "ab") as output:
            process = subprocess.Popen(
                command,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=directory,
            )
        deadline = time.monotonic() + 5
        while not _alive(process.pid, spec.model_dir) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # until exec() replaced the forked worker: then the pid is recognisably ours
        tmp = self._state_path(spec).with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"pid": process.pid, "port": port, "model_dir": spec.model_dir, "log": str(log_path)})
        )
        tmp.replace(self._state_path(spec))
        log(f"started scoring server of {spec.revision} (pid {process.pid}) on {self.host}:{port}")
        self._follow_port(spec, port, log)

    def _port_free(self, port: int) -> bool:
        with socket.socket() as sock:
            try:
                sock.bind((self.host, port))
            except OSError:
                return False
        return True

    def wait_ready(self, spec: ServingSpec, log: Log, *, timeout_seconds: float) -> Readiness:
        state = self._state(spec)
        if state is None:
            return Readiness(False, f"{spec.revision} was never started")
        url = f"http://{self.host}:{state['port']}"
        deadline = time.monotonic() + timeout_seconds
        last_report = 0.0
        while time.monotonic() < deadline:
            if not _alive(state["pid"], state["model_dir"]):
                return Readiness(False, f"scoring server exited: {self._tail(state)}")
            try:
                if requests.get(f"{url}/health/ready", timeout=2).status_code == 200:
                    log(f"{url}/health/ready answered 200")
                    return Readiness(True, "scoring server ready", endpoint_url=url)
            except requests.RequestException:
                pass
            if time.monotonic() - last_report > 5:
                log("waiting for the model to load and score its warm-up input")
                last_report = time.monotonic()
            time.sleep(0.2)
        return Readiness(False, f"scoring server not ready in {timeout_seconds:.0f} s: {self._tail(state)}")

    def _tail(self, state: dict) -> str:
        try:
            lines = Path(state["log"]).read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(line.strip() for line in lines[-LOG_TAIL_LINES:])[-1000:]

    def endpoint_url(self, spec: ServingSpec) -> str:
        state = self._state(spec)
        return f"http://{self.host}:{state['port']}" if state else ""

    def retire(self, spec: ServingSpec, log: Log) -> None:
        """Stop the revision's process; the router stops sending it requests first (see ``_unroute``)."""
        self._unroute(spec, log)
        state = self._state(spec)
        if state:
            self._stop(state, log)
            self._state_path(spec).unlink(missing_ok=True)

    def delete(self, spec: ServingSpec, log: Log) -> None:
        """The router first (clients get refused connections rather than errors from half-stopped revisions), then
        every revision's process; the files of all of them go."""
        directory = self._dir(spec)
        self._router(spec).remove(log)
        for path in sorted(directory.glob("*.json")) if directory.exists() else []:
            if path.name in ROUTER_FILES:
                continue
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                state = None
            if state:
                self._stop(state, log)
            path.unlink(missing_ok=True)

    def _stop(self, state: dict, log: Log, grace_seconds: float = 15) -> None:
        pid = state["pid"]
        if not _alive(pid, state["model_dir"]):
            return
        os.kill(pid, signal.SIGTERM)  # the server drains in-flight requests on SIGTERM
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline and _alive(pid, state["model_dir"]):
            time.sleep(0.1)
        if _alive(pid, state["model_dir"]):
            os.kill(pid, signal.SIGKILL)
        log(f"stopped scoring server pid {pid}")

    # ------------------------------------------------------------------ the stable endpoint
    def stable_url(self, spec: ServingSpec) -> str:
        """The router's URL, the same for every revision; starts the router when it does not run."""
        return self._router(spec).ensure(lambda line: None, initial=self._config(TrafficSplit(stable=spec)))

    def traffic_refusal(self, strategy: str, *, gateway: str = "") -> str | None:
        return None  # the router does weights and mirroring for every strategy

    def set_traffic(self, split: TrafficSplit, log: Log) -> None:
        spec = split.stable or split.candidate
        if spec is None:
            return
        config = self._config(split, strict=True)
        self._router(spec).configure(config, log)
        shares = ", ".join(f"{label} {weight}%" for label, weight in config["weights"].items())
        if mirror := config.get("mirror"):
            shares += f"; {mirror['percent']}% mirrored to {mirror['to']}"
        log(f"traffic of {spec.deployment}: {shares}")

    def traffic(self, spec: ServingSpec) -> dict[str, int]:
        """The weights the router serves now; while it is down, those it serves when it comes back (its file)."""
        router = self._router(spec)
        status = router.status()
        config = status["config"] if status is not None else router.written()
        if not config:
            return {}
        shares = dict(config.get("weights", {}))
        if config.get("mirror"):
            shares["mirror"] = config["mirror"]["percent"]
        return shares

    def promote(self, candidate: ServingSpec, log: Log, *, timeout_seconds: float) -> Readiness:
        """The candidate already is a full revision process: once it is ready, it takes all the traffic."""
        readiness = self.wait_ready(candidate, log, timeout_seconds=timeout_seconds)
        if not readiness.ok:
            return readiness
        primary = ServingSpec(**{**candidate.__dict__, "placement": PRIMARY})
        self.set_traffic(TrafficSplit(stable=primary), log)
        return Readiness(True, f"{candidate.revision} serves all traffic", endpoint_url=self.stable_url(primary))

    def _config(self, split: TrafficSplit, *, strict: bool = False) -> dict:
        """The router configuration for ``split``; ``strict``: a revision never started is an error."""
        backends: dict[str, str] = {}
        weights: dict[str, int] = {}
        both = split.stable is not None and split.candidate is not None
        shares = ((split.stable, 100 - split.weight if both else 100), (split.candidate, split.weight if both else 100))
        for spec, weight in shares:
            if spec is None:
                continue
            state = self._state(spec)
            if state is None:
                if strict:
                    raise PermanentBackendError(f"{spec.revision} of {spec.deployment} was never started here")
                continue
            backends[spec.revision] = f"http://{self.host}:{state['port']}"
            weights[spec.revision] = weight
        config: dict = {"backends": backends, "weights": weights}
        if both and split.mirror_percent and split.candidate.revision in backends:
            config["mirror"] = {"to": split.candidate.revision, "percent": split.mirror_percent}
        return config

    def _follow_port(self, spec: ServingSpec, port: int, log: Log) -> None:
        """A revision restarted on another port (its own was taken): the router sends its share there."""
        router = self._router(spec)
        config = router.written()
        url = f"http://{self.host}:{port}"
        if config and config.get("backends", {}).get(spec.revision, url) != url:
            config["backends"][spec.revision] = url
            router.configure(config, log)

    def _unroute(self, spec: ServingSpec, log: Log) -> None:
        """Before a revision stops: if the router still sends it anything while another revision has weight, drop
        it from the configuration (a retired revision takes no traffic, whatever the order of the calls)."""
        router = self._router(spec)
        config = router.written()
        if not config or spec.revision not in config.get("backends", {}):
            return
        others = {label: w for label, w in config.get("weights", {}).items() if label != spec.revision and w > 0}
        if not others:
            return  # nothing else to send its clients to: leave the router as it is
        config["backends"].pop(spec.revision)
        config["weights"] = {label: w for label, w in config["weights"].items() if label != spec.revision}
        if len(others) == 1:
            config["weights"] = {label: 100 for label in others}  # it serves everything: say so
        if config.get("mirror", {}).get("to") == spec.revision:
            config.pop("mirror")
        if router.running() or router.state() is not None:
            router.configure(config, log)
