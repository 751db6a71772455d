"""Model names with slashes, dots, spaces, unicode and Unity Catalog's three parts survive URLs."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from django.urls import resolve, reverse
from mlflow import MlflowClient

NAMES = ["fraud/scorer", "main.risk.credit_default", "churn model v2", "ünïcödé-模型", "it's 100% ok?#&"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("route", "extra"),
    [
        ("registry:model_detail", {}),
        ("registry:version_detail", {"version": "3"}),
        ("registry-api:model_detail", {}),
        ("registry-api:version_list", {}),
        ("registry-api:version_detail", {"version": "3"}),
    ],
)
def test_names_round_trip_through_every_route(name, route, extra):
    url = reverse(route, kwargs={"name": name, **extra})
    match = resolve(unquote(url))  # what Django's handler resolves: the decoded path
    assert match.kwargs == {"name": name, **extra}
    assert f"{match.namespace}:{match.url_name}" == route


@pytest.fixture(scope="module")
def _odd_registry_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('odd') / 'mlflow.sqlite3'}"


@pytest.fixture
def odd_registry(_odd_registry_uri, settings) -> MlflowClient:
    settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = _odd_registry_uri
    client = MlflowClient(tracking_uri=_odd_registry_uri, registry_uri=_odd_registry_uri)
    for model in client.search_registered_models():
        client.delete_registered_model(model.name)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("name", [n for n in NAMES if "/" not in n])  # MLflow's own stores refuse '/'
def test_odd_names_work_against_a_real_registry(name, odd_registry, api_client, carol_client):
    odd_registry.create_registered_model(name, description=f"about {name}")
    body = api_client.get(reverse("registry-api:model_detail", kwargs={"name": name})).json()
    assert body["name"] == name and body["description"] == f"about {name}"
    assert api_client.get(reverse("registry-api:version_list", kwargs={"name": name})).json()["results"] == []
    page = carol_client.get(reverse("registry:model_detail", kwargs={"name": name}))
    assert page.status_code == 200 and page.context["model"].name == name
    found = api_client.get(reverse("registry-api:model_list"), {"search": name[:5]}).json()["results"]
    assert name in [m["name"] for m in found]


@pytest.mark.parametrize("name", NAMES)
def test_row_links_are_what_reverse_would_make(name):
    from apps.registry import links

    assert links.model_path(name) == reverse("registry:model_detail", kwargs={"name": name})
    assert links.version_path(name, "12") == reverse("registry:version_detail", kwargs={"name": name, "version": "12"})
    assert links.model_api_path(name) == reverse("registry-api:model_detail", kwargs={"name": name})
