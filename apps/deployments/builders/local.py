"""Build on the worker itself with a daemonless tool (``buildah`` by default; ``podman`` or ``docker`` if configured)
and push to whatever registry the image reference names.

Options (from ``settings.IMAGE_BUILDER_OPTIONS["local"]``):

``tool``               ``buildah`` (default), ``podman`` or ``docker``, or a path to one of them
``tls_verify``         verify the registry's certificate on push and on ``exists`` (default true)
``insecure_registries`` hosts spoken to over plain HTTP by ``exists`` (push uses ``tls_verify=false``)
``username``/``password`` registry credentials (basic, or exchanged for a bearer token)
``ca_bundle``          host CA bundle mounted read-only into RUN steps so pip can verify PyPI (buildah/podman)
``volumes``            extra ``-v`` mounts for RUN steps, e.g. a pip cache
``extra_build_args``   build arguments that do not change the image's identity
``pip_cache``          a host directory mounted as pip's cache in RUN steps (via PIP_INSTALL_OPTIONS)
``root``/``runroot``/``storage_driver``  a separate container storage for this worker's builds
``pull``               base image pull policy (``missing`` by default; ``never`` for offline machines)
``compress``           compress layers on push (default true; buildah only)
``push_retries``       how often buildah retries a failed push (default: buildah's, 3)
``keep_local``         keep the built image in local storage after the push (default false)
``timeout``            seconds a build or a push may take (default 3600)
``http_timeout``       seconds for one registry HTTP request (default 15)
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from apps.deployments.backends import Log, PermanentBackendError, TransientBackendError
from apps.deployments.builders.base import BuildRequest, ImageBuilder
from apps.deployments.builders.image_registry import ImageRegistryClient, parse_image

__all__ = ["LocalImageBuilder"]

DEFAULT_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
TAIL_LINES = 25
# Push output that means "try again later" rather than "fix something".
_TRANSIENT_PUSH = (
    "connection refused",
    "connection reset",
    "i/o timeout",
    "no such host",
    "timeout",
    "tls handshake",
    "503",
    "502",
    "504",
    "500 internal server error",
    "too many requests",
    "eof",
)


class LocalImageBuilder(ImageBuilder):
    name = "local"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.tool = str(options.get("tool") or "buildah")
        self.kind = Path(self.tool).name
        if self.kind not in ("buildah", "podman", "docker"):
            raise PermanentBackendError(f"image build tool {self.tool!r} is not buildah, podman or docker")
        self.tls_verify = _bool(options.get("tls_verify", True))
        self.timeout = float(options.get("timeout") or 3600)
        self.registry = ImageRegistryClient(
            verify=self.tls_verify,
            insecure_registries=list(options.get("insecure_registries") or ()),
            username=str(options.get("username") or ""),
            password=str(options.get("password") or ""),
            timeout=float(options.get("http_timeout") or 15),
        )

    # ------------------------------------------------------------------ interface
    def exists(self, image: str) -> bool:
        """HEAD the manifest: 200 means built, 404 means not; an unreachable registry is transient."""
        return self.registry.manifest_digest(image) is not None

    def build_and_push(self, request: BuildRequest, log: Log) -> str:
        """Build the context's Dockerfile into ``request.image``, push it, return the pushed manifest digest.

        Running twice builds and pushes the same tag twice, which changes nothing a puller sees.
        """
        if not (request.context_dir / "Dockerfile").is_file():
            raise PermanentBackendError(f"the build context {request.context_dir} has no Dockerfile")
        executable = shutil.which(self.tool)
        if executable is None:
            raise PermanentBackendError(f"{self.tool} is not installed on this worker; it is needed to build images")
        started = time.monotonic()
        code, tail = self._run(self._build_command(executable, request), log)
        if code != 0:
            raise PermanentBackendError(
                f"image build failed ({self.kind} exited with {code}); last lines:\n" + "\n".join(tail)
            )
        log(f"built {request.image} in {time.monotonic() - started:.0f} s; pushing")
        try:
            digest = self._push(executable, request.image, log)
        finally:
            if not _bool(self.options.get("keep_local", False)):
                subprocess.run(
                    [executable, *self._global_flags(), "rmi", request.image], capture_output=True, timeout=300
                )
        log(f"pushed {request.image} ({digest})")
        return digest

    # ------------------------------------------------------------------ commands
    def _global_flags(self) -> list[str]:
        if self.kind == "docker":
            return []
        flags = []
        for option in ("root", "runroot", "storage_driver"):
            if self.options.get(option):
                flags += [f"--{option.replace('_', '-')}", str(self.options[option])]
        return flags

    def _build_command(self, executable: str, request: BuildRequest) -> list[str]:
        cmd = [executable, *self._global_flags()]
        cmd += ["bud"] if self.kind == "buildah" else ["build"]
        if self.kind != "docker":
            cmd += ["--isolation", "chroot", "--layers=false", f"--pull={self.options.get('pull') or 'missing'}"]
            ca_bundle = self.options.get("ca_bundle", DEFAULT_CA_BUNDLE)
            if ca_bundle and os.path.isfile(ca_bundle):
                cmd += ["-v", f"{ca_bundle}:{DEFAULT_CA_BUNDLE}:ro"]
            for volume in self.options.get("volumes") or ():
                cmd += ["-v", str(volume)]
        extra_args = dict(self.options.get("extra_build_args") or {})
        pip_cache = self.options.get("pip_cache")
        if pip_cache and self.kind != "docker":
            # The scoring Dockerfile's PIP_INSTALL_OPTIONS: reuse downloaded wheels without changing the image.
            Path(pip_cache).mkdir(parents=True, exist_ok=True)
            cmd += ["-v", f"{pip_cache}:/var/cache/pip"]
            extra_args.setdefault("PIP_INSTALL_OPTIONS", "--cache-dir=/var/cache/pip")
        build_args = {**request.build_args, **extra_args}
        cmd += [f"--build-arg={key}={value}" for key, value in build_args.items()]
        cmd += [f"--label={key}={value}" for key, value in request.labels.items()]
        cmd += ["-f", str(request.context_dir / "Dockerfile"), "-t", request.image, str(request.context_dir)]
        return cmd

    def _push(self, executable: str, image: str, log: Log) -> str:
        ref = parse_image(image)
        with tempfile.TemporaryDirectory(prefix="modelplane-push-") as tmp:
            digest_file = Path(tmp) / "digest"
            cmd = [executable, *self._global_flags(), "push"]
            if self.kind != "docker":
                cmd += [f"--tls-verify={'true' if self.tls_verify else 'false'}", f"--digestfile={digest_file}"]
                if self.kind == "buildah" and self.options.get("push_retries") is not None:
                    cmd += [f"--retry={int(self.options['push_retries'])}"]
                if self.kind == "buildah" and not _bool(self.options.get("compress", True)):
                    cmd += ["--disable-compression"]  # podman 4 has no such flag
                if self.registry.username:
                    cmd += ["--creds", f"{self.registry.username}:{self.registry.password}"]
                cmd += [image, f"docker://{image}"]
            else:
                cmd += [image]
            code, tail = self._run(cmd, log)
            if code != 0:
                text = "\n".join(tail)
                if any(marker in text.lower() for marker in ("unauthorized", "denied", "authentication required")):
                    raise PermanentBackendError(f"push to {ref.registry} was refused (unauthorized):\n{text}")
                if any(marker in text.lower() for marker in _TRANSIENT_PUSH):
                    raise TransientBackendError(f"push to {ref.registry} failed; will try again:\n{text}")
                raise PermanentBackendError(f"push to {ref.registry} failed ({self.kind} exited with {code}):\n{text}")
            digest = digest_file.read_text().strip() if digest_file.is_file() else _digest_from(tail)
        return digest or self.registry.manifest_digest(image) or ""

    def _run(self, cmd: list[str], log: Log) -> tuple[int, list[str]]:
        """Run ``cmd``, streaming its output lines into ``log``; returns the exit code and the last lines.

        A watchdog kills the tool at the timeout even when it has gone silent."""
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        env = {**os.environ, "BUILDAH_ISOLATION": "chroot"}
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, env=env
        )
        expired = threading.Event()

        def stop() -> None:
            expired.set()
            proc.kill()

        watchdog = threading.Timer(self.timeout, stop)
        watchdog.daemon = True
        watchdog.start()
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                line = raw.rstrip()
                if line:
                    tail.append(line)
                    log(line)
            code = proc.wait()
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if expired.is_set():
            raise TransientBackendError(f"{self.kind} took longer than {self.timeout:.0f} s; stopped it")
        return code, list(tail)


def _digest_from(lines: list[str]) -> str:
    for line in reversed(lines):  # docker push: "<tag>: digest: sha256:... size: 1234"
        if "digest: sha256:" in line:
            return line.split("digest: ", 1)[1].split()[0]
    return ""


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
