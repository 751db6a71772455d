"""The monitoring page and the API share one composition, one set of parameters and one set of permissions."""

from __future__ import annotations

import io

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts.choices import Role
from apps.accounts.models import User
from apps.accounts.services import api_token_create
from apps.common.api import PreconditionFailed
from apps.deployments.models import Deployment, EnvironmentGrant
from apps.monitoring import selectors, services
from apps.monitoring.models import Baseline
from tests.monitoring.frames import credit_inputs_csv

pytestmark = pytest.mark.django_db


def _api(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, name='t').key}")
    return client


def _csv_file() -> io.BytesIO:
    data = credit_inputs_csv(50)
    upload = io.BytesIO(data)
    upload.name = "ref.csv"
    return upload


def test_nothing_deployed_reads_the_same_on_the_page_and_in_the_api(client, alice, environments):
    empty = Deployment.objects.create(environment=environments["dev"], model_name="credit-default", name="cd")
    message = f"{empty} has no revision yet, so there is no model version to monitor."
    api = _api(alice)
    drift = api.get(f"/api/v1/deployments/{empty.pk}/metrics/drift/")
    assert drift.status_code == 404 and drift.json()["detail"] == message
    traffic = api.post(f"/api/v1/deployments/{empty.pk}/monitoring/baseline/traffic/", {"window": "1h"}, format="json")
    assert traffic.status_code == 404 and traffic.json()["detail"] == message
    upload = api.post(f"/api/v1/deployments/{empty.pk}/monitoring/baseline/", {"file": _csv_file()}, format="multipart")
    assert upload.status_code == 404 and upload.json()["detail"] == message
    client.force_login(alice)
    page = client.get(reverse("monitoring:deployment_monitoring", kwargs={"pk": empty.pk})).content.decode()
    assert message in page


def test_the_page_picks_the_baseline_version_like_the_api(client, alice, deployment, registry):
    client.force_login(alice)
    url = reverse("monitoring:baseline_upload", kwargs={"pk": deployment.pk})
    assert client.post(url, {"file": _csv_file(), "version": "2"}).status_code == 302
    assert Baseline.objects.get(model_name="credit-default", model_version="2").source == "upload"
    assert not Baseline.objects.filter(model_version="1").exists()  # not the version the deployment serves
    client.post(url, {"file": _csv_file(), "version": "two"})
    assert Baseline.objects.count() == 1
    api = _api(alice).post(
        f"/api/v1/deployments/{deployment.pk}/monitoring/baseline/",
        {"file": _csv_file(), "version": "two"},
        format="multipart",
    )
    assert api.status_code == 400 and api.json()["errors"]["version"] == ["A version is a number, like 3."]


def test_a_lead_of_another_environment_is_offered_baselines_but_not_thresholds(
    client, carol, environments, deployment, registry
):
    EnvironmentGrant.objects.create(user=carol, environment=environments["staging"], role=Role.LEAD)
    client.force_login(carol)
    html = client.get(reverse("monitoring:deployment_monitoring", kwargs={"pk": deployment.pk})).content.decode()
    assert 'id="baseline-form"' in html and 'id="thresholds-form"' not in html
    client.post(reverse("monitoring:baseline_upload", kwargs={"pk": deployment.pk}), {"file": _csv_file()})
    assert Baseline.objects.get(model_name="credit-default", model_version="1").source == "upload"
    client.post(
        reverse("monitoring:drift_thresholds_set", kwargs={"pk": deployment.pk}), {"psi_warn": 0.3, "psi_alert": 0.6}
    )
    assert selectors.drift_thresholds_get(deployment=deployment) == (0.1, 0.25)


def test_the_service_checks_if_match_under_its_lock(alice, deployment):
    etag = selectors.drift_thresholds_etag(deployment=deployment)
    with pytest.raises(PreconditionFailed):
        services.drift_thresholds_set(actor=alice, deployment=deployment, psi_warn=0.2, psi_alert=0.4, if_match='"x"')
    assert selectors.drift_thresholds_get(deployment=deployment) == (0.1, 0.25)
    services.drift_thresholds_set(actor=alice, deployment=deployment, psi_warn=0.2, psi_alert=0.4, if_match=etag)
    assert selectors.drift_thresholds_get(deployment=deployment) == (0.2, 0.4)
    with pytest.raises(PreconditionFailed):  # the ETag of what was read is stale now
        services.drift_thresholds_set(actor=alice, deployment=deployment, psi_warn=0.3, psi_alert=0.5, if_match=etag)
