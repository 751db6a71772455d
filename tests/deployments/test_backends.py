"""Both backend families are registered and loaded the same way: the name picks the class, the settings give
its options (``IMAGE_BUILDER_OPTIONS``, ``DEPLOY_TARGET_OPTIONS``), an unknown name says what exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.deployments.backends import PermanentBackendError
from apps.deployments.builders import configured_builder, get_builder
from apps.deployments.targets import ServingSpec, configured_target, get_target
from controlplane.logging_redaction import secret_values

SPEC = ServingSpec(
    deployment="iris",
    namespace="ml",
    environment="dev",
    revision="r1",
    model_name="iris",
    model_version="1",
    model_uri="models:/iris/1",
)


def test_an_unknown_name_is_refused_with_the_names_of_its_family() -> None:
    with pytest.raises(
        PermanentBackendError, match=r"Unknown deployment target 'nomad'; expected one of kubernetes, local"
    ):
        get_target("nomad")
    with pytest.raises(
        PermanentBackendError, match=r"Unknown image builder 'nomad'; expected one of acr, buildah, local"
    ):
        get_builder("nomad")


def test_a_configured_target_takes_its_options_from_the_settings(settings) -> None:
    settings.DEPLOY_TARGET_OPTIONS = {
        "kubernetes": {
            "api_url": "http://127.0.0.1:1",
            "endpoint_url_template": "https://{deployment}.{namespace}.test",
        }
    }
    assert configured_target("kubernetes").endpoint_url(SPEC) == "https://iris.ml.test"


def test_the_local_target_serves_from_the_local_dirs_setting_unless_told_otherwise(settings, tmp_path: Path) -> None:
    settings.DEPLOY_TARGET_OPTIONS = {"local": {}}
    settings.DEPLOY_LOCAL_DIR, settings.TELEMETRY_DIR = tmp_path / "serve", tmp_path / "telemetry"
    target = configured_target("local")
    assert (target.base_dir, target.telemetry_dir) == (tmp_path / "serve", tmp_path / "telemetry")
    settings.DEPLOY_TARGET_OPTIONS = {"local": {"base_dir": tmp_path / "elsewhere"}}
    assert configured_target("local").base_dir == tmp_path / "elsewhere"


def test_a_configured_builder_takes_its_options_from_the_settings(settings) -> None:
    settings.IMAGE_BUILDER_OPTIONS = {"local": {"tool": "podman", "timeout": 5}}
    builder = configured_builder("local")
    assert (builder.kind, builder.timeout) == ("podman", 5.0)
    settings.IMAGE_BUILDER_OPTIONS = {"buildah": {"namespace": "builds"}}
    with pytest.raises(PermanentBackendError, match="BUILD_POD_CONTEXT_PVC, BUILD_POD_CONTEXT_DIR"):
        configured_builder("buildah")


def test_a_target_token_in_the_settings_is_redacted_from_logs(settings) -> None:
    settings.DEPLOY_TARGET_OPTIONS = {"kubernetes": {"api_url": "https://aks.test", "token": "aks-bearer-token-value"}}
    assert "aks-bearer-token-value" in secret_values(settings, environ={})
