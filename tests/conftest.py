"""The suite's shared fixtures, all in this one file: personas, real backing services, environments, the local
target's folders, the Kubernetes emulator, monitored deployments and their telemetry. A fixture used by one
folder only lives in that folder's conftest; no test module imports fixtures.

alice is an ML lead (requests promotions), bob a reviewer (approves), carol a viewer, dave an admin.
The MLflow registries are real: a SQLite registry per session, and a real ``mlflow server`` over HTTP.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import requests
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from mlflow import MlflowClient
from rest_framework.test import APIClient

from apps.accounts.choices import Role
from apps.accounts.models import User
from apps.accounts.services import api_token_create
from apps.deployments.models import Deployment, Environment, Revision
from apps.deployments.services import environment_ensure
from tests.emulators.k8s import Controller, EmulatorThread
from tests.promotions.helpers import MODEL
from tests.registries import Registry, free_port, http_registry, sqlite_registry
from tests.telemetry import line, write_lines

PASSWORD = "correct horse battery staple"


def _user(username: str, role: str) -> User:
    return User.objects.create_user(username=username, password=PASSWORD, role=role, is_staff=role == Role.ADMIN)


@pytest.fixture
def alice(db) -> User:
    return _user("alice", Role.LEAD)


@pytest.fixture
def bob(db) -> User:
    return _user("bob", Role.REVIEWER)


@pytest.fixture
def carol(db) -> User:
    return _user("carol", Role.VIEWER)


@pytest.fixture
def dave(db) -> User:
    return _user("dave", Role.ADMIN)


@pytest.fixture
def carol_client(client, carol):
    client.force_login(carol)
    return client


@pytest.fixture
def api_client(carol) -> APIClient:
    """An API client authenticated as carol (viewer) with a real token header."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=carol, name='tests').key}")
    return client


@pytest.fixture
def lead_api(alice) -> APIClient:
    """An API client authenticated as alice (ML lead) with a real token header."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=alice, name='t').key}")
    return client


@pytest.fixture(scope="session", autouse=True)
def _api_answers_match_the_openapi_schema():
    """Every /api/ answer any test gets through the test client is validated against the generated schema
    (status code documented, JSON, body schema): see tests/api_schema.py."""
    from django.test.client import Client

    from tests import api_schema

    original = Client.request

    def request(self, **request):
        response = original(self, **request)
        api_schema.check(request, response)
        return response

    Client.request = request
    yield
    Client.request = original


@pytest.fixture(scope="session", autouse=True)
def _static_files():
    """Pages are rendered with the production static storage (hashed names), so collect once."""
    call_command("collectstatic", interactive=False, verbosity=0)


@pytest.fixture
def page(settings):
    """A headless Chromium page (``tests/browser.py``). Request database fixtures before it: once Playwright's
    loop runs in the test thread, Django refuses ORM calls there."""
    from tests.browser import chromium_page

    with chromium_page(settings) as page:
        yield page


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """PBKDF2's million rounds cost ~0.3 s per user created; the tests are not about hashing strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield


@pytest.fixture(scope="session")
def sqlite_registry_session(tmp_path_factory) -> Registry:
    return sqlite_registry(tmp_path_factory.mktemp("mlflow-sqlite"))


@pytest.fixture(scope="session")
def http_registry_session(tmp_path_factory):
    with http_registry(tmp_path_factory.mktemp("mlflow-http")) as registry:
        yield registry


def _use(settings, registry: Registry) -> Registry:
    settings.MLFLOW_TRACKING_URI = registry.tracking_uri
    settings.MLFLOW_REGISTRY_URI = registry.tracking_uri
    settings.MLFLOW_ARTIFACT_ROOT = registry.artifact_root
    return registry


