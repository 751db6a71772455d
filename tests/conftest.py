"""Personas and real backing services for the whole suite.

alice is an ML lead (requests promotions), bob a reviewer (approves), carol a viewer, dave an admin.
The MLflow registries are real: a SQLite registry per session, and a real ``mlflow server`` over HTTP.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import call_command
from rest_framework.test import APIClient

from apps.accounts.choices import Role
from apps.accounts.models import User
from apps.accounts.services import api_token_create
from tests.registries import Registry, http_registry, sqlite_registry

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
