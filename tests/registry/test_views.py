from __future__ import annotations

import re

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


class ModelListPageTests:
    def test_it_lists_the_models_with_aliases_and_a_link_to_each(self, carol_client, any_registry):
        response = carol_client.get(reverse("registry:model_list"))
        assert response.status_code == 200
        text = _text(response)
        for name in ("credit-default", "house-prices", "customer-churn"):
            assert f'href="/models/{name}/"' in text
        assert "@production → v1" in text and "@staging → v2" in text

    def test_it_searches_and_says_when_nothing_matches(self, carol_client, registry):
        text = _text(carol_client.get(reverse("registry:model_list"), {"q": "house"}))
        assert "house-prices" in text and "credit-default" not in text
        assert "No model name contains “zebra”" in _text(
            carol_client.get(reverse("registry:model_list"), {"q": "zebra"})
        )

    def test_it_pages_with_previous_and_next(self, carol_client, registry, settings):
        settings.REGISTRY_PAGE_SIZE = 2
        first = carol_client.get(reverse("registry:model_list"), {"order": "name"})
        assert first.context["next_query"] and not first.context["previous_query"]
        second = carol_client.get(reverse("registry:model_list") + first.context["next_query"])
        assert [m.name for m in second.context["models"]] == ["house-prices"]
        assert second.context["page_number"] == 2
        back = carol_client.get(reverse("registry:model_list") + second.context["previous_query"])
        assert [m.name for m in back.context["models"]] == ["credit-default", "customer-churn"]

    def test_an_unknown_sort_falls_back_to_last_updated(self, carol_client, registry):
        assert carol_client.get(reverse("registry:model_list"), {"order": "bogus"}).context["order"] == "updated"


class ModelPageTests:
    def test_it_shows_versions_with_aliases_stages_metrics_and_the_signature(self, carol_client, any_registry):
        response = carol_client.get(reverse("registry:model_detail", kwargs={"name": "customer-churn"}))
        assert response.status_code == 200
        rows = {v.version: (v, run) for v, run, _live in response.context["rows"]}
        assert set(rows) == {"1", "2", "3"}
        assert rows["3"][0].aliases == ["staging"] and rows["2"][0].aliases == ["production"]
        assert rows["1"][1].metrics["roc_auc"] > 0.5
        assert "roc_auc" in response.context["page"].metric_names
        text = _text(response)
        assert "tenure_months" in text and "Logistic regression" in text
        assert f'href="/runs/{rows["3"][1].run_id}/"' in text

    def test_an_unknown_model_is_a_404_page_naming_it(self, carol_client, registry):
        response = carol_client.get("/models/not-a-model/")
        assert response.status_code == 404
        assert "not-a-model" in _text(response)


class VersionPageTests:
    def test_it_shows_run_metrics_params_and_signature(self, carol_client, any_registry):
        response = carol_client.get(
            reverse("registry:version_detail", kwargs={"name": "credit-default", "version": "1"})
        )
        assert response.status_code == 200
        text = _text(response)
        assert "@production" in text and "Baseline forest" in text
        assert "n_estimators" in text and "roc_auc" in text and "repayment_status_6" in text

    def test_an_unknown_version_is_a_404(self, carol_client, registry):
        assert carol_client.get("/models/credit-default/versions/42/").status_code == 404


class RegistryUnavailablePageTests:
    def test_the_page_says_the_registry_is_unreachable_without_the_password(self, carol_client, settings):
        settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = "http://ops:hunter2@127.0.0.1:9"
        response = carol_client.get(reverse("registry:model_list"))
        assert response.status_code == 503
        text = _text(response)
        assert "cannot be reached" in text and "127.0.0.1:9" in text and "hunter2" not in text


class RegistryCallCountTests:
    """A models page costs O(1) registry calls however many models exist."""

    def test_the_models_page_makes_one_registry_call(self, carol_client, registry, monkeypatch):
        from mlflow import MlflowClient

        calls: list[str] = []
        for name in ("search_registered_models", "get_registered_model", "search_model_versions", "get_run"):
            original = getattr(MlflowClient, name)

            def spy(self, *args, _original=original, _name=name, **kwargs):
                calls.append(_name)
                return _original(self, *args, **kwargs)

            monkeypatch.setattr(MlflowClient, name, spy)
        carol_client.get(reverse("registry:model_list"))
        assert calls == ["search_registered_models"]
        calls.clear()
        carol_client.get(reverse("registry:model_detail", kwargs={"name": "customer-churn"}))
        assert calls.count("search_model_versions") == 1 and calls.count("get_run") == 3
        calls.clear()
        carol_client.get(reverse("registry:model_detail", kwargs={"name": "customer-churn"}))
        # Finished runs and signatures come from the cache on the next visit.
        assert calls == ["get_registered_model", "search_model_versions"]