@pytest.fixture
def registry(settings, sqlite_registry_session, tmp_path) -> Registry:
    """The demo models in a real SQLite MLflow registry, configured as the control plane's registry.

    Each test gets its own copy of the registry database (the artifacts are shared and only ever added
    to), so a test that registers versions or moves aliases cannot change what another test sees."""
    source = Path(sqlite_registry_session.tracking_uri.removeprefix("sqlite:///"))
    copy = tmp_path / "mlflow.sqlite3"
    shutil.copyfile(source, copy)
    return _use(
        settings, Registry(tracking_uri=f"sqlite:///{copy}", artifact_root=sqlite_registry_session.artifact_root)
    )


@pytest.fixture(params=["sqlite", "http"])
def any_registry(request, settings) -> Registry:
    """The same demo models behind a SQLite URI and behind a real MLflow tracking server over HTTP (read-only)."""
    return (
        request.getfixturevalue("registry")
        if request.param == "sqlite"
        else _use(settings, request.getfixturevalue("http_registry_session"))
    )


# ---------------------------------------------------------------------------- promotions' registry
@pytest.fixture
def mlflow_client(registry) -> MlflowClient:
    return MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)


@pytest.fixture
def promo_registry(registry, mlflow_client):
    """The shared demo registry; the aliases and promotion tags a test changes are put back afterwards."""
    names = [MODEL, "house-prices", "customer-churn"]
    before = {name: dict(mlflow_client.get_registered_model(name).aliases) for name in names}
    yield registry
    for name, aliases in before.items():
        for alias, version in aliases.items():
            mlflow_client.set_registered_model_alias(name, alias, version)
        for alias in set(mlflow_client.get_registered_model(name).aliases) - set(aliases):
            mlflow_client.delete_registered_model_alias(name, alias)
        for mv in mlflow_client.search_model_versions(f"name = '{name}'"):
            for key in [k for k in mv.tags if k.startswith("promotion.")]:
                mlflow_client.delete_model_version_tag(name, mv.version, key)


# ---------------------------------------------------------------------------- environments and the local target
@pytest.fixture
def environments(db) -> dict[str, Environment]:
    specs = [("dev", 1, False), ("staging", 2, False), ("production", 3, True)]
    return {name: environment_ensure(name=name, order=order, gated=gated)[0] for name, order, gated in specs}


@pytest.fixture
def local_dirs(settings, tmp_path):
    """Each test's local scoring processes, model copies and telemetry in its own folder."""
    settings.DEPLOY_LOCAL_DIR = tmp_path / "local-target"
    settings.DEPLOY_MODEL_CACHE = tmp_path / "models"
    settings.TELEMETRY_DIR = tmp_path / "telemetry"
    return tmp_path


@pytest.fixture
def worker_env(local_dirs) -> dict[str, str]:
    return {
        "DEPLOY_LOCAL_DIR": str(local_dirs / "local-target"),
        "DEPLOY_MODEL_CACHE": str(local_dirs / "models"),
        "TELEMETRY_DIR": str(local_dirs / "telemetry"),
        "DEPLOY_LEASE_SECONDS": "4",
    }


@pytest.fixture
def teardown_local(local_dirs):
    yield
    for state in (local_dirs / "local-target").glob("*/*/*.json"):
        pid = json.loads(state.read_text())["pid"]
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------------------- xdist groups
# Tests sharing an expensive per-process session fixture run on one xdist worker, so that it is built once rather
# than once per worker: the scoring-image tests (trained models, a scoring server and an MLflow server, the MLflow
# parity fixture's fourteen servers) and the tests of the registry over HTTP (an ``mlflow server`` seeded with the
# demo models: ``any_registry``'s "http" parameter). Not ``--dist loadgroup``: with pytest 9.2 its marks no longer
# reach the scheduler (pytest-xdist#1386), and its scopes drop tests sharing a node id (the API fuzzer's).
_HTTP_REGISTRY = re.compile(r"\[(?:[^\]]*-)?http(?:-[^\]]*)?\]$")


