"""The model page as evidence: where each version serves, the best value per metric by its direction, the
metric history chart, and N versions side by side (page and API). Real SQLite MLflow registry, PostgreSQL."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from tests.promotions.helpers import make_live

pytestmark = pytest.mark.django_db

CHURN = "customer-churn"


def _metrics(mlflow_client, model: str) -> dict[str, dict[str, float]]:
    return {
        str(mv.version): mlflow_client.get_run(mv.run_id).data.metrics
        for mv in mlflow_client.search_model_versions(f"name = '{model}'")
    }


def _lowest(values: dict[str, dict[str, float]], metric: str) -> str:
    return min(values, key=lambda v: values[v][metric])


def test_the_model_page_says_where_each_version_serves(carol_client, registry, environments):
    staging = make_live(environments["staging"], "3", model=CHURN)
    make_live(environments["production"], "2", model=CHURN)
    response = carol_client.get(f"/models/{CHURN}/")
    live = {
        v.version: [(r.deployment.environment.name, r.label) for r in revisions]
        for v, _, revisions in response.context["rows"]
    }
    assert live == {"3": [("staging", "r1")], "2": [("production", "r1")], "1": []}
    row = response.content.decode().split('data-version="3"')[1].split("</tr>")[0]
    assert f'href="/deployments/{staging.deployment_id}/"' in row and "staging · r1" in row


def test_the_model_page_marks_the_best_version_by_direction_and_draws_the_history(
    carol_client, registry, mlflow_client
):
    values = _metrics(mlflow_client, CHURN)
    response = carol_client.get(f"/models/{CHURN}/")
    page = response.context["page"]
    assert page.directions == {"accuracy": "higher", "f1": "higher", "log_loss": "lower", "roc_auc": "higher"}
    assert page.best["log_loss"] == {_lowest(values, "log_loss")}
    html = response.content.decode()
    assert ">log_loss ↓</th>" in html and ">roc_auc ↑</th>" in html
    best_row = html.split(f'data-version="{_lowest(values, "log_loss")}"')[1].split("</tr>")[0]
    assert f'class="num best">{values[_lowest(values, "log_loss")]["log_loss"]:.4f}' in best_row
    figure = response.context["history"]
    titles = [a["text"] for a in figure["layout"]["annotations"]]
    assert titles == ["accuracy (↑ better)", "f1 (↑ better)", "log_loss (↓ better)", "roc_auc (↑ better)"]
    log_loss = figure["data"][2]
    assert log_loss["x"] == ["v1", "v2", "v3"] and log_loss["y"] == [values[v]["log_loss"] for v in "123"]
    assert 'data-figure="history-figure"' in html and "/monitoring/plotly-" in html


def test_the_compare_page_shows_versions_side_by_side_with_the_best_per_metric(
    carol_client, registry, environments, mlflow_client
):
    make_live(environments["production"], "2", model=CHURN)
    values = _metrics(mlflow_client, CHURN)
    response = carol_client.get(f"/models/{CHURN}/compare/?versions=3&versions=1,2")
    assert response.status_code == 200
    comparison = response.context["comparison"]
    assert [v.version for v in comparison.versions] == ["1", "2", "3"]
    metrics = {m.name: m for m in comparison.metrics}
    assert metrics["log_loss"].best == {_lowest(values, "log_loss")} and metrics["log_loss"].direction == "lower"
    assert metrics["roc_auc"].best == {max(values, key=lambda v: values[v]["roc_auc"])}
    params = {p.name: p for p in comparison.params}
    assert params["c"].values == {"1": "0.1", "2": "1.0", "3": "10.0"} and params["c"].differs
    assert not params["rows"].differs
    html = response.content.decode()
    assert html.count('<th class="num" data-version=') == 3 and "production · r1" in html
    assert '<tr data-param="c" class="differs">' in html


def test_the_versions_api_says_where_each_version_serves(api_client, registry, environments):
    make_live(environments["production"], "2", model=CHURN)
    body = api_client.get(f"/api/v1/models/{CHURN}/versions/").json()
    live = {v["version"]: [(x["environment"], x["revision"]) for x in v["live_in"]] for v in body["results"]}
    assert live == {"3": [], "2": [("production", "r1")], "1": []}


def test_the_compare_api_answers_what_the_page_shows(api_client, registry, environments, mlflow_client):
    make_live(environments["production"], "2", model=CHURN)
    values = _metrics(mlflow_client, CHURN)
    body = api_client.get(f"/api/v1/models/{CHURN}/compare/?versions=1,3,2").json()
    assert [v["version"] for v in body["versions"]] == ["1", "2", "3"]
    assert body["versions"][1]["live_in"][0]["environment"] == "production"
    assert body["versions"][1]["live_in"][0]["revision"] == "r1"
    metrics = {m["name"]: m for m in body["metrics"]}
    assert metrics["log_loss"]["better"] == "lower" and metrics["log_loss"]["best"] == [_lowest(values, "log_loss")]
    assert metrics["accuracy"]["values"] == {v: values[v]["accuracy"] for v in "123"}


def test_a_model_tag_turns_a_metric_around_on_the_model_page(carol_client, registry, mlflow_client):
    mlflow_client.set_registered_model_tag(CHURN, "modelplane.lower_is_better", "roc_auc")
    values = _metrics(mlflow_client, CHURN)
    page = carol_client.get(f"/models/{CHURN}/").context["page"]
    assert page.directions["roc_auc"] == "lower" and page.best["roc_auc"] == {_lowest(values, "roc_auc")}


def test_comparing_refuses_what_it_cannot_show(carol_client, api_client, registry):
    assert carol_client.get(f"/models/{CHURN}/compare/?versions=1,42").status_code == 404
    assert api_client.get(f"/api/v1/models/{CHURN}/compare/?versions=1,42").json()["code"] == "not_found"
    many = ",".join(str(n) for n in range(1, 12))
    refused = api_client.get(f"/api/v1/models/{CHURN}/compare/?versions={many}")
    assert refused.status_code == 400 and refused.json()["code"] == "too_many_versions"
    assert api_client.get(f"/api/v1/models/{CHURN}/compare/").json()["code"] == "no_versions"
    response = carol_client.get(f"/models/{CHURN}/compare/")
    assert response["Location"] == f"/models/{CHURN}/"
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Tick the versions to compare first."]
