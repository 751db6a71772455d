"""Real image builds for the tests: one ``run`` for the container tools, the build machine's setup, the container
storage the builds use, and a real docker-registry on 127.0.0.1.

``scoring-image/tools/setup_build_env.sh`` (idempotent, seconds when warm) installs buildah, podman and
docker-registry, and imports a debootstrapped Debian base image into a container storage kept between runs under
``/var/lib/modelplane-build`` (overlay when the kernel can mount it, vfs otherwise; ``driver`` there says which).
Every build and run of the tests goes through ``tool(...)`` with that storage, so the base image and the layers of
an unchanged dependency set are reused by the next run on the same machine.

Builds install their Python packages from a wheelhouse kept on the machine (``WHEELHOUSE``), filled once per set
of pins: pip's own cache does not help here, as the package proxy's answers carry no caching headers, so every
build downloaded every wheel again (most of the image builds' time, and what made them slow).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.scoring_image.helpers import REPO_ROOT, free_port, wait_for

BASE_IMAGE = os.environ.get("SCORING_BASE_IMAGE", "localhost/modelplane/debian-python:bookworm")
CACHE_DIR = Path(os.environ.get("SCORING_BUILD_CACHE_DIR", "/var/lib/modelplane-scoring"))
STORE_DIR = Path(os.environ.get("MODELPLANE_BUILD_STORE", "/var/lib/modelplane-build"))
WHEELHOUSE = CACHE_DIR / "wheels"
# Build arguments and mounts that make a Dockerfile's ``pip install ${PIP_INSTALL_OPTIONS}`` use the wheelhouse only.
WHEELHOUSE_MOUNT = f"{WHEELHOUSE}:/var/cache/wheels:ro"
WHEELHOUSE_PIP_OPTIONS = "--no-index --find-links=/var/cache/wheels"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
SETUP_SCRIPT = REPO_ROOT / "scoring-image" / "tools" / "setup_build_env.sh"


def run(*cmd: str, timeout: float = 1800, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command; when it fails (and ``check``), fail the test quoting the ends of its output."""
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def storage() -> dict[str, str]:
    """The container storage the setup script prepared: {root, runroot, storage_driver}."""
    return {
        "root": str(STORE_DIR / "storage"),
        "runroot": "/run/modelplane-build",
        "storage_driver": (STORE_DIR / "driver").read_text().strip(),
    }


def tool(name: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """``buildah``/``podman`` on the shared build storage."""
    flags = storage()
    return run(
        name, "--root", flags["root"], "--runroot", flags["runroot"], "--storage-driver", flags["storage_driver"],
        *args, **kwargs,
    )  # fmt: skip


def setup_build_env(*tools: str) -> None:
    run("bash", str(SETUP_SCRIPT), timeout=1200)
    for name in tools:
        assert shutil.which(name), f"{name} missing after {SETUP_SCRIPT}"


def wheelhouse(*requirements: Path) -> Path:
    """The machine's wheelhouse, holding a wheel for everything ``requirements`` need, as the base image's Python
    resolves them (its markers, e.g. ``python_full_version``, differ from the host's). Offline and seconds when it
    already does; else the missing wheels are fetched once."""
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(b"\0".join(path.read_bytes() for path in requirements)).hexdigest()
    stamp = WHEELHOUSE / f".complete-{digest[:24]}"  # these requirements were found complete before
    if stamp.exists():
        return WHEELHOUSE
    with tempfile.TemporaryDirectory() as folder:
        files = []
        for number, path in enumerate(requirements):
            shutil.copyfile(path, Path(folder) / f"{number}.txt")
            files += ["-r", f"/requirements/{number}.txt"]
        pip = "/tmp/venv/bin/pip wheel --quiet --find-links /wheels -w /wheels " + " ".join(files)
        script = f"python3 -m venv /tmp/venv && ({pip} --no-index || {pip})"
        tool(
            "podman", "run", "--rm", "--network", "host", "-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro",
            "-v", f"{WHEELHOUSE}:/wheels", "-v", f"{folder}:/requirements:ro", BASE_IMAGE, "sh", "-c", script,
            timeout=1800,
        )  # fmt: skip
    stamp.touch()
    return WHEELHOUSE


def build(context: Path, image: str, *, dockerfile: Path, build_args: dict[str, str], ignorefile: Path | None = None):
    """``buildah bud`` as the tests build: chroot isolation, never pull (no public registry here), packages from the
    wheelhouse (call ``wheelhouse`` first), and ``--layers`` so an unchanged dependency layer is taken from the
    storage instead of built again."""
    args = [f"--build-arg={key}={value}" for key, value in build_args.items()]
    keeper = _keeper(image)
    before = tool("podman", "image", "inspect", "--format", "{{.Id}}", keeper, check=False).stdout.strip()
    args += ["-t", keeper]
    if ignorefile is not None:
        args += ["--ignorefile", str(ignorefile)]
    result = tool(
        "buildah", "bud", "--isolation", "chroot", "--layers", "--pull=never",
        "-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro", "-v", WHEELHOUSE_MOUNT,
        f"--build-arg=PIP_INSTALL_OPTIONS={WHEELHOUSE_PIP_OPTIONS}", *args,
        "-f", str(dockerfile), "-t", image, str(context),
    )  # fmt: skip
    after = tool("podman", "image", "inspect", "--format", "{{.Id}}", keeper).stdout.strip()
    if before and before != after:  # the keeper's previous image, now nameless; parents this build reused stay
        tool("podman", "rmi", before, check=False)
    return result


def _keeper(image: str) -> str:
    """A second name the last build of a repository keeps, so that its layers (and the cache entries of each
    Dockerfile step) stay in the storage for the next run: removing an image's last name removes its parents."""
    return image.rpartition(":")[0] + ":layers-of-last-build"


def discard(*names: str) -> None:
    """Drop the tests' names of built or pulled images; the keeper name keeps the layers."""
    for name in names:
        tool("podman", "untag", name, name, check=False)


@contextlib.contextmanager
def docker_registry(root: Path) -> Iterator[dict]:
    """A real docker-registry on 127.0.0.1 (plain HTTP, no auth); its access log records every request."""
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n  accesslog:\n    disabled: false\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log_path = root / "registry.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(f"http://127.0.0.1:{port}/v2/", timeout=30, proc=proc)
            yield {"host": f"127.0.0.1:{port}", "log": log_path}
        finally:
            proc.terminate()
            proc.wait(timeout=10)