def xdist_group(nodeid: str) -> str | None:
    if nodeid.startswith("tests/scoring_image/"):
        return "scoring-image"
    if _HTTP_REGISTRY.search(nodeid):
        return "http-registry"
    return None


def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "load":
        return None
    from xdist.scheduler import LoadScheduling

    class GroupedLoadScheduling(LoadScheduling):
        """``--dist load``, with each group's tests sent whole to one worker before the rest is shared out."""

        grouped_sent = False

        def _send_tests(self, node, num: int) -> None:
            if not self.grouped_sent:  # the first call: the collection is known, nothing is sent yet
                self.grouped_sent = True
                groups: dict[str, list[int]] = {}
                for index in self.pending:
                    if group := xdist_group(self.collection[index]):
                        groups.setdefault(group, []).append(index)
                grouped = {index for indexes in groups.values() for index in indexes}
                self.pending[:] = [index for index in self.pending if index not in grouped]
                for number, group in enumerate(sorted(groups)):
                    target = self.nodes[number % len(self.nodes)]
                    self.node2pending[target].extend(groups[group])
                    target.send_runtest_some(groups[group])
            super()._send_tests(node, num)

    return GroupedLoadScheduling(config, log)


# ---------------------------------------------------------------------------- the Kubernetes API emulator
_namespaces = itertools.count(1)


@pytest.fixture(scope="session")
def k8s_api() -> Iterator[EmulatorThread]:
    """The running emulator; ``k8s_api.url`` is its base URL (http://127.0.0.1:<free port>)."""
    runner = EmulatorThread().start()
    yield runner
    runner.stop()


@pytest.fixture
def k8s_controller(k8s_api: EmulatorThread) -> Controller:
    return Controller(k8s_api)


@pytest.fixture
def k8s_namespace(k8s_controller: Controller) -> str:
    """A namespace no other test uses, so one emulator serves the whole session; created, as the API server
    refuses objects in a namespace that does not exist."""
    name = f"test-{next(_namespaces)}"
    k8s_controller.create_namespace(name)
    return name


@pytest.fixture
def scoring_server(registry, local_dirs):
    """A real scoring server for credit-default v1: what a Kubernetes Service would route to (the target's
    ``endpoint_url_template`` points at it), so that smoke tests on the emulated cluster score for real."""
    from apps.registry import selectors as registry_selectors
    from tests.workers import wait_for

    model_dir = registry_selectors.model_files_get(name="credit-default", version="1", cache_dir=local_dirs / "m")
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(django_settings.SCORING_IMAGE_DIR),
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "scoring", "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _serves(url), timeout=90, what="the stand-in scoring server")
        yield url, model_dir
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def kube_deployment(registry, settings, k8s_api, k8s_namespace, scoring_server):
    """Makes credit-default in a Kubernetes environment ("aks-dev") of the emulated cluster whose versions went
    live in turn, ``{version: image}`` (the last one is live): ``(deployment, [revisions])``. Keyword arguments
    are the target's options."""
    from apps.deployments import services
    from apps.deployments.choices import DeploymentStatus, RevisionStatus

    url, model_dir = scoring_server

    def make(images: dict[str, str], *, gateway: str = "", ready_timeout: float = 30, **options):
        settings.DEPLOY_TARGET_OPTIONS = {
            **settings.DEPLOY_TARGET_OPTIONS,
            "kubernetes": {"api_url": k8s_api.url, "endpoint_url_template": url, **options},
        }
        settings.DEPLOY_READY_TIMEOUT = ready_timeout
        environment = Environment.objects.create(
            name="aks-dev",
            target="kubernetes",
            namespace=k8s_namespace,
            gateway=gateway,
            image_builder="local",
            image_registry="registry.example/models",
        )
        deployment = Deployment.objects.create(
            environment=environment, model_name="credit-default", name="credit-default"
        )
        config = services._config(environment)
        revisions = [
            Revision.objects.create(
                deployment=deployment,
                number=number,
                model_version=version,
                image=image,
                model_dir=str(model_dir),
                status=RevisionStatus.LIVE if number == len(images) else RevisionStatus.SUPERSEDED,
                config=config,
            )
            for number, (version, image) in enumerate(images.items(), start=1)
        ]
        Deployment.objects.filter(pk=deployment.pk).update(live_revision=revisions[-1], status=DeploymentStatus.LIVE)
        return Deployment.objects.get(pk=deployment.pk), revisions

    return make


