"""Fixtures for promotions: a second reviewer, versions made live, and the registry put back after each test."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from apps.accounts.choices import Role
from apps.accounts.models import User
from apps.deployments.choices import DeploymentStatus, RevisionStatus
from apps.deployments.models import Deployment, Environment, Revision
from tests.conftest import PASSWORD
from tests.deployments.conftest import environments, local_dirs, teardown_local, worker_env  # noqa: F401 - fixtures

MODEL = "credit-default"


@pytest.fixture
def erin(db) -> User:
    """A second reviewer."""
    return User.objects.create_user(username="erin", password=PASSWORD, role=Role.REVIEWER)


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


def make_live(environment: Environment, version: str, model: str = MODEL) -> Revision:
    """A deployment of ``model`` serving ``version`` in ``environment`` (rows only; nothing runs)."""
    deployment, _ = Deployment.objects.get_or_create(
        environment=environment, model_name=model, defaults={"name": model, "status": DeploymentStatus.LIVE}
    )
    number = deployment.revisions.count() + 1
    revision = Revision.objects.create(
        deployment=deployment, number=number, model_version=version, status=RevisionStatus.LIVE
    )
    deployment.revisions.exclude(pk=revision.pk).filter(status=RevisionStatus.LIVE).update(
        status=RevisionStatus.SUPERSEDED
    )
    Deployment.objects.filter(pk=deployment.pk).update(live_revision=revision, status=DeploymentStatus.LIVE)
    return revision
