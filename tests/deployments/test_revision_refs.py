"""One way to name a revision: the API takes back what it answers ("r3" as well as 3), a deployment's revision
is reachable by that name, and ``?wait=`` long-polls a revision until it is final."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import close_old_connections
from rest_framework.test import APIClient

from apps.accounts.services import api_token_create
from apps.deployments.models import Revision

pytestmark = pytest.mark.django_db


def _client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, name='t').key}")
    return client


@pytest.mark.parametrize("ref", ["r1", "R1", "1", 1])
def test_rollback_takes_the_revision_as_responses_name_it(alice, deployment, ref):
    client = _client(alice)
    live = client.get(f"/api/v1/deployments/{deployment.pk}/").json()
    earlier = [r["revision"] for r in live["revisions"] if r["status"] == "superseded"]
    assert earlier == ["r1"]  # what the API answers ...
    response = client.post(f"/api/v1/deployments/{deployment.pk}/rollback/", {"revision": ref}, format="json")
    assert response.status_code == 202, response.json()
    assert response.json()["rollback_of"] == "r1" and response.json()["revision"] == "r3"  # ... it takes back


@pytest.mark.parametrize("ref", ["x", "r0", "rr1", "-1", 0, 1.5, True, None])
def test_what_is_not_a_revision_is_a_400_naming_the_field(alice, deployment, ref):
    response = _client(alice).post(f"/api/v1/deployments/{deployment.pk}/rollback/", {"revision": ref}, format="json")
    assert response.status_code == 400 and "revision" in response.json()["errors"]


def test_a_deployments_revision_by_its_number_is_the_revision_by_its_id(carol, deployment):
    client = _client(carol)
    r1 = Revision.objects.get(deployment=deployment, number=1)
    by_name = client.get(f"/api/v1/deployments/{deployment.pk}/revisions/r1/")
    assert by_name.status_code == 200
    assert by_name.json() == client.get(f"/api/v1/revisions/{r1.pk}/").json()
    assert by_name.json()["url"].endswith(f"/api/v1/revisions/{r1.pk}/")
    assert client.get(f"/api/v1/deployments/{deployment.pk}/revisions/2/").json()["revision"] == "r2"
    missing = client.get(f"/api/v1/deployments/{deployment.pk}/revisions/r9/")
    assert missing.status_code == 404 and "r9" in missing.json()["detail"]
    assert client.get(f"/api/v1/deployments/{deployment.pk}/revisions/latest/").status_code == 400


@pytest.mark.django_db(transaction=True)
def test_wait_answers_once_the_revision_is_final(alice, deployment):
    queued = Revision.objects.create(deployment=deployment, number=3, model_version="1", status="queued")

    def finish():  # the worker's part, a moment after the request started waiting
        time.sleep(1.0)
        Revision.objects.filter(pk=queued.pk).update(status="live")
        close_old_connections()

    worker = threading.Thread(target=finish)
    worker.start()
    response = _client(alice).get(f"/api/v1/revisions/{queued.pk}/", {"wait": "30"})
    worker.join()
    assert response.status_code == 200 and response.json()["status"] == "live"


def test_wait_without_a_change_answers_the_current_state(alice, deployment):
    Revision.objects.create(deployment=deployment, number=3, model_version="1", status="queued")
    response = _client(alice).get(f"/api/v1/deployments/{deployment.pk}/revisions/r3/", {"wait": "0.3"})
    assert response.status_code == 200 and response.json()["status"] == "queued"
    final = _client(alice).get(f"/api/v1/deployments/{deployment.pk}/revisions/r2/", {"wait": "60"})
    assert final.json()["status"] == "live"  # already final: answered at once


@pytest.mark.parametrize("wait", ["61", "-1", "soon", "nan"])
def test_wait_is_bounded(alice, deployment, wait):
    response = _client(alice).get(f"/api/v1/deployments/{deployment.pk}/revisions/r2/", {"wait": wait})
    assert response.status_code == 400 and "wait" in response.json()["errors"]
