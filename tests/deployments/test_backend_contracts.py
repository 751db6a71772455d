"""The contract every image builder and every deployment target keeps, run against each of them (as the telemetry
sources have theirs: tests/monitoring/test_source_contract.py). Cloud backends talk to their emulators over real
HTTP through the real SDKs; the registry is a real docker-registry. What each backend does beyond the contract is
tested in test_builders.py, test_kubernetes_target.py and test_rollout.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.deployments.backends import DEPLOY_TARGETS, IMAGE_BUILDERS, PermanentBackendError
from apps.deployments.builders import BuildRequest, get_builder
from apps.deployments.builders.base import ImageBuilder
from apps.deployments.targets.base import DeploymentTarget, Readiness, ServingSpec, get_target
from tests.emulators.acr import AcrEmulator, FakeCredential


def _registered(backend, registry: dict[str, str]) -> None:
    assert backend.name in registry and registry[backend.name].endswith("." + type(backend).__name__)


# ---------------------------------------------------------------------------- image builders
class BuilderContract:
    """Subclasses provide ``builder`` and ``absent_image`` (an image its registry does not hold)."""

    def test_is_a_registered_image_builder(self, builder):
        assert isinstance(builder, ImageBuilder)
        _registered(builder, IMAGE_BUILDERS.implementations)

    def test_an_image_the_registry_does_not_hold_does_not_exist(self, builder, absent_image):
        assert builder.exists(absent_image) is False

    def test_a_context_without_a_dockerfile_is_permanent_and_named(self, builder, absent_image, tmp_path: Path):
        (tmp_path / "ctx").mkdir()
        lines: list[str] = []
        with pytest.raises(PermanentBackendError, match="has no Dockerfile"):
            builder.build_and_push(BuildRequest(tmp_path / "ctx", absent_image, {}, {}), lines.append)


class TestLocalBuilder(BuilderContract):
    @pytest.fixture
    def builder(self, image_registry):
        return get_builder("local", tls_verify=False)

    @pytest.fixture
    def absent_image(self, image_registry) -> str:
        return f"{image_registry['host']}/contract/absent:1"


class TestAcrBuilder(BuilderContract):
    @pytest.fixture
    def acr(self, tmp_path):
        emulator = AcrEmulator(tmp_path).start()
        yield emulator
        emulator.stop()

    @pytest.fixture
    def builder(self, acr):
        return get_builder(
            "acr",
            subscription_id="0000-sub",
            resource_group="ml-rg",
            registry_name="modelplane",
            arm_endpoint=acr.url,
            credential=FakeCredential(),
            connection_verify=acr.ca,
            poll_interval=0.01,
        )

    @pytest.fixture
    def absent_image(self, acr) -> str:
        return f"{acr.host}/contract/absent:1"


class TestBuildahBuilder(BuilderContract):
    @pytest.fixture
    def builder(self, k8s_api, k8s_namespace, image_registry, tmp_path):
        return get_builder(
            "buildah",
            api_url=k8s_api.url,
            namespace=k8s_namespace,
            context_pvc="build-contexts",
            context_dir=str(tmp_path / "shared"),
            registry_secret="registry-push",
            tls_verify=False,
        )

    @pytest.fixture
    def absent_image(self, image_registry) -> str:
        return f"{image_registry['host']}/contract/absent:1"


# ---------------------------------------------------------------------------- deployment targets
def _spec(namespace: str) -> ServingSpec:
    return ServingSpec(
        deployment="never-applied",
        namespace=namespace,
        environment="dev",
        revision="r1",
        model_name="credit-default",
        model_version="1",
        model_uri="models:/credit-default/1",
        image="registry.example:5000/models/credit-default:1",
    )


class TargetContract:
    """Subclasses provide ``target`` and ``spec`` (a deployment the target never ran)."""

    def test_is_a_registered_deployment_target(self, target):
        assert isinstance(target, DeploymentTarget)
        _registered(target, DEPLOY_TARGETS.implementations)

    def test_deleting_what_never_ran_is_a_no_op_and_safe_twice(self, target, spec):
        lines: list[str] = []
        target.delete(spec, lines.append)
        target.delete(spec, lines.append)

    def test_retiring_what_never_ran_is_a_no_op(self, target, spec):
        target.retire(spec, lambda line: None)

    def test_what_never_ran_is_not_ready(self, target, spec):
        result = target.wait_ready(spec, lambda line: None, timeout_seconds=0.5)
        assert isinstance(result, Readiness) and result.ok is False and result.message


class TestLocalProcessTarget(TargetContract):
    @pytest.fixture
    def target(self, tmp_path):
        return get_target("local", base_dir=tmp_path / "local-target", telemetry_dir=tmp_path / "telemetry")

    @pytest.fixture
    def spec(self):
        return _spec("")


class TestKubernetesTarget(TargetContract):
    @pytest.fixture
    def target(self, k8s_api):
        return get_target("kubernetes", api_url=k8s_api.url, poll_interval_seconds=0.02, unschedulable_grace_seconds=0)

    @pytest.fixture
    def spec(self, k8s_namespace):
        return _spec(k8s_namespace)
