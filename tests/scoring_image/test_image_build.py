"""The real thing: build the scoring image with buildah from a locally debootstrapped base, push it to a
local docker-registry, pull and run it with podman (host network), score a request through it.

Needs root and `bash scoring-image/tools/setup_build_env.sh` (run here too: idempotent, seconds when warm).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import orjson
import pytest
import requests
from scoring.build_context import assemble_build_context

from .helpers import REPO_ROOT, free_port, wait_for
from .models import credit_rows

pytestmark = pytest.mark.slow

BASE_IMAGE = os.environ.get("SCORING_BASE_IMAGE", "localhost/modelplane/debian-python:bookworm")
CACHE_DIR = os.environ.get("SCORING_BUILD_CACHE_DIR", "/var/lib/modelplane-scoring")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def run(*cmd: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


@pytest.fixture(scope="module")
def build_env():
    """Packages, containers.conf and the base image (the setup script is idempotent and cached)."""
    script = REPO_ROOT / "scoring-image" / "tools" / "setup_build_env.sh"
    run("bash", str(script), timeout=1200)
    for tool in ("buildah", "podman", "docker-registry"):
        assert shutil.which(tool), f"{tool} missing after {script}"


@pytest.fixture(scope="module")
def registry(build_env, tmp_path_factory):
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = open(root / "registry.log", "wb")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/v2/", timeout=30, proc=proc)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_build_push_pull_run_and_score(build_env, registry, model_dir, tmp_path):
    timings = {}
    ctx = assemble_build_context(
        model_dir, tmp_path / "ctx", base_image=BASE_IMAGE, model_name="credit-default", model_version="1"
    )
    local = f"localhost/modelplane-test/credit-default:{ctx.tag}"
    remote = f"{registry}/scoring/credit-default:{ctx.tag}"
    pip_cache = os.path.join(CACHE_DIR, "pip-cache")
    os.makedirs(pip_cache, exist_ok=True)
    build_args = [f"--build-arg={k}={v}" for k, v in ctx.build_args.items()]
    started = time.monotonic()
    run(
        "buildah", "bud", "--isolation", "chroot", "--storage-driver", "vfs", "--layers=false", "--pull=never",
        "-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro", "-v", f"{pip_cache}:/var/cache/pip",
        "--build-arg=PIP_INSTALL_OPTIONS=--cache-dir=/var/cache/pip", *build_args,
        "-f", str(ctx.path / "Dockerfile"), "-t", local, str(ctx.path),
    )  # fmt: skip
    timings["build"] = time.monotonic() - started
    container = f"scoring-test-{ctx.tag[:12]}"
    try:
        started = time.monotonic()
        run("buildah", "push", "--tls-verify=false", "--disable-compression", local, f"docker://{remote}")
        timings["push"] = time.monotonic() - started
        tags = requests.get(f"http://{registry}/v2/scoring/credit-default/tags/list", timeout=10).json()
        assert ctx.tag in tags["tags"]

        # Run what the registry holds, as a cluster would: drop the local copy and pull it back.
        run("podman", "rmi", local)
        started = time.monotonic()
        run("podman", "pull", "--tls-verify=false", remote)
        timings["pull"] = time.monotonic() - started
        inspect = json.loads(run("podman", "image", "inspect", remote).stdout)[0]
        labels = inspect["Config"]["Labels"]
        assert labels["io.modelplane.model.name"] == "credit-default"
        assert labels["io.modelplane.model.version"] == "1"
        assert labels["io.modelplane.context-digest"] == ctx.digest
        assert labels["org.opencontainers.image.version"] == "1"
        assert inspect["Config"]["User"] == "10001"

        port = free_port()
        started = time.monotonic()
        run(
            "podman", "run", "-d", "--name", container, "--network", "host",
            "-e", f"SCORING_PORT={port}", "-e", f"SCORING_IMAGE_DIGEST={ctx.digest}",
            "-e", "SCORING_TELEMETRY_SAMPLE_RATE=1", remote,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(url + "/health/ready", timeout=120)
        except TimeoutError:
            logs = run("podman", "logs", container, check=False)
            raise AssertionError(f"container never got ready:\n{logs.stdout}\n{logs.stderr}") from None
        timings["start"] = time.monotonic() - started

        rows = credit_rows(5, seed=99)
        answer = requests.post(
            url + "/predict",
            data=orjson.dumps(rows.to_dict(orient="records"), option=orjson.OPT_SERIALIZE_NUMPY),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        import mlflow.pyfunc

        expected = mlflow.pyfunc.load_model(str(model_dir)).predict(rows).tolist()
        assert answer.json() == {"predictions": expected}
        version = requests.get(url + "/version", timeout=10).json()
        assert version["image_digest"] == ctx.digest
        assert version["model_name"] == "credit-default" and version["model_version"] == "1"
        assert run("podman", "exec", container, "id", "-u").stdout.strip() == "10001"

        # SIGTERM (podman stop) drains and exits 0; telemetry went to the container's stdout.
        run("podman", "stop", "-t", "20", container)
        state = json.loads(run("podman", "inspect", container).stdout)[0]["State"]
        assert state["ExitCode"] == 0
        lines = [json.loads(line) for line in run("podman", "logs", container).stdout.splitlines() if line]
        assert any(line["status"] == 200 and line["rows"] == 5 for line in lines)
    finally:
        run("podman", "rm", "-f", container, check=False)
        run("podman", "rmi", "-f", remote, local, check=False)
        print("image timings (s):", {k: round(v, 1) for k, v in timings.items()})
