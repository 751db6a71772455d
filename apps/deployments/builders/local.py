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

import requests

from apps.deployments.backends import PermanentBackendError, TransientBackendError
from apps.deployments.builders.base import BuildRequest, ImageBuilder
from apps.deployments.targets.base import Log

__all__ = ["LocalImageBuilder", "ImageReference", "parse_image", "RegistryClient"]

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
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


class ImageReference:
    """``registry/repository:tag`` (or ``@sha256:...``), split the way registries see it."""

    def __init__(self, registry: str, repository: str, reference: str) -> None:
        self.registry, self.repository, self.reference = registry, repository, reference

    def __str__(self) -> str:
        sep = "@" if self.reference.startswith("sha256:") else ":"
        return f"{self.registry}/{self.repository}{sep}{self.reference}"


def parse_image(image: str) -> ImageReference:
    name, digest = (image.split("@", 1) + [""])[:2]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = "registry-1.docker.io", name if rest else f"library/{name}"
    if digest:
        return ImageReference(registry, path, digest)
    repository, colon, tag = path.rpartition(":")
    if not colon or "/" in tag:
        repository, tag = path, "latest"
    return ImageReference(registry, repository, tag)


class RegistryClient:
    """Just enough of the OCI distribution API to ask whether a manifest exists (``HEAD``), with basic
    auth or the bearer-token dance registries (Docker Hub, ACR, Harbor) answer a 401 with."""

    def __init__(
        self,
        *,
        verify: bool | str = True,
        insecure_registries: list[str] | tuple[str, ...] = (),
        username: str = "",
        password: str = "",
        timeout: float = 15,
    ) -> None:
        self.verify, self.insecure = verify, set(insecure_registries)
        self.username, self.password, self.timeout = username, password, timeout
        self.session = requests.Session()

    def _schemes(self, registry: str) -> list[str]:
        if registry in self.insecure:
            return ["http"]
        # Like ``--tls-verify=false`` on push: an unverified HTTPS registry, or failing that plain HTTP.
        return ["https"] if self.verify is not False else ["https", "http"]

    def manifest_digest(self, image: str) -> str | None:
        """The manifest's digest if the registry has ``image``, None if it does not."""
        ref = parse_image(image)
        last: Exception | None = None
        for scheme in self._schemes(ref.registry):
            url = f"{scheme}://{ref.registry}/v2/{ref.repository}/manifests/{ref.reference}"
            try:
                return self._head(url, ref)
            except requests.exceptions.SSLError as exc:
                last = exc
            except requests.RequestException as exc:
                last = exc
                if scheme == "https" and "http" in self._schemes(ref.registry):
                    continue
                break
        reason = type(last).__name__ if last else "no answer"
        raise TransientBackendError(f"registry {ref.registry} is unreachable ({reason}); will try again")

    def _head(self, url: str, ref: ImageReference) -> str | None:
        headers = {"Accept": MANIFEST_TYPES}
        verify = self.verify if url.startswith("https") else True
        response = self.session.head(url, headers=headers, timeout=self.timeout, verify=verify)
        if response.status_code == 401:
            headers["Authorization"] = self._authorization(response, ref, verify)
            response = self.session.head(url, headers=headers, timeout=self.timeout, verify=verify)
        if response.status_code == 200:
            return response.headers.get("Docker-Content-Digest", "") or "unknown"
        if response.status_code == 404:
            return None
        if response.status_code in (401, 403):
            who = f"as {self.username}" if self.username else "anonymously"
            raise PermanentBackendError(
                f"registry {ref.registry} refused access to {ref.repository} {who} ({response.status_code}); "
                "check the registry credentials of the image builder"
            )
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientBackendError(f"registry {ref.registry} answered {response.status_code}; will try again")
        raise PermanentBackendError(f"registry {ref.registry} answered {response.status_code} for {url}")

    def _authorization(self, challenge: requests.Response, ref: ImageReference, verify: bool | str) -> str:
        header = challenge.headers.get("WWW-Authenticate", "")
        scheme, _, params = header.partition(" ")
        basic = (self.username, self.password) if self.username else None
        if scheme.lower() == "basic":
            if not basic:
                raise PermanentBackendError(f"registry {ref.registry} needs credentials and none are configured")
            return requests.auth._basic_auth_str(self.username, self.password)
        fields = dict(_challenge_fields(params))
        realm = fields.pop("realm", "")
        if scheme.lower() != "bearer" or not realm:
            raise PermanentBackendError(f"registry {ref.registry} asks for unsupported authentication: {header!r}")
        fields.setdefault("scope", f"repository:{ref.repository}:pull")
        try:
            answer = self.session.get(realm, params=fields, auth=basic, timeout=self.timeout, verify=verify)
        except requests.RequestException as exc:
            raise TransientBackendError(
                f"token service of {ref.registry} is unreachable ({type(exc).__name__})"
            ) from exc
        if answer.status_code >= 500:
            raise TransientBackendError(f"token service of {ref.registry} answered {answer.status_code}")
        if answer.status_code != 200:
            who = f"as {self.username}" if self.username else "anonymously"
            raise PermanentBackendError(
                f"registry {ref.registry} refused a token {who} ({answer.status_code}); "
                "check the registry credentials of the image builder"
            )
        body = answer.json()
        return "Bearer " + (body.get("token") or body.get("access_token") or "")


def _challenge_fields(params: str):
    for part in params.split(","):
        key, _, value = part.strip().partition("=")
        if key:
            yield key.strip(), value.strip().strip('"')


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
        self.registry = RegistryClient(
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
