"""Every registry page, the API, a deploy's model download, a promotion, the drift reference download and
/status/ on Databricks: Unity Catalog (``databricks-uc``) and the workspace registry (``databricks``), with
MLflow's own stores and the Databricks SDK talking over HTTP to the emulator in ``tests/emulators``."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
import yaml
from django.urls import reverse
from mlflow.utils.rest_utils import get_workspace_client

from apps.common.errors import NotFoundError, UnavailableError
from apps.registry import selectors
from apps.registry import services as registry_services
from apps.registry.client import _client_for, get_client
from tests.emulators.databricks import DatabricksEmulator, make_jwt

pytestmark = pytest.mark.django_db

UC_MODEL = "Main.ML.Credit_Default"  # stored (and answered) lower-case by Unity Catalog
WS_MODEL = "credit-default"
UC_SEARCH = "/api/2.0/mlflow/unity-catalog/registered-models/search"
UC_GET = "/api/2.0/mlflow/unity-catalog/registered-models/get"
REFERENCE = pd.DataFrame({"income": [10.5, 20.0] * 20, "age": [30, 41] * 20}).to_parquet()
CREDENTIAL_VARS = [
    "DATABRICKS_TOKEN",
    "DATABRICKS_CLIENT_ID",
    "DATABRICKS_CLIENT_SECRET",
    "DATABRICKS_AUTH_TYPE",
    "DATABRICKS_OIDC_TOKEN_FILEPATH",
    "DATABRICKS_CONFIG_PROFILE",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_CLIENT_ID",
    "ARM_CLIENT_SECRET",
]


def _mlmodel() -> bytes:
    signature = {
        "inputs": json.dumps([{"type": "double", "name": "income", "required": True}]),
        "outputs": json.dumps([{"type": "long", "required": True}]),
        "params": None,
    }
    return yaml.safe_dump(
        {"flavors": {"python_function": {"loader_module": "mlflow.sklearn"}}, "signature": signature}
    ).encode()


def _seed(emu: DatabricksEmulator, name: str, *, extra_models: int) -> None:
    model = emu.add_model(name, description="Credit default classifier", tags={"team": "risk"})
    for number in (1, 2, 3):
        run = emu.add_run(f"run{number}abc", metrics={"roc_auc": 0.7 + number / 100}, params={"C": str(number)})
        run.artifacts = {"reference/reference.parquet": REFERENCE} if number == 2 else {}
        emu.add_version(name, files={"MLmodel": _mlmodel(), "model.pkl": b"pickle"}, run=run)
    if emu.unity_catalog:
        model.aliases = {"production": 1, "staging": 2}
    else:
        model.tags.update({"modelplane.alias.production": "1", "modelplane.alias.staging": "2"})
        model.versions[1].stage = "Production"
    for i in range(extra_models):
        other = f"main.ml.model_{i:02d}" if emu.unity_catalog else f"model-{i:02d}"
        emu.add_model(other, tags={"n": str(i)})
        emu.models[emu.canonical(other)].aliases = {"staging": 1} if emu.unity_catalog else {}
        emu.add_version(other, files={"MLmodel": _mlmodel()})


def _use(settings, monkeypatch, emu: DatabricksEmulator, *, registry_uri: str, token: bool = True) -> None:
    for var in CREDENTIAL_VARS:  # set then removed, so monkeypatch restores what the code under test sets
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    monkeypatch.setenv("DATABRICKS_HOST", emu.url)
    if token:
        monkeypatch.setenv("DATABRICKS_TOKEN", emu.pat)
    settings.MLFLOW_TRACKING_URI = "databricks"
    settings.MLFLOW_REGISTRY_URI = registry_uri
    settings.MLFLOW_UI_URL = ""
    _client_for.cache_clear()
    get_workspace_client.cache_clear()


@pytest.fixture
def uc(settings, monkeypatch, tmp_path):
    emu = DatabricksEmulator(unity_catalog=True)
    emu.start()
    _seed(emu, UC_MODEL, extra_models=30)
    _use(settings, monkeypatch, emu, registry_uri="databricks-uc")
    settings.DEPLOY_MODEL_CACHE = tmp_path / "models"
    yield emu
    emu.stop()
    _client_for.cache_clear()


@pytest.fixture
def workspace(settings, monkeypatch, tmp_path):
    emu = DatabricksEmulator(unity_catalog=False)
    emu.start()
    _seed(emu, WS_MODEL, extra_models=3)
    _use(settings, monkeypatch, emu, registry_uri="databricks")
    settings.DEPLOY_MODEL_CACHE = tmp_path / "models"
    yield emu
    emu.stop()
    _client_for.cache_clear()


@pytest.fixture(params=["uc", "workspace"])
def databricks(request):
    emu = request.getfixturevalue(request.param)
    return emu, (UC_MODEL.lower() if emu.unity_catalog else WS_MODEL)


# ---------------------------------------------------------------------------- pages and API, both registries
class DatabricksPagesTests:
    def test_the_models_page_lists_models_with_their_aliases(self, carol_client, databricks):
        emu, name = databricks
        response = carol_client.get(reverse("registry:model_list"))
        assert response.status_code == 200, response.content[:500]
        row = next(m for m in response.context["models"] if m.name == name)
        assert "@production → v1" in row.chips and "@staging → v2" in row.chips and "team=risk" in row.chips
        assert "modelplane.alias" not in row.chips, "the workspace registry's alias tags show as aliases only"
        assert row.latest_version == ("2" if emu.unity_catalog else "3")
        assert ('name="order"' in response.content.decode()) is not emu.unity_catalog, "no sort choice on UC"

    def test_the_model_page_shows_versions_newest_first_with_runs_and_the_signature(self, carol_client, databricks):
        emu, name = databricks
        response = carol_client.get(reverse("registry:model_detail", kwargs={"name": name}))
        assert response.status_code == 200, response.content[:500]
        rows = [
            (v.version, v.aliases, run.metrics["roc_auc"] if run else None) for v, run, _ in response.context["rows"]
        ]
        assert rows == [("3", [], 0.73), ("2", ["staging"], 0.72), ("1", ["production"], 0.71)]
        assert [c.name for c in response.context["page"].signature.inputs] == ["income"]

    def test_the_version_page_and_api_show_the_version(self, carol_client, api_client, databricks):
        emu, name = databricks
        page = carol_client.get(reverse("registry:version_detail", kwargs={"name": name, "version": "2"}))
        assert page.status_code == 200 and "income" in page.content.decode()
        assert f'href="{emu.url}/ml/experiments/7/runs/run2abc"' in page.content.decode(), "a Databricks run link"
        data = api_client.get(reverse("registry-api:version_detail", kwargs={"name": name, "version": "2"})).json()
        assert data["run"]["metrics"] == {"roc_auc": 0.72} and data["signature"]["inputs"][0]["name"] == "income"
        assert data["signature_error"] == ""

    def test_the_api_lists_and_pages_models_and_versions(self, api_client, databricks):
        emu, name = databricks
        first = api_client.get(reverse("registry-api:model_list"), {"page_size": 2}).json()
        assert len(first["results"]) == 2 and first["next"]
        second = api_client.get(first["next"]).json()
        assert {m["name"] for m in first["results"]}.isdisjoint(m["name"] for m in second["results"])
        versions = api_client.get(reverse("registry-api:version_list", kwargs={"name": name})).json()
        assert [v["version"] for v in versions["results"]] == ["3", "2", "1"]

    def test_a_forged_page_token_is_a_400(self, api_client, databricks):
        response = api_client.get(reverse("registry-api:model_list"), {"page_token": "forged", "search": "model"})
        assert response.status_code == 400, response.content

    def test_status_reports_the_registry_reachable(self, carol_client, databricks):
        response = carol_client.get("/status/")
        registry = next(check for check in response.context["checks"] if check.name == "MLflow registry")
        assert response.status_code == 200 and registry.ok and registry.state == "reachable"

    def test_refused_credentials_are_a_503_saying_so(self, carol_client, databricks, monkeypatch):
        emu, _ = databricks
        monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-wrong")
        _client_for.cache_clear()
        response = carol_client.get(reverse("registry:model_list"))
        assert response.status_code == 503 and "refused our credentials" in response.content.decode()

    def test_a_deploy_downloads_the_model_files(self, databricks, settings):
        emu, name = databricks
        path = selectors.model_files_get(name=name, version="2", cache_dir=settings.DEPLOY_MODEL_CACHE)
        assert (path / "MLmodel").read_bytes() == _mlmodel() and (path / "model.pkl").read_bytes() == b"pickle"


# ---------------------------------------------------------------------------- Unity Catalog specifics
class UnityCatalogTests:
    def test_a_models_page_costs_one_search_and_concurrent_gets_then_only_the_search(self, carol_client, uc):
        carol_client.get(reverse("registry:model_list"))  # the first page ever also resolves credentials
        uc.reset_log()
        from django.core.cache import cache

        cache.clear()
        started = time.monotonic()
        assert carol_client.get(reverse("registry:model_list")).status_code == 200
        cold = time.monotonic() - started
        assert (uc.count(UC_SEARCH), uc.count(UC_GET), uc.count("/.well-known")) == (1, 25, 0)
        assert len(uc.requests) == 26, uc.requests
        uc.reset_log()
        assert carol_client.get(reverse("registry:model_list")).status_code == 200
        assert uc.requests == [("GET", UC_SEARCH)], "aliases and tags come from the cache the second time"
        assert cold < 5

    def test_the_search_term_is_matched_here_and_paged(self, api_client, uc):
        first = api_client.get(reverse("registry-api:model_list"), {"search": "MODEL_1", "page_size": 4}).json()
        names = [m["name"] for m in first["results"]]
        assert names == ["main.ml.model_10", "main.ml.model_11", "main.ml.model_12", "main.ml.model_13"]
        rest = api_client.get(first["next"]).json()
        assert [m["name"] for m in rest["results"]] == [f"main.ml.model_{i}" for i in range(14, 18)]
        assert all("order_by" not in p and "filter" not in p for _, p in uc.requests)

    def test_any_case_of_a_name_reads_the_same_model(self, api_client, uc):
        data = api_client.get(reverse("registry-api:model_detail", kwargs={"name": UC_MODEL})).json()
        assert data["name"] == UC_MODEL.lower() and data["aliases"] == {"production": "1", "staging": "2"}
        assert data["latest_version"] == "2" and data["stages"] == {}

    def test_files_in_customer_storage_are_read_through_the_files_api(self, uc, settings):
        uc.models[UC_MODEL.lower()].versions[3].storage = "AZURE"  # a SAS for ADLS on the storage-SDK path
        path = selectors.model_files_get(name=UC_MODEL, version="3", cache_dir=settings.DEPLOY_MODEL_CACHE)
        assert (path / "MLmodel").read_bytes() == _mlmodel()
        assert uc.count("/api/2.0/fs/") and not uc.count(
            "/api/2.0/mlflow/unity-catalog/model-versions/generate-temporary-credentials"
        )

    def test_without_the_files_api_a_version_in_azure_storage_still_shows(
        self, carol_client, api_client, uc, monkeypatch
    ):
        monkeypatch.setenv("MLFLOW_USE_DATABRICKS_SDK_MODEL_ARTIFACTS_REPO_FOR_UC", "false")
        uc.models[UC_MODEL.lower()].versions[3].storage = "AZURE"  # needs azure-storage-file-datalake here
        page = carol_client.get(reverse("registry:version_detail", kwargs={"name": UC_MODEL, "version": "3"}))
        assert page.status_code == 200 and 'data-signature="unavailable"' in page.content.decode()
        data = api_client.get(reverse("registry-api:version_detail", kwargs={"name": UC_MODEL, "version": "3"})).json()
        assert data["signature"] is None and "mlflow[databricks]" in data["signature_error"]
        assert carol_client.get(reverse("registry:model_detail", kwargs={"name": UC_MODEL})).status_code == 200

    def test_a_version_whose_files_are_refused_still_shows_why(self, api_client, uc):
        uc.fail("/api/2.0/fs/", 403)
        data = api_client.get(reverse("registry-api:version_detail", kwargs={"name": UC_MODEL, "version": "2"})).json()
        assert data["version"] == "2" and data["signature"] is None and data["signature_error"]

    def test_a_promotion_moves_the_alias_with_the_environment_name_mapped(self, uc):
        from apps.registry.client import alias_for_environment

        assert alias_for_environment("prod-eu", unity_catalog=True) == "prod_eu"
        assert alias_for_environment("v2", unity_catalog=True) == "env_v2"
        registry_services.model_version_alias_set(
            name=UC_MODEL, version="3", alias=selectors.environment_alias("Prod-EU"), tags={"promotion.x": "1"}
        )
        model = uc.models[UC_MODEL.lower()]
        assert model.aliases["prod_eu"] == 3 and model.versions[3].tags == {"promotion.x": "1"}
        assert selectors.registered_model_get(name=UC_MODEL).aliases["prod_eu"] == "3"

    def test_an_unknown_version_writes_nothing(self, uc):
        with pytest.raises(NotFoundError):
            registry_services.model_version_alias_set(name=UC_MODEL, version="9", alias="production", tags={"a": "b"})
        assert not any(v.tags for v in uc.models[UC_MODEL.lower()].versions.values())


# ---------------------------------------------------------------------------- the workspace registry
class WorkspaceRegistryTests:
    def test_a_promotion_moves_the_alias_tag_and_never_calls_the_alias_api(self, workspace):
        registry_services.model_version_alias_set(name=WS_MODEL, version="3", alias="production", tags={"p": "1"})
        model = workspace.models[WS_MODEL]
        assert model.tags["modelplane.alias.production"] == "3" and model.versions[3].tags == {"p": "1"}
        assert not workspace.count("/api/2.0/mlflow/registered-models/alias")
        assert selectors.registered_model_get(name=WS_MODEL).aliases == {"production": "3", "staging": "2"}

    def test_stages_show_as_they_are(self, api_client, workspace):
        data = api_client.get(reverse("registry-api:model_detail", kwargs={"name": WS_MODEL})).json()
        assert data["stages"] == {"Production": "1", "None": "3"} or data["stages"]["Production"] == "1"


class PromotionOnDatabricksTests:
    def test_an_approved_promotion_moves_the_alias_and_starts_the_rollout(self, alice, bob, databricks):
        from apps.deployments.services import environment_ensure
        from apps.promotions import services
        from apps.promotions.choices import PromotionStatus

        emu, name = databricks
        environment_ensure(name="prod-eu", order=3, gated=True)
        promotion = services.promotion_request(
            actor=alice, model_name=name, version="3", environment="prod-eu", justification="better AUC"
        )
        promotion = services.promotion_approve(actor=bob, promotion=promotion)
        assert promotion.status == PromotionStatus.EXECUTED, promotion.execution_error
        model = emu.models[name]
        if emu.unity_catalog:
            assert model.aliases["prod_eu"] == 3
        else:
            assert model.tags["modelplane.alias.prod-eu"] == "3"
        assert model.versions[3].tags["promotion.prod-eu.approvers"] == "bob"

    def test_the_comparison_reads_the_live_version_from_the_environment_alias(self, alice, carol_client, databricks):
        from apps.deployments.services import environment_ensure
        from apps.promotions import selectors as promotion_selectors
        from apps.promotions import services

        emu, name = databricks
        environment_ensure(name="production", order=3, gated=True)
        promotion = services.promotion_request(
            actor=alice, model_name=name, version="3", environment="production", justification="better AUC"
        )
        comparison, error = promotion_selectors.promotion_comparison_get(promotion=promotion)
        assert error == "" and comparison.recorded and comparison.live_version == "1"
        assert {m.name: round(m.delta, 2) for m in comparison.metrics} == {"roc_auc": 0.02}
        page = carol_client.get(reverse("promotions:promotion_detail", kwargs={"pk": promotion.pk}))
        assert page.status_code == 200

    def test_a_refused_move_is_recorded_and_not_retried_forever(self, alice, bob, uc):
        from apps.deployments.services import environment_ensure
        from apps.promotions import services
        from apps.promotions.choices import PromotionStatus
        from apps.promotions.tasks import execute_approved

        environment_ensure(name="production", order=3, gated=True)
        promotion = services.promotion_request(
            actor=alice, model_name=UC_MODEL, version="3", environment="production", justification="better"
        )
        uc.fail("/api/2.0/mlflow/unity-catalog/registered-models/alias", 403)
        promotion = services.promotion_approve(actor=bob, promotion=promotion)
        assert promotion.status == PromotionStatus.APPROVED
        assert promotion.execution_error.startswith(services.REFUSED_PREFIX)
        assert execute_approved() == 0
        uc.reset_log()
        execute_approved()
        assert uc.count("/api/2.0/mlflow/unity-catalog/registered-models/alias") == 0


# ---------------------------------------------------------------------------- retries, credentials, drift
class RetryBudgetTests:
    def test_a_throttled_page_gives_up_within_its_budget_honouring_retry_after(self, carol_client, uc, settings):
        settings.DATABRICKS_RETRY_SECONDS = 4
        uc.fail(UC_SEARCH, 429, retry_after=1)
        started = time.monotonic()
        response = carol_client.get(reverse("registry:model_list"))
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        searches = uc.count(UC_SEARCH)
        assert elapsed < 12 and 2 <= searches <= 8, (elapsed, searches)

    def test_a_brief_throttle_is_waited_out(self, carol_client, uc):
        uc.fail(UC_SEARCH, 429, times=2, retry_after=1)
        started = time.monotonic()
        assert carol_client.get(reverse("registry:model_list")).status_code == 200
        assert time.monotonic() - started >= 1.5, "Retry-After was honoured"

    def test_a_worker_gets_the_longer_budget(self, uc, settings):
        import os

        from apps.registry import client as client_module

        get_client()
        assert os.environ["MLFLOW_DATABRICKS_ENDPOINT_HTTP_RETRY_TIMEOUT"] == str(settings.DATABRICKS_RETRY_SECONDS)
        client_module.use_worker_budget()
        try:
            get_client()
            assert os.environ["MLFLOW_DATABRICKS_ENDPOINT_HTTP_RETRY_TIMEOUT"] == str(
                settings.DATABRICKS_WORKER_RETRY_SECONDS
            )
        finally:
            client_module._role["worker"] = False


class CredentialTests:
    def test_oauth_m2m_tokens_are_reused_across_calls_and_pages(self, carol_client, uc, settings, monkeypatch):
        _use(settings, monkeypatch, uc, registry_uri="databricks-uc", token=False)
        monkeypatch.setenv("DATABRICKS_CLIENT_ID", uc.client_id)
        monkeypatch.setenv("DATABRICKS_CLIENT_SECRET", uc.client_secret)
        url = reverse("registry:model_detail", kwargs={"name": UC_MODEL})
        assert carol_client.get(url).status_code == 200
        # The registry and tracking stores fetch one token each; MLflow's file download (the signature, cached
        # afterwards) makes its own SDK clients, each with a token.
        assert uc.grants and set(uc.grants) == {"client_credentials"}
        uc.reset_log()
        assert carol_client.get(url).status_code == 200
        assert uc.grants == [] and uc.count("/.well-known") == 0 and uc.count("/oidc") == 0, uc.requests

    def test_aks_workload_identity_is_exchanged_by_token_federation(
        self, carol_client, uc, settings, monkeypatch, tmp_path
    ):
        _use(settings, monkeypatch, uc, registry_uri="databricks-uc", token=False)
        token_file = tmp_path / "azure-identity-token"
        claims = {"iss": uc.federation_issuer, "sub": uc.federation_subject, "aud": "api://AzureADTokenExchange"}
        token_file.write_text(make_jwt({**claims, "exp": int(time.time()) + 3600}))
        monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
        monkeypatch.setenv("AZURE_CLIENT_ID", uc.client_id)
        monkeypatch.setenv("AZURE_TENANT_ID", "tenant")
        assert carol_client.get(reverse("registry:model_list")).status_code == 200
        assert uc.grants == ["urn:ietf:params:oauth:grant-type:token-exchange"]

    def test_a_token_from_another_issuer_is_refused(self, carol_client, uc, settings, monkeypatch, tmp_path):
        _use(settings, monkeypatch, uc, registry_uri="databricks-uc", token=False)
        token_file = tmp_path / "token"
        token_file.write_text(make_jwt({"iss": "https://evil", "sub": uc.federation_subject, "exp": 2**31}))
        monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
        monkeypatch.setenv("AZURE_CLIENT_ID", uc.client_id)
        response = carol_client.get(reverse("registry:model_list"))
        assert response.status_code == 503


class DriftReferenceTests:
    def test_the_reference_data_set_is_downloaded_from_the_run(self, databricks):
        from apps.monitoring.services import baseline_ensure

        emu, name = databricks
        baseline = baseline_ensure(model_name=name, model_version="2")
        assert baseline.rows == 40

    def test_a_run_without_reference_data_says_so(self, databricks):
        from apps.monitoring.services import baseline_ensure

        emu, name = databricks
        with pytest.raises(NotFoundError) as error:
            baseline_ensure(model_name=name, model_version="3")
        assert error.value.code == "no_reference_data"

    def test_the_version_page_says_its_run_is_in_another_workspace(self, carol_client, uc):
        del uc.runs["run2abc"]
        page = carol_client.get(reverse("registry:version_detail", kwargs={"name": UC_MODEL, "version": "2"}))
        assert page.status_code == 200 and 'data-run="unreadable"' in page.content.decode()
        assert "another Databricks workspace" in page.content.decode()

    def test_a_run_in_another_workspace_is_named_as_such(self, uc):
        from apps.monitoring.services import baseline_ensure

        del uc.runs["run2abc"]
        with pytest.raises(NotFoundError, match="another workspace") as error:
            baseline_ensure(model_name=UC_MODEL, model_version="2")
        assert error.value.code == "no_reference_data"

    @pytest.mark.parametrize(("status", "code"), [(503, "registry_unavailable"), (403, "registry_forbidden")])
    def test_an_outage_or_a_refusal_is_not_missing_data(self, databricks, settings, status, code):
        from apps.monitoring.services import baseline_ensure

        emu, name = databricks
        settings.DATABRICKS_RETRY_SECONDS = 1
        emu.fail("/api/2.0/mlflow/runs/get", status)
        with pytest.raises(UnavailableError) as error:
            baseline_ensure(model_name=name, model_version="2")
        assert error.value.code == code


# ---------------------------------------------------------------------------- the emulator refuses what Databricks does
class EmulatorStrictnessTests:
    @staticmethod
    def _get(emu, path, token=None, **params):
        import requests

        headers = {"Authorization": f"Bearer {token or emu.pat}"}
        return requests.get(emu.url + path, params=params, headers=headers, timeout=5)

    def test_unity_catalog_search_refuses_order_by_and_filter(self, uc):
        assert self._get(uc, UC_SEARCH, order_by="name ASC").json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert self._get(uc, UC_SEARCH, filter="name LIKE '%a%'").status_code == 400
        versions = "/api/2.0/mlflow/unity-catalog/model-versions/search"
        assert self._get(uc, versions, filter=f"name='{UC_MODEL}'", order_by="version_number DESC").status_code == 400
        assert self._get(uc, versions, filter="tags.x = 'y'").status_code == 400
        assert self._get(uc, versions, filter=f"name='{UC_MODEL}'").status_code == 200

    def test_unity_catalog_refuses_aliases_it_cannot_store(self, uc):
        import requests

        url = uc.url + "/api/2.0/mlflow/unity-catalog/registered-models/alias"
        body = {"name": UC_MODEL, "alias": "prod-eu", "version": "1"}
        answer = requests.post(url, json=body, headers={"Authorization": f"Bearer {uc.pat}"}, timeout=5)
        assert answer.status_code == 400 and "Invalid alias" in answer.json()["message"]

    def test_the_workspace_registry_refuses_aliases(self, workspace):
        answer = self._get(workspace, "/api/2.0/mlflow/registered-models/alias", name=WS_MODEL, alias="production")
        assert answer.status_code == 400 and "not supported" in answer.json()["message"]

    def test_bad_credentials_forged_page_tokens_and_injected_throttling(self, uc):
        assert self._get(uc, UC_SEARCH, token="dapi-wrong").status_code == 401
        assert self._get(uc, UC_SEARCH, page_token="MTA6Zm9yZ2Vk").json()["message"] == "Invalid page token."
        token = self._get(uc, UC_SEARCH, max_results=5).json()["next_page_token"]
        assert len(self._get(uc, UC_SEARCH, max_results=5, page_token=token).json()["registered_models"]) == 5
        uc.fail(UC_SEARCH, 429, times=1, retry_after=3)
        throttled = self._get(uc, UC_SEARCH)
        assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "3"
        assert self._get(uc, UC_SEARCH).status_code == 200
