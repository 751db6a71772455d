"""The real thing: build the scoring image with buildah from a locally debootstrapped base, push it to a
local docker-registry, pull and run it with podman (host network), score a request through it.

Needs root; the ``build_env`` fixture runs `scoring-image/tools/setup_build_env.sh` (idempotent, seconds when warm),
and the build goes through tests/images.py (its storage keeps the base and an unchanged requirements layer).
"""

from __future__ import annotations

import json
import time

import orjson
import pytest
import requests
from scoring.build_context import assemble_build_context

from tests.images import BASE_IMAGE, build, discard, tool, wheelhouse

from .helpers import free_port, wait_for
from .models import credit_rows

pytestmark = pytest.mark.slow


def test_build_push_pull_run_and_score(build_env, image_registry, model_dir, tmp_path):
    registry = image_registry["host"]
    timings = {}
    ctx = assemble_build_context(
        model_dir,
        tmp_path / "ctx",
        base_image=BASE_IMAGE,
        model_name="credit-default",
        model_version="1",
        compile=True,
    )
    decision = json.loads((ctx.path / "compiled" / "decision.json").read_text())
    # Whichever measured faster on this machine now (both verified); the image must say and serve that one.
    chosen = decision["runtime"]
    assert chosen in ("onnxruntime", "treelite"), decision["reason"]
    local = f"localhost/modelplane-test/credit-default:{ctx.tag}"
    remote = f"{registry}/scoring/credit-default:{ctx.tag}"
    started = time.monotonic()
    wheelhouse(
        ctx.path / "requirements" / "model.txt",
        ctx.path / "requirements" / "server.txt",
        ctx.path / "compiled" / "requirements.txt",
    )
    build(ctx.path, local, dockerfile=ctx.path / "Dockerfile", build_args=ctx.build_args)
    timings["build"] = time.monotonic() - started
    container = f"scoring-test-{ctx.tag[:12]}"
    try:
        started = time.monotonic()
        tool("buildah", "push", "--tls-verify=false", "--disable-compression", local, f"docker://{remote}")
        timings["push"] = time.monotonic() - started
        tags = requests.get(f"http://{registry}/v2/scoring/credit-default/tags/list", timeout=10).json()
        assert ctx.tag in tags["tags"]

        # Run what the registry holds, as a cluster would: drop the local name and pull it back (the layers stay in
        # the storage under the keeper name of tests/images.py; the manifest and config come from the registry).
        discard(local)
        started = time.monotonic()
        tool("podman", "pull", "--tls-verify=false", remote)
        timings["pull"] = time.monotonic() - started
        inspect = json.loads(tool("podman", "image", "inspect", remote).stdout)[0]
        labels = inspect["Config"]["Labels"]
        assert labels["io.modelplane.model.name"] == "credit-default"
        assert labels["io.modelplane.model.version"] == "1"
        assert labels["io.modelplane.context-digest"] == ctx.digest
        assert labels["org.opencontainers.image.version"] == "1"
        assert inspect["Config"]["User"] == "10001"
        assert labels["io.modelplane.runtime"] == chosen
        assert float(labels["io.modelplane.runtime.max-abs-diff"]) <= 1e-5

        port, health_port = free_port(), free_port()
        started = time.monotonic()
        tool(
            "podman", "run", "-d", "--name", container, "--network", "host",
            "-e", f"SCORING_PORT={port}", "-e", f"SCORING_HEALTH_PORT={health_port}",
            "-e", f"SCORING_IMAGE_DIGEST={ctx.digest}",
            "-e", "SCORING_TELEMETRY_SAMPLE_RATE=1", remote,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(url + "/health/ready", timeout=120)
        except TimeoutError:
            logs = tool("podman", "logs", container, check=False)
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
        assert version["runtime"]["active"] == chosen, version["runtime"]
        assert version["runtime"]["build"]["runtime"] == chosen and version["runtime"]["startup_check"]
        assert requests.get(f"http://127.0.0.1:{health_port}/health/ready", timeout=5).json() == {"status": "ready"}
        assert version["image_digest"] == ctx.digest
        assert version["model_name"] == "credit-default" and version["model_version"] == "1"
        assert tool("podman", "exec", container, "id", "-u").stdout.strip() == "10001"

        # The same image forced to the original runtime answers the same.
        original_port = free_port()
        tool(
            "podman", "run", "-d", "--name", f"{container}-original", "--network", "host",
            "-e", f"SCORING_PORT={original_port}", "-e", "SCORING_HEALTH_PORT=0", "-e", "SCORING_RUNTIME=original",
            remote,
        )  # fmt: skip
        original_url = f"http://127.0.0.1:{original_port}"
        wait_for(original_url + "/health/ready", timeout=120)
        assert requests.get(original_url + "/version", timeout=10).json()["runtime"]["active"] == "original"
        forced = requests.post(
            original_url + "/predict",
            data=orjson.dumps(rows.to_dict(orient="records"), option=orjson.OPT_SERIALIZE_NUMPY),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert forced.json() == answer.json()
        tool("podman", "rm", "-f", f"{container}-original", check=False)

        # SIGTERM (podman stop) drains and exits 0; telemetry went to the container's stdout.
        tool("podman", "stop", "-t", "20", container)
        state = json.loads(tool("podman", "inspect", container).stdout)[0]["State"]
        assert state["ExitCode"] == 0
        lines = [json.loads(line) for line in tool("podman", "logs", container).stdout.splitlines() if line]
        assert any(line["status"] == 200 and line["rows"] == 5 for line in lines)
    finally:
        tool("podman", "rm", "-f", container, check=False)
        tool("podman", "rm", "-f", f"{container}-original", check=False)
        discard(remote, local)
        print("image timings (s):", {k: round(v, 1) for k, v in timings.items()})
