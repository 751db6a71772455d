"""A lead chooses per deployment how the scoring server checks request data (MLflow's coercions or strict 422s):
the choice travels from the form or the API to the revision, to the scoring process's SCORING_VALIDATION."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.deployments.choices import RevisionStatus
from apps.deployments.models import Revision
from apps.deployments.pipeline import serving_spec
from apps.deployments.targets.kubernetes_manifests import render_deployment

pytestmark = pytest.mark.django_db


def _deploy(lead_api: APIClient, **extra):
    body = {"model": "credit-default", "version": "2", "environment": "dev", **extra}
    return lead_api.post("/api/v1/deployments/", body, format="json")


def _finish(revision_id: int) -> None:
    Revision.objects.filter(pk=revision_id).update(status=RevisionStatus.LIVE)


def test_a_new_deployment_answers_as_mlflow_does(lead_api, environments, registry):
    response = _deploy(lead_api)
    revision = Revision.objects.get(pk=response.json()["id"])
    assert revision.config["input_validation"] == "mlflow"
    assert serving_spec(revision).env["SCORING_VALIDATION"] == "mlflow"


def test_strict_reaches_the_scoring_container_and_a_redeploy_keeps_it(lead_api, environments, registry):
    first = _deploy(lead_api, input_validation="strict")
    assert first.status_code == 202
    revision = Revision.objects.get(pk=first.json()["id"])
    container = render_deployment(serving_spec(revision))["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "SCORING_VALIDATION", "value": "strict"} in container["env"]
    _finish(revision.pk)
    again = Revision.objects.get(pk=_deploy(lead_api, version="1").json()["id"])
    assert again.config["input_validation"] == "strict"
    _finish(again.pk)
    back = Revision.objects.get(pk=_deploy(lead_api, input_validation="mlflow").json()["id"])
    assert serving_spec(back).env["SCORING_VALIDATION"] == "mlflow"


def test_an_unknown_choice_is_a_400_naming_the_field(lead_api, environments, registry):
    response = _deploy(lead_api, input_validation="lenient")
    assert response.status_code == 400 and "input_validation" in response.json()["errors"]
    assert not Revision.objects.exists()


def test_the_version_page_offers_the_choice_and_posts_it(client, alice, environments, registry):
    client.force_login(alice)
    page = client.get("/models/credit-default/versions/2/")
    assert b'name="input_validation"' in page.content
    client.post(
        "/deployments/new/",
        {"model": "credit-default", "version": "2", "environment": "dev", "input_validation": "strict"},
    )
    assert Revision.objects.get().config["input_validation"] == "strict"