def _serves(url: str) -> bool:
    try:
        return requests.get(f"{url}/health/ready", timeout=1).status_code == 200
    except requests.RequestException:
        return False


# ---------------------------------------------------------------------------- a monitored deployment
@pytest.fixture
def telemetry_dir(settings, tmp_path):
    settings.TELEMETRY_DIR = tmp_path / "telemetry"
    settings.TELEMETRY_SOURCE = "local"
    settings.TELEMETRY_SOURCE_OPTIONS = {"local": {"telemetry_dir": settings.TELEMETRY_DIR}}
    settings.TELEMETRY_DIR.mkdir()
    return settings.TELEMETRY_DIR


@pytest.fixture
def deployment(environments, alice) -> Deployment:
    d = Deployment.objects.create(
        environment=environments["dev"],
        model_name="credit-default",
        name="credit-default",
        status="live",
        endpoint_url="http://127.0.0.1:1",
        created_by=alice,
    )
    r1 = Revision.objects.create(deployment=d, number=1, model_version="1", status="superseded")
    r2 = Revision.objects.create(deployment=d, number=2, model_version="1", status="live")
    d.live_revision = r2
    d.save()
    assert r1.label == "r1"
    return d


@pytest.fixture
def traffic(telemetry_dir, deployment, registry):
    """Two minutes of requests; the second minute's sampled rows are all very old clients."""
    from apps.registry.client import get_client

    client = get_client()
    run_id = client.get_version("credit-default", "1").run_id
    path = client.download_run_artifact(run_id, "reference/reference.parquet", str(telemetry_dir.parent / "ref"))
    reference = pd.read_parquet(path).drop(columns=["prediction"])  # the demo logs the model's predictions
    rows = json.loads(reference.head(150).to_json(orient="records"))
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    lines = []
    for i, row in enumerate(rows):
        when = now - timedelta(minutes=2) + timedelta(seconds=i * 0.35)
        lines.append(line(when, latency_ms=10.0 + i, sampled=True, inputs=[row], outputs=[0]))
    for i, row in enumerate(rows):
        when = now - timedelta(minutes=1) + timedelta(seconds=i * 0.35)
        shifted = {**row, "age": 95}
        lines.append(line(when, latency_ms=20.0 + i, sampled=True, inputs=[shifted], outputs=[1]))
    write_lines(telemetry_dir / "dev--credit-default.jsonl", lines)
    reference.attrs["now"] = now  # the minute the two minutes end at, for tests that ask for a window around them
    return reference


# ---------------------------------------------------------------------------- real image builds (tests/images.py)
@pytest.fixture(scope="session")
def build_env() -> None:
    """buildah, podman and docker-registry installed, the base image in the build storage (seconds when warm)."""
    from tests import images

    images.setup_build_env("buildah", "podman", "docker-registry")


@pytest.fixture(scope="session")
def image_registry(build_env, tmp_path_factory) -> Iterator[dict]:
    """A real docker-registry on 127.0.0.1: {"host": "127.0.0.1:PORT", "log": its access log}."""
    from tests import images

    with images.docker_registry(tmp_path_factory.mktemp("image-registry")) as registry:
        yield registry


@pytest.fixture
def migrator(transactional_db) -> Iterator[MigrationExecutor]:
    """For a test of a data migration, which migrates the test database back and forth: afterwards the database is
    migrated to the latest state again, or every later test on this worker would meet the old schema."""
    yield MigrationExecutor(connection)
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
