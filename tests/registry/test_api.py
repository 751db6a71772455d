from __future__ import annotations

from urllib.parse import quote

import pytest
from django.urls import reverse

from apps.demo.registry.credit_default import INPUT_COLUMNS
from apps.demo.registry.seed import DEMO_MODELS

pytestmark = pytest.mark.django_db

DEMO_NAMES = {m.name for m in DEMO_MODELS}


class ModelListApiTests:
    def test_it_lists_every_demo_model_with_aliases(self, api_client, any_registry):
        response = api_client.get("/api/v1/models/")
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"count", "next", "previous", "results"} and body["count"] is None
        by_name = {m["name"]: m for m in body["results"]}
        assert set(by_name) == DEMO_NAMES
        assert by_name["credit-default"]["aliases"] == {"production": "1", "staging": "2"}
        assert by_name["credit-default"]["latest_version"] == "2"
        assert by_name["customer-churn"]["latest_version"] == "3"
        assert by_name["credit-default"]["url"].endswith("/api/v1/models/credit-default/")

    def test_it_searches_by_part_of_the_name_case_insensitively(self, api_client, any_registry):
        response = api_client.get("/api/v1/models/", {"search": "CHURN"})
        assert [m["name"] for m in response.json()["results"]] == ["customer-churn"]

    def test_it_sorts_by_name_both_ways(self, api_client, registry):
        ascending = [m["name"] for m in api_client.get("/api/v1/models/", {"order": "name"}).json()["results"]]
        descending = [m["name"] for m in api_client.get("/api/v1/models/", {"order": "-name"}).json()["results"]]
        assert ascending == sorted(DEMO_NAMES)
        assert descending == sorted(DEMO_NAMES, reverse=True)

    def test_it_pages_forward_and_back_with_links(self, api_client, any_registry):
        first = api_client.get("/api/v1/models/", {"page_size": 2, "order": "name"}).json()
        assert [m["name"] for m in first["results"]] == sorted(DEMO_NAMES)[:2]
        assert first["previous"] is None and first["next"]
        second = api_client.get(first["next"]).json()
        assert [m["name"] for m in second["results"]] == sorted(DEMO_NAMES)[2:]
        assert second["next"] is None
        back = api_client.get(second["previous"]).json()
        assert back["results"] == first["results"]

    @pytest.mark.parametrize(
        ("params", "field"),
        [({"page_size": "0"}, "page_size"), ({"page_size": "x"}, "page_size"), ({"order": "size"}, "order")],
    )
    def test_it_names_the_bad_parameter(self, api_client, registry, params, field):
        response = api_client.get("/api/v1/models/", params)
        assert response.status_code == 400
        assert field in response.json()["errors"]

    def test_it_needs_authentication(self, client, registry):
        response = client.get("/api/v1/models/")
        assert response.status_code == 401
        assert response.json()["code"] == "not_authenticated"


class ModelDetailApiTests:
    def test_it_shows_one_model(self, api_client, any_registry):
        body = api_client.get("/api/v1/models/house-prices/").json()
        assert body["name"] == "house-prices"
        assert body["aliases"] == {"production": "2"}
        assert body["tags"]["team"] == "pricing"
        assert body["description"].startswith("Sale price")

    def test_an_unknown_model_is_a_404_naming_it(self, api_client, any_registry):
        response = api_client.get("/api/v1/models/no-such-model/")
        assert response.status_code == 404
        assert "no-such-model" in response.json()["detail"]
        assert response.json()["code"] == "not_found"

    def test_legacy_stages_are_shown_where_the_registry_has_them(self, api_client, registry):
        body = api_client.get("/api/v1/models/customer-churn/").json()
        assert body["stages"] == {"Production": "2", "Staging": "3"}


class VersionApiTests:
    def test_it_lists_versions_newest_first(self, api_client, any_registry):
        body = api_client.get("/api/v1/models/customer-churn/versions/").json()
        assert [v["version"] for v in body["results"]] == ["3", "2", "1"]
        assert all(v["run_id"] for v in body["results"])

    def test_versions_of_an_unknown_model_are_a_404(self, api_client, registry):
        assert api_client.get("/api/v1/models/nope/versions/").status_code == 404

    def test_version_detail_has_run_metrics_params_and_signature(self, api_client, any_registry):
        body = api_client.get("/api/v1/models/credit-default/versions/2/").json()
        assert body["aliases"] == ["staging"]
        assert body["description"] == "200 trees, the reference configuration."
        assert body["run"]["params"]["n_estimators"] == "200"
        assert 0.5 < body["run"]["metrics"]["roc_auc"] <= 1.0
        assert [c["name"] for c in body["signature"]["inputs"]] == INPUT_COLUMNS
        types = {c["name"]: c["type"] for c in body["signature"]["inputs"]}
        assert types["sex"] == "string" and types["bill_amount_1"] == "double"

    @pytest.mark.parametrize("version", ["99", "abc"])
    def test_an_unknown_version_is_a_404_naming_it(self, api_client, registry, version):
        response = api_client.get(f"/api/v1/models/credit-default/versions/{version}/")
        assert response.status_code == 404
        assert version in response.json()["detail"]

    def test_run_detail(self, api_client, registry):
        run_id = api_client.get("/api/v1/models/house-prices/versions/1/").json()["run_id"]
        body = api_client.get(f"/api/v1/runs/{run_id}/").json()
        assert body["run_id"] == run_id and "rmse" in body["metrics"]


class RegistryUnavailableApiTests:
    def test_an_unreachable_registry_is_a_503_with_the_masked_uri(self, api_client, settings):
        settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = "http://ci:s3cret@127.0.0.1:9/"
        response = api_client.get("/api/v1/models/")
        assert response.status_code == 503
        body = response.json()
        assert body["code"] == "registry_unavailable"
        assert "127.0.0.1:9" in body["detail"] and "s3cret" not in body["detail"]

    def test_a_misconfigured_registry_uri_is_a_503(self, api_client, settings):
        settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = "nosuchscheme://registry"
        response = api_client.get(f"/api/v1/models/{quote('x')}/")
        assert response.status_code == 503
        assert "nosuchscheme://registry" in response.json()["detail"]


def test_the_schema_documents_every_registry_operation(api_client):
    response = api_client.get(reverse("api-schema"), HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"] if response["Content-Type"].startswith("application/json") else response.content
    text = str(paths)
    for operation in ("models_list", "models_retrieve", "models_versions_list", "models_versions_retrieve"):
        assert operation in text
