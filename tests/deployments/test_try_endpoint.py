"""Trying a deployment: the "Score it" snippet is built from the model's logged input example and works when
pasted into a shell; "Test this endpoint" sends the (edited) example from the control plane and shows the answer
and its latency, for those who may deploy there, within a time limit. Real local scoring process, real MLflow."""

from __future__ import annotations

import html
import json
import re
import subprocess

import pytest
from rest_framework.test import APIClient

from apps.deployments import pipeline, services
from apps.deployments.models import Deployment, Revision
from tests.emulators.silent_server import silent_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def live(alice, environments, registry, local_dirs, teardown_local, django_capture_on_commit_callbacks):
    revision = services.deployment_create(
        actor=alice, model_name="credit-default", model_version="2", environment="dev"
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert pipeline.revision_run(revision_id=revision.pk) == "live", Revision.objects.get(pk=revision.pk).error
    return Deployment.objects.get(pk=revision.deployment_id)


def _snippet(page: bytes) -> str:
    match = re.search(rb'<pre id="score-snippet">(.*?)</pre>', page, re.S)
    assert match, "no snippet on the page"
    return html.unescape(match.group(1).decode())


def test_the_snippet_carries_the_real_columns_and_works_when_pasted(client, carol, live):
    client.force_login(carol)
    snippet = _snippet(client.get(f"/deployments/{live.pk}/").content)
    assert "feature" not in snippet and '"credit_limit"' in snippet and "repayment_status_1" in snippet
    body = snippet.split("<<'JSON'\n", 1)[1].rsplit("\nJSON", 1)[0]
    assert set(json.loads(body)) == {"dataframe_split"}  # MLflow's scoring protocol, valid JSON
    pasted = subprocess.run(["bash", "-c", snippet], capture_output=True, text=True, timeout=60)
    answer = json.loads(pasted.stdout)
    assert len(answer["predictions"]) == len(json.loads(body)["dataframe_split"]["data"])
    assert set(answer["predictions"]) <= {0, 1}
    # The revision page's "Try it" is the same snippet.
    assert _snippet(client.get(f"/revisions/{live.live_revision_id}/").content) == snippet


def test_the_form_sends_the_example_and_shows_the_answer_and_latency(client, alice, live):
    client.force_login(alice)
    page = client.get(f"/deployments/{live.pk}/").content.decode()
    body = html.unescape(re.search(r'<textarea name="body"[^>]*>(.*?)</textarea>', page, re.S).group(1))
    answered = client.post(f"/deployments/{live.pk}/test/", {"body": body})
    text = html.unescape(answered.content.decode())
    assert answered.status_code == 200
    assert '<span class="pill ok" id="test-status">200</span>' in text
    assert re.search(r'<span id="test-latency">[\d.]+ ms</span>', text)
    assert '"predictions"' in text
    edited = json.loads(body)
    edited["dataframe_split"]["columns"][0] = "no_such_column"
    del edited["dataframe_split"]["columns"][1:]
    refused = client.post(f"/deployments/{live.pk}/test/", {"body": json.dumps(edited)}).content.decode()
    assert re.search(r'<span class="pill bad" id="test-status">4\d\d</span>', refused)
    assert "no_such_column" in refused  # the edited body is kept in the form


def test_not_json_is_refused_and_kept(client, alice, live):
    client.force_login(alice)
    response = client.post(f"/deployments/{live.pk}/test/", {"body": '{"dataframe_split": '})
    assert response.status_code == 400 and b"not valid JSON" in response.content
    assert b"{&quot;dataframe_split&quot;: </textarea>" in response.content


def test_only_those_who_deploy_there_may_send_test_requests(client, carol, live):
    client.force_login(carol)
    assert b'id="test-form"' not in client.get(f"/deployments/{live.pk}/").content
    response = client.post(f"/deployments/{live.pk}/test/", {"body": "{}"})
    assert response.status_code == 403 and b"Only ML leads and admins" in response.content


def test_an_endpoint_that_never_answers_is_given_up_on(client, alice, live, settings):
    settings.DEPLOY_TEST_TIMEOUT = 1
    with silent_server() as (port, _):
        Deployment.objects.filter(pk=live.pk).update(endpoint_url=f"http://127.0.0.1:{port}")
        client.force_login(alice)
        text = client.post(f"/deployments/{live.pk}/test/", {"body": "{}"}).content.decode()
    assert "no answer within 1 s" in text and 'id="test-status">no answer</span>' in text


def test_the_api_tests_with_the_example_or_a_given_input(alice, carol, live):
    from apps.accounts.services import api_token_create

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=alice, name='t').key}")
    example = api.post(f"/api/v1/deployments/{live.pk}/test/", {}, format="json")
    assert example.status_code == 200 and example.json()["status"] == 200
    assert example.json()["latency_ms"] > 0 and example.json()["request_id"].startswith("controlplane-test-")
    bad = api.post(f"/api/v1/deployments/{live.pk}/test/", {"input": {"instances": [{"x": 1}]}}, format="json")
    assert bad.status_code == 200 and 400 <= bad.json()["status"] < 500
    viewer = APIClient()
    viewer.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=carol, name='t').key}")
    assert viewer.post(f"/api/v1/deployments/{live.pk}/test/", {}, format="json").status_code == 403


def test_the_live_audit_event_names_the_revision_and_what_serves(live):
    from apps.accounts.models import AuditEvent

    event = AuditEvent.objects.get(action="deployment.live")
    assert (event.data["revision"], event.data["model"], event.data["environment"]) == ("r1", "credit-default", "dev")
    assert event.data["image"] == f"none (local process serving {live.live_revision.model_dir})"
