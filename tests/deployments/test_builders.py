"""Image builders against real things: the ``local`` builder runs buildah and pushes to a real docker-registry on
127.0.0.1; the ``acr`` builder runs the real Azure SDK clients over HTTPS against a local endpoint that answers
like ARM, blob storage and the ACR data plane (tests/emulators/acr.py). Nothing of ours is patched.

The slow tests need root; the ``build_env`` fixture runs ``scoring-image/tools/setup_build_env.sh`` (idempotent,
seconds when warm). They build in a container storage of their own, seeded from the base image in the build
storage of tests/images.py, which also stands in for the Dockerfile's default base (no public registry is
reachable here).
"""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests
from scoring.build_context import DEFAULT_BASE_IMAGE, assemble_build_context

from apps.deployments import pipeline, services
from apps.deployments.backends import PermanentBackendError, TransientBackendError
from apps.deployments.builders import BuildRequest, get_builder
from apps.deployments.choices import RevisionStatus, StepName, StepStatus
from apps.deployments.models import Revision
from tests import images
from tests.emulators.acr import AcrEmulator, FakeCredential
from tests.scoring_image.helpers import free_port

SETUP_BASE_IMAGE = images.BASE_IMAGE


# ---------------------------------------------------------------------------- local builder fixtures
@pytest.fixture(scope="module")
def storage(build_env, tmp_path_factory) -> dict[str, str]:
    """A container storage of these tests' own, holding the setup script's base image under the Dockerfile's
    default base name too (``_build`` assembles contexts with the default base)."""
    root = tmp_path_factory.mktemp("storage")
    runroot = tempfile.mkdtemp(prefix="mp-run-")  # podman refuses an overlay runroot longer than 50 characters
    shared = images.storage()
    driver = shared["storage_driver"]
    flags = {"root": str(root / "root"), "runroot": runroot, "storage_driver": driver}
    buildah = ["buildah", "--root", flags["root"], "--runroot", flags["runroot"], "--storage-driver", driver]
    source = f"containers-storage:[{driver}@{shared['root']}+{shared['runroot']}]{SETUP_BASE_IMAGE}"
    images.run(*buildah, "pull", "-q", source)
    images.run(*buildah, "tag", SETUP_BASE_IMAGE, DEFAULT_BASE_IMAGE)
    yield flags
    subprocess.run([*buildah, "rmi", "--all", "--force"], capture_output=True, timeout=300)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(runroot, ignore_errors=True)


@pytest.fixture(scope="module")
def buildah_calls(tmp_path_factory) -> Path:
    """A ``buildah`` on a path of its own that records each invocation, then runs the real one: lets a test see
    from outside whether the builder ran."""
    directory = tmp_path_factory.mktemp("tool")
    calls = directory / "calls.log"
    real = shutil.which("buildah") or "/usr/bin/buildah"
    wrapper = directory / "buildah"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    calls.touch()
    return calls


@pytest.fixture
def local_options(storage, buildah_calls) -> dict:
    return {
        "tool": str(buildah_calls.parent / "buildah"),
        "tls_verify": False,
        "pull": "never",
        "compress": False,
        "volumes": [images.WHEELHOUSE_MOUNT],
        "extra_build_args": {"PIP_INSTALL_OPTIONS": images.WHEELHOUSE_PIP_OPTIONS},
        "timeout": 1200,
        **storage,
    }


def _pushes(registry_log: Path) -> list[str]:
    """Requests that write to the registry (blob uploads, manifest PUTs), from its access log."""
    return re.findall(r'"(?:PUT|POST|PATCH) (/v2/[^ ]+)', registry_log.read_text(errors="replace"))


