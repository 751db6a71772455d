"""The local target's stable endpoint: one router process per deployment (``python -m scoring route``, see
scoring-image/scoring/router.py) in front of its revisions' scoring processes.

Files in the deployment's directory: ``router.json`` (pid, port, config path, log), ``router.conf`` (the routing
configuration, JSON, replaced atomically), ``router.log``. The port is chosen once, at the first start, and kept:
a restart (after a crash, a reboot, a control-plane restart) binds the recorded port again, so the URL clients use
never changes. Like the scoring processes, the router runs in its own session and outlives the worker that started
it; any later worker adopts it through ``router.json``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from django.conf import settings

from apps.deployments.backends import Log, TransientBackendError

__all__ = ["LocalRouter", "ROUTER_FILES"]

ROUTER_FILES = ("router.json", "router.conf", "router.log", "router.lock", "router.json.tmp", "router.conf.tmp")
_START_TIMEOUT_S = 15.0
_APPLY_TIMEOUT_S = 5.0
_PORT_WAIT_S = 5.0
STATUS_PATH = "/-/router/status"


def _bindable(host: str, port: int) -> bool:
    """Whether the router could bind ``port`` now (as it does: with SO_REUSEADDR, so TIME_WAIT does not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class LocalRouter:
    def __init__(self, directory: Path, host: str, *, free_port, alive) -> None:
        self.directory = directory
        self.host = host
        self.state_path = directory / "router.json"
        self.config_path = directory / "router.conf"
        self.log_path = directory / "router.log"
        self._free_port = free_port
        self._alive = alive  # (pid, marker argument) -> whether that pid runs our process with that argument

    # ------------------------------------------------------------------ reading
    def state(self) -> dict | None:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        state = self.state()
        return bool(state and self._alive(state["pid"], str(self.config_path)))

    def url(self) -> str:
        state = self.state()
        return f"http://{self.host}:{state['port']}" if state else ""

    def written(self) -> dict | None:
        """The configuration file as written (what a restarted router would serve)."""
        try:
            return json.loads(self.config_path.read_text())
        except (OSError, ValueError):
            return None

    def status(self) -> dict | None:
        """The running router's own report (configuration in force, counters); None when it does not answer."""
        if not self.running():
            return None
        try:
            return requests.get(self.url() + STATUS_PATH, timeout=5).json()
        except (requests.RequestException, ValueError):
            return None

    # ------------------------------------------------------------------ acting
    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One worker at a time starts or reconfigures this router (two would race for the port)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "router.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def ensure(self, log: Log, *, initial: dict | None = None) -> str:
        """Start the router if it does not run (on its recorded port), with ``initial`` as its configuration when
        none was written yet. Returns its URL. Safe to call twice: a running router is left alone."""
        with self._locked():
            if not self.config_path.exists():
                self._write(initial or {"backends": {}, "weights": {}})
            self._ensure(log)
        return self.url()

    def configure(self, config: dict, log: Log) -> None:
        """Write ``config``, start the router if needed, signal it, and return once it serves exactly this file."""
        with self._locked():
            digest = self._write(config)
            started = self._ensure(log)
            if not started:
                os.kill(self.state()["pid"], signal.SIGHUP)
            deadline = time.monotonic() + _APPLY_TIMEOUT_S
            while True:
                status = self.status()
                if status is not None and status.get("digest") == digest:
                    return
                if time.monotonic() > deadline:
                    error = (status or {}).get("reloads", {}).get("last_error") or "no answer"
                    raise TransientBackendError(f"the router of {self.directory.name} did not apply {config}: {error}")
                time.sleep(0.02)

    def _write(self, config: dict) -> str:
        data = json.dumps(config, sort_keys=True).encode()
        tmp = self.directory / "router.conf.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.config_path)
        return hashlib.sha256(data).hexdigest()

    def _ensure(self, log: Log) -> bool:
        """Start the router unless it runs; True if it was started now."""
        state = self.state()
        if state and self._alive(state["pid"], str(self.config_path)):
            return False
        port = state["port"] if state else self._free_port()
        deadline = time.monotonic() + _PORT_WAIT_S
        while not _bindable(self.host, port) and time.monotonic() < deadline:
            time.sleep(0.05)  # a killed router's last threads may hold its socket a moment after it shows dead
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(settings.SCORING_IMAGE_DIR), os.environ.get("PYTHONPATH", "")]),
        }
        command = [sys.executable, "-m", "scoring", "route", str(self.config_path), "--host", self.host]
        with open(self.log_path, "ab") as output:
            process = subprocess.Popen(
                [*command, "--port", str(port)],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.directory,
            )
        tmp = self.directory / "router.json.tmp"
        tmp.write_text(
            json.dumps({"pid": process.pid, "port": port, "config": str(self.config_path), "log": str(self.log_path)})
        )
        tmp.replace(self.state_path)
        url = f"http://{self.host}:{port}"
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                if requests.get(url + STATUS_PATH, timeout=2).status_code == 200:
                    log(f"started the router of {self.directory.name} (pid {process.pid}) on {self.host}:{port}")
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.05)
        if process.poll() is None:
            process.kill()
        raise TransientBackendError(f"the router could not start on {self.host}:{port}: {self._tail()}")

    def _tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(line.strip() for line in lines[-4:])[-600:]

    def remove(self, log: Log, grace_seconds: float = 15) -> None:
        """Stop the router (it drains in-flight requests) and remove its files."""
        state = self.state()
        if state and self._alive(state["pid"], str(self.config_path)):
            os.kill(state["pid"], signal.SIGTERM)
            deadline = time.monotonic() + grace_seconds
            while time.monotonic() < deadline and self._alive(state["pid"], str(self.config_path)):
                time.sleep(0.05)
            if self._alive(state["pid"], str(self.config_path)):
                os.kill(state["pid"], signal.SIGKILL)
            log(f"stopped the router pid {state['pid']}")
        for name in ROUTER_FILES:
            (self.directory / name).unlink(missing_ok=True)
