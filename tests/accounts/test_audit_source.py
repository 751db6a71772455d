"""The audit ``source`` is derived, never passed: ``ui`` for a page, ``api`` for anything under /api/ (token or
session), ``system`` for Celery tasks and management commands, even when they run inside a request."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.http import HttpResponse
from django.test import RequestFactory
from rest_framework.test import APIClient

from apps.accounts.models import AuditEvent
from apps.accounts.request_context import RequestContextMiddleware
from apps.accounts.services import audit_record
from apps.deployments import tasks as deployment_tasks
from apps.deployments.models import Deployment
from apps.deployments.services import environment_ensure
from tests.accounts.helpers import CsrfClient, token_client

pytestmark = pytest.mark.django_db


def _token_event() -> AuditEvent:
    return AuditEvent.objects.filter(action="api_token.create").latest("id")


def _serve(path: str, work) -> None:
    """Serve one request whose view does ``work()``, through the middleware that remembers the request."""

    def view(request):
        work()
        return HttpResponse("ok")

    RequestContextMiddleware(view)(RequestFactory().post(path, REMOTE_ADDR="10.9.8.7"))


class AuditSourceTests:
    def test_a_page_write_is_ui(self, carol):
        CsrfClient(carol).post("/accounts/tokens/", {"name": "from-a-page"})
        event = _token_event()
        assert (event.data["token"], event.source, event.via) == ("from-a-page", "ui", "session")

    def test_an_api_write_with_a_token_is_api(self, carol):
        token_client(carol).post("/api/v1/tokens/", {"name": "from-the-api"}, format="json")
        event = _token_event()
        assert (event.data["token"], event.source, event.via) == ("from-the-api", "api", "token")

    def test_an_api_write_with_a_session_is_api_too(self, carol):
        client = APIClient()
        client.force_login(carol)
        assert client.post("/api/v1/tokens/", {"name": "session-api"}, format="json").status_code == 201
        event = _token_event()
        assert (event.data["token"], event.source, event.via) == ("session-api", "api", "session")

    def test_a_task_run_inside_a_request_is_the_systems(self):
        env = environment_ensure(name="dev", order=1)[0]
        deployment = Deployment.objects.create(environment=env, model_name="m", name="m", status="deleting")

        def work():
            audit_record(actor=None, action="demo.in_the_request")
            deployment_tasks.tear_down.apply(kwargs={"deployment_id": deployment.pk}).get()

        _serve("/deployments/1/delete/", work)
        in_request = AuditEvent.objects.get(action="demo.in_the_request")
        assert (in_request.source, in_request.ip) == ("ui", "10.9.8.7")
        by_task = AuditEvent.objects.get(action="deployment.deleted")
        assert (by_task.source, by_task.via, by_task.ip) == ("system", "", None)

    def test_a_command_run_inside_a_request_is_the_systems(self, carol):
        _serve("/api/v1/tokens/", lambda: call_command("api_token", "carol", "--name", "cli", stdout=StringIO()))
        event = _token_event()
        assert (event.data["token"], event.source, event.via, event.ip) == ("cli", "system", "", None)

    def test_a_command_is_the_systems(self, carol):
        call_command("api_token", "carol", stdout=StringIO())
        assert _token_event().source == "system"