def _manifest_digest(host: str, repository: str, tag: str) -> str:
    answer = requests.head(
        f"http://{host}/v2/{repository}/manifests/{tag}",
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.status_code
    return answer.headers["Docker-Content-Digest"]


# ---------------------------------------------------------------------------- local builder
@pytest.mark.slow
@pytest.mark.django_db
class LocalBuilderPipelineTests:
    def test_it_builds_and_pushes_once_and_a_redeploy_of_the_same_version_builds_nothing(
        self, alice, registry, local_dirs, settings, image_registry, local_options, buildah_calls, tmp_path
    ):
        settings.VAR_DIR = tmp_path / "var"
        settings.IMAGE_BUILDER_OPTIONS = {"local": local_options}
        host = image_registry["host"]
        services.environment_ensure(name="builds", order=9, image_builder="local", image_registry=f"{host}/models")
        first = services.deployment_create(
            actor=alice, model_name="credit-default", model_version="2", environment="builds"
        )
        _run_steps(first, StepName.RESOLVE)

        # The image the build step will produce, worked out the same way, is not in the registry yet.
        expected = assemble_build_context(
            first.model_dir, tmp_path / "expected", model_name="credit-default", model_version="2", compile=True
        )
        image = f"{host}/models/{first.deployment.name}:{expected.tag}"
        images.wheelhouse(
            expected.path / "requirements" / "model.txt",
            expected.path / "requirements" / "server.txt",
            expected.path / "compiled" / "requirements.txt",
        )
        builder = get_builder("local", **local_options)
        assert builder.exists(image) is False

        started = time.monotonic()
        build, push = _run_steps(first, StepName.BUILD, StepName.PUSH)
        build_seconds = time.monotonic() - started
        print(f"real image build and push: {build_seconds:.0f} s")
        first.refresh_from_db()
        assert build.status == StepStatus.SUCCEEDED, build.log[-3000:]
        assert build.message == f"built and pushed {image} (model runtime: onnxruntime)"
        assert "model runtime: onnxruntime (verified on" in build.log
        assert push.status == StepStatus.SUCCEEDED and push.message == f"{image} is in the registry"
        assert first.image == image and first.context_digest == expected.digest
        repository = f"models/{first.deployment.name}"
        assert first.image_digest == _manifest_digest(host, repository, expected.tag)
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", first.image_digest)
        assert "Successfully tagged" in build.log or "COMMIT" in build.log  # buildah's output was streamed
        assert builder.exists(image) is True
        config = _image_config(host, repository, expected.tag)
        assert config["config"]["Labels"]["io.modelplane.context-digest"] == expected.digest
        assert config["config"]["Labels"]["modelplane.io/revision"] == first.label
        assert config["config"]["User"] == "10001"
        calls_after_first = buildah_calls.read_text().splitlines()
        assert [call.split()[6] for call in calls_after_first[:1]] == ["bud"]
        pushes_after_first = _pushes(image_registry["log"])
        assert any(f"/v2/{repository}/manifests/{expected.tag}" in p for p in pushes_after_first)

        # Redeploy the same version: the build step finds the image and nothing is built or pushed.
        Revision.objects.filter(pk=first.pk).update(status=RevisionStatus.LIVE)
        second = services.deployment_create(
            actor=alice, model_name="credit-default", model_version="2", environment="builds"
        )
        _run_steps(second, StepName.RESOLVE)
        build, push = _run_steps(second, StepName.BUILD, StepName.PUSH)
        second.refresh_from_db()
        assert second.context_digest == first.context_digest, "scoring-image/ was edited while the test ran"
        assert build.status == StepStatus.SKIPPED
        assert build.message == f"{image} is already in the registry; nothing to build"
        assert push.status == StepStatus.SUCCEEDED
        assert buildah_calls.read_text().splitlines() == calls_after_first
        assert _pushes(image_registry["log"]) == pushes_after_first


def _run_steps(revision: Revision, *names: str) -> list:
    out = []
    for name in names:
        step = revision.steps.get(name=name)
        pipeline._run_step(revision, step)
        step.refresh_from_db()
        out.append(step)
    return out


def _image_config(host: str, repository: str, tag: str) -> dict:
    accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
    manifest = requests.get(f"http://{host}/v2/{repository}/manifests/{tag}", headers={"Accept": accept}, timeout=10)
    config_digest = manifest.json()["config"]["digest"]
    return requests.get(f"http://{host}/v2/{repository}/blobs/{config_digest}", timeout=30).json()


@pytest.mark.slow
class LocalBuilderFailureTests:
    def _context(self, tmp_path: Path, dockerfile: str) -> Path:
        context = tmp_path / "ctx"
        context.mkdir()
        (context / "Dockerfile").write_text(dockerfile)
        return context

    def test_a_failing_run_step_is_permanent_and_quotes_the_output(self, local_options, image_registry, tmp_path):
        context = self._context(
            tmp_path, f"FROM {SETUP_BASE_IMAGE}\nRUN echo 'no such package: flux-capacitor' && exit 3\n"
        )
        lines: list[str] = []
        with pytest.raises(PermanentBackendError) as failure:
            get_builder("local", **local_options).build_and_push(
                BuildRequest(context, f"{image_registry['host']}/bad/one:1", {}, {}), lines.append
            )
        assert "image build failed (buildah exited with" in failure.value.message
        assert "no such package: flux-capacitor" in failure.value.message
        assert "exit status 3" in failure.value.message
        assert any("flux-capacitor" in line for line in lines)  # streamed as it happened

    def test_an_unknown_instruction_is_permanent_and_named(self, local_options, image_registry, tmp_path):
        context = self._context(tmp_path, f"FROM {SETUP_BASE_IMAGE}\nCOPPY model/ /opt/model/\n")
        with pytest.raises(PermanentBackendError) as failure:
            get_builder("local", **local_options).build_and_push(
                BuildRequest(context, f"{image_registry['host']}/bad/two:1", {}, {}), lambda line: None
            )
        assert "coppy" in failure.value.message.lower()

    def test_a_context_without_a_dockerfile_is_permanent(self, local_options, tmp_path):
        (tmp_path / "ctx").mkdir()
        with pytest.raises(PermanentBackendError, match="has no Dockerfile"):
            get_builder("local", **local_options).build_and_push(
                BuildRequest(tmp_path / "ctx", "127.0.0.1:1/x/y:1", {}, {}), lambda line: None
            )

    def test_an_unreachable_registry_on_push_is_transient(self, local_options, tmp_path):
        context = self._context(tmp_path, f"FROM {SETUP_BASE_IMAGE}\nLABEL purpose=push-test\n")
        closed = f"127.0.0.1:{free_port()}"
        with pytest.raises(TransientBackendError) as failure:
            get_builder("local", **local_options, push_retries=0).build_and_push(
                BuildRequest(context, f"{closed}/models/push-test:1", {}, {}), lambda line: None
            )
        assert f"push to {closed} failed; will try again" in failure.value.message


@pytest.mark.slow
class LocalBuilderToolTests:
    def test_podman_builds_and_pushes_with_the_labels_and_returns_the_registry_digest(
        self, local_options, image_registry, tmp_path
    ):
        context = tmp_path / "ctx"
        context.mkdir()
        dockerfile = f"FROM {SETUP_BASE_IMAGE}\nARG GREETING=none\nRUN echo $GREETING > /hello\n"
        (context / "Dockerfile").write_text(dockerfile)
        host = image_registry["host"]
        options = {**local_options, "tool": "podman"}
        image = f"{host}/tools/podman:1"
        builder = get_builder("local", **options)
        assert builder.exists(image) is False
        digest = builder.build_and_push(
            BuildRequest(context, image, {"GREETING": "hi"}, {"modelplane.io/revision": "r7"}), lambda line: None
        )
        assert digest == _manifest_digest(host, "tools/podman", "1")
        assert builder.exists(image) is True
        assert _image_config(host, "tools/podman", "1")["config"]["Labels"]["modelplane.io/revision"] == "r7"


class LocalBuilderProcessTests:
    def test_a_silent_tool_is_stopped_at_the_timeout_and_that_is_transient(self, tmp_path):
        stuck = tmp_path / "bin" / "buildah"
        stuck.parent.mkdir()
        stuck.write_text("#!/bin/sh\necho starting\nexec sleep 60\n")
        stuck.chmod(0o755)
        (tmp_path / "ctx").mkdir()
        (tmp_path / "ctx" / "Dockerfile").write_text("FROM scratch\n")
        lines: list[str] = []
        started = time.monotonic()
        with pytest.raises(TransientBackendError, match="buildah took longer than 1 s; stopped it"):
            get_builder("local", tool=str(stuck), timeout=1).build_and_push(
                BuildRequest(tmp_path / "ctx", "127.0.0.1:1/x/y:1", {}, {}), lines.append
            )
        assert time.monotonic() - started < 10
        assert lines == ["starting"]

    def test_a_missing_tool_is_permanent_and_named(self, tmp_path):
        (tmp_path / "ctx").mkdir()
        (tmp_path / "ctx" / "Dockerfile").write_text("FROM scratch\n")
        with pytest.raises(PermanentBackendError, match="is not installed on this worker"):
            get_builder("local", tool=str(tmp_path / "nowhere" / "podman")).build_and_push(
                BuildRequest(tmp_path / "ctx", "127.0.0.1:1/x/y:1", {}, {}), lambda line: None
            )

    def test_an_unknown_tool_is_refused(self):
        with pytest.raises(PermanentBackendError, match="is not buildah, podman or docker"):
            get_builder("local", tool="kaniko")


class RegistryExistsTests:
    def test_an_unreachable_registry_is_transient(self):
        closed = f"127.0.0.1:{free_port()}"
        with pytest.raises(TransientBackendError, match=f"registry {closed} is unreachable"):
            get_builder("local", tls_verify=False).exists(f"{closed}/models/x:1")

    def test_a_registry_asking_for_a_token_gets_one_with_the_configured_credentials(self, tmp_path):
        """Basic credentials are exchanged for a bearer token at the realm the 401 names (Docker Hub, ACR, Harbor)."""
        emulator = _TokenRegistry().start()
        try:
            builder = get_builder("local", tls_verify=False, username="robot", password="s3cret")
            assert builder.exists(f"{emulator.host}/models/present:1") is True
            assert builder.exists(f"{emulator.host}/models/absent:1") is False
            with pytest.raises(PermanentBackendError, match="refused a token"):
                get_builder("local", tls_verify=False, username="robot", password="wrong").exists(
                    f"{emulator.host}/models/present:1"
                )
        finally:
            emulator.stop()


class _TokenRegistry:
    """A plain-HTTP registry that wants a bearer token from its /token realm (basic auth robot:s3cret)."""

    def start(self) -> _TokenRegistry:
        import base64
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _answer(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:
                good = "Basic " + base64.b64encode(b"robot:s3cret").decode()
                if self.path.startswith("/token") and self.headers.get("Authorization") == good:
                    return self._answer(200, json.dumps({"token": "t0k"}).encode())
                return self._answer(401)

            def do_HEAD(self) -> None:
                if self.headers.get("Authorization") != "Bearer t0k":
                    realm = f'Bearer realm="http://{registry.host}/token",service="{registry.host}"'
                    return self._answer(401, headers={"WWW-Authenticate": realm})
                if "/present/" in self.path:
                    return self._answer(200, headers={"Docker-Content-Digest": "sha256:" + "a" * 64})
                return self._answer(404)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------- ACR builder
@pytest.fixture
def acr(tmp_path) -> AcrEmulator:
    emulator = AcrEmulator(tmp_path).start()
    yield emulator
    emulator.stop()


def _acr_builder(acr: AcrEmulator, **overrides) -> object:
    options = {
        "subscription_id": "0000-sub",
        "resource_group": "ml-rg",
        "registry_name": "modelplane",
        "arm_endpoint": acr.url,
        "credential": FakeCredential(),
        "connection_verify": acr.ca,
        "poll_interval": 0.01,
        "retry_total": 2,
        "retry_backoff_factor": 0.01,
        **overrides,
    }
    return get_builder("acr", **options)


def _small_context(tmp_path: Path) -> Path:
    context = tmp_path / "ctx"
    (context / "model").mkdir(parents=True)
    (context / "Dockerfile").write_text(
        "ARG BASE_IMAGE=python:3.11-slim-bookworm\nFROM ${BASE_IMAGE}\nCOPY model/ /opt/model/\n"
    )
    (context / "model" / "MLmodel").write_text("flavors: {}\n")
    return context


ARM_PREFIX = "/subscriptions/0000-sub/resourceGroups/ml-rg/providers/Microsoft.ContainerRegistry/registries/modelplane"


class AcrBuilderTests:
    def test_it_uploads_the_context_runs_the_build_streams_the_log_and_returns_the_digest(self, acr, tmp_path):
        builder = _acr_builder(acr)
        image = f"{acr.host}/models/credit-default:abc123"
        assert builder.exists(image) is False
        lines: list[str] = []
        request = BuildRequest(
            _small_context(tmp_path), image, {"MODEL_NAME": "credit-default"}, {"modelplane.io/revision": "r3"}
        )

        digest = builder.build_and_push(request, lines.append)

        run = acr.runs["cb1"]
        assert digest == run.digest and re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
        # The blob PUT carried the context as a tar.gz, with the labels appended to its Dockerfile.
        [archive] = acr.uploads.values()
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive))) as tar:
            assert {"Dockerfile", "model/MLmodel"} <= set(tar.getnames())
            dockerfile = tar.extractfile("Dockerfile").read().decode()
        assert dockerfile.endswith('LABEL modelplane.io/revision="r3"\n')
        put = [headers for method, path, headers in acr.requests if method == "PUT"]
        assert put and put[0]["x-ms-blob-type"] == "BlockBlob"
        # The run asked for: the image (relative to the registry), push on, the build args, the uploaded source.
        assert run.request["type"] == "DockerBuildRequest"
        assert run.request["imageNames"] == ["models/credit-default:abc123"]
        assert run.request["isPushEnabled"] is True and run.request["dockerFilePath"] == "Dockerfile"
        assert run.request["arguments"] == [{"name": "MODEL_NAME", "value": "credit-default", "isSecret": False}]
        assert run.request["sourceLocation"].startswith("source/") and run.request["platform"]["os"] == "Linux"
        # Status progression and the run log, as they happened.
        statuses = [line.rsplit(": ", 1)[1] for line in lines if line.startswith("ACR run cb1: ")]
        assert statuses == ["Queued", "Running", "Succeeded"]
        assert f"Successfully tagged {acr.host}/models/credit-default:abc123" in lines
        assert lines.index("Step 1/9 : ARG BASE_IMAGE") < lines.index("ACR run cb1: Running")
        assert f"{ARM_PREFIX}/runs/cb1/listLogSasUrl" in acr.paths("POST")
        assert builder.exists(image) is True
        assert [p for p in acr.paths() if p.startswith("/oauth2/exchange")]  # the ACR token dance happened

    def test_a_failed_run_is_permanent_with_the_log_tail(self, acr, tmp_path):
        acr.outcome = "Failed"
        image = f"{acr.host}/models/credit-default:bad"
        with pytest.raises(PermanentBackendError) as failure:
            _acr_builder(acr).build_and_push(BuildRequest(_small_context(tmp_path), image, {}, {}), lambda line: None)
        message = failure.value.message
        assert message.startswith("ACR build run cb1 failed: failed during run, err: exit status 1; last lines:")
        assert "ERROR: No matching distribution" in message
        assert _acr_builder(acr).exists(image) is False

    def test_a_run_that_outlasts_the_timeout_is_cancelled_and_transient(self, acr, tmp_path):
        acr.outcome = "Running"
        with pytest.raises(TransientBackendError, match="ACR build run cb1 took longer than 0 s; cancelled"):
            _acr_builder(acr, timeout=0.2).build_and_push(
                BuildRequest(_small_context(tmp_path), f"{acr.host}/m/x:1", {}, {}), lambda line: None
            )
        assert f"{ARM_PREFIX}/runs/cb1/cancel" in acr.paths("POST")
        assert acr.runs["cb1"].request["timeout"] == 300  # the API's minimum

    def test_a_server_error_is_transient(self, acr, tmp_path):
        acr.faults["listBuildSourceUploadUrl"] = [503, 503, 503]
        with pytest.raises(TransientBackendError, match="answered 503; will try again"):
            _acr_builder(acr).build_and_push(
                BuildRequest(_small_context(tmp_path), f"{acr.host}/m/x:1", {}, {}), lambda line: None
            )
        assert not acr.runs

    def test_throttling_is_retried_by_the_sdk(self, acr, tmp_path):
        acr.faults["scheduleRun"] = [429]
        digest = _acr_builder(acr).build_and_push(
            BuildRequest(_small_context(tmp_path), f"{acr.host}/m/x:1", {}, {}), lambda line: None
        )
        assert digest == acr.runs["cb1"].digest
        assert acr.paths("POST").count(f"{ARM_PREFIX}/scheduleRun") == 2

    def test_throttling_that_outlasts_the_retries_is_transient(self, acr, tmp_path):
        acr.faults["/runs/cb1"] = [429] * 10
        with pytest.raises(TransientBackendError, match="answered 429"):
            _acr_builder(acr).build_and_push(
                BuildRequest(_small_context(tmp_path), f"{acr.host}/m/x:1", {}, {}), lambda line: None
            )

    def test_a_refused_credential_is_permanent(self, acr, tmp_path):
        builder = _acr_builder(acr, credential=FakeCredential("expired"))
        with pytest.raises(PermanentBackendError, match="refused the Azure credential"):
            builder.build_and_push(BuildRequest(_small_context(tmp_path), f"{acr.host}/m/x:1", {}, {}), print)

    def test_an_unreachable_arm_endpoint_is_transient(self, acr, tmp_path):
        builder = _acr_builder(acr, arm_endpoint=f"https://127.0.0.1:{free_port()}")
        with pytest.raises(TransientBackendError, match="is unreachable"):
            builder.build_and_push(BuildRequest(_small_context(tmp_path), f"{acr.host}/m/x:1", {}, {}), print)

    def test_missing_settings_are_named(self):
        with pytest.raises(PermanentBackendError, match="set ACR_RESOURCE_GROUP, ACR_REGISTRY_NAME"):
            get_builder("acr", subscription_id="0000-sub")
