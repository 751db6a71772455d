"""``manage.py check --deploy`` is clean with the settings the AKS overlay ships (plus the secrets it
references), and the embedded default keeps serving plain HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import rendered

REPO_ROOT = Path(__file__).resolve().parents[2]


def _aks_config() -> dict[str, str]:
    maps = [obj for obj in rendered("aks") if obj["kind"] == "ConfigMap"]
    return {key: value for obj in maps for key, value in obj["data"].items()}


def _manage(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "OIDC_", "LOCAL_LOGIN"))}
    clean |= {"MODELPLANE_VAR_DIR": str(tmp_path / "var"), "DJANGO_STATIC_ROOT": str(tmp_path / "static")} | env
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def production_env() -> dict[str, str]:
    return _aks_config() | {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": "postgres://modelplane:not-a-real-password@db.example.com:5432/modelplane",
        "REDIS_URL": "rediss://:not-a-real-password@cache.example.com:6380/0",
        "OIDC_TENANT_ID": "11111111-1111-1111-1111-111111111111",
        "OIDC_CLIENT_ID": "22222222-2222-2222-2222-222222222222",
        "OIDC_CLIENT_SECRET": "not-a-real-client-secret",
    }


class DeployCheckTests:
    def test_check_deploy_is_clean_with_the_aks_overlays_settings(self, production_env, tmp_path):
        assert production_env["DJANGO_DEBUG"] == "false"
        result = _manage(["check", "--deploy", "--fail-level", "WARNING"], production_env, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "System check identified no issues" in result.stdout

    def test_it_does_fail_on_an_insecure_production_setting(self, production_env, tmp_path):
        result = _manage(
            ["check", "--deploy", "--fail-level", "WARNING"],
            production_env | {"DJANGO_SECURE_COOKIES": "false"},
            tmp_path,
        )
        assert result.returncode != 0
        assert "security.W012" in result.stderr + result.stdout  # SESSION_COOKIE_SECURE

    def test_a_deployment_gets_secure_cookies_by_default_and_the_embedded_default_does_not(self, tmp_path):
        show = [
            "shell",
            "--no-imports",
            "-c",
            "from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE)",
        ]
        deployed = _manage(show, {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}, tmp_path)
        assert deployed.stdout.split()[-2:] == ["True", "True"], deployed.stderr
        embedded = _manage(show, {}, tmp_path)  # `make run`: plain HTTP on 127.0.0.1, a key generated in var/
        assert embedded.stdout.split()[-2:] == ["False", "False"], embedded.stderr

    def test_a_malformed_group_mapping_stops_the_start(self, tmp_path):
        result = _manage(["check"], {"OIDC_GROUP_ROLES": "some-group=superuser"}, tmp_path)
        assert result.returncode != 0
        assert "OIDC_GROUP_ROLES entry 'some-group=superuser'" in result.stderr
