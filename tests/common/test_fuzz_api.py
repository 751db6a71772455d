"""schemathesis over the whole OpenAPI schema, against the real Django app over WSGI.

Every operation the schema documents is called with generated (valid and invalid) input, with a real API token
of an admin and of a viewer. It must never answer 5xx, and every answer must be documented: status code,
content type and body schema. Path ids are half the time those of real rows, so the operations also run
against a live deployment, its revisions, a pending promotion, a token and a service account, not only 404s.

Bounded: ``EXAMPLES`` per operation, two in three as the admin and one in three as the viewer (the whole file
runs in about three minutes on two quiet cores).
Run alone with ``bash scripts/test.sh tests/common/test_fuzz_api.py``.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apps.accounts.choices import Role
from apps.accounts.services import api_token_create, service_account_create
from apps.deployments.choices import RevisionStatus
from apps.promotions.models import PromotionRequest
from tests.api_schema import raw_schema
from tests.promotions.helpers import MODEL, make_live

EXAMPLES = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


schema = schemathesis.openapi.from_dict(raw_schema())
schema.app = get_wsgi_application()


@pytest.fixture
def world(db, dave, carol, alice, environments, registry) -> dict[str, object]:
    """Rows for the ids to point at, and a token per persona."""
    make_live(environments["dev"], "1")
    live = make_live(environments["dev"], "2")
    promotion = PromotionRequest.objects.create(
        model_name=MODEL, version="2", environment=environments["production"], justification="fuzz", requested_by=alice
    )
    return {
        "deployments": live.deployment_id,
        "revisions": live.deployment.revisions.filter(status=RevisionStatus.SUPERSEDED).first().pk,
        "promotions": promotion.pk,
        "tokens": api_token_create(user=dave, name="spare").token.pk,  # not the one the fuzzer authenticates with
        "service-accounts": service_account_create(actor=dave, username="ci-bot", role=Role.LEAD).pk,
        "admin": api_token_create(user=dave, name="fuzz").key,
        "viewer": api_token_create(user=carol, name="fuzz").key,
        "calls": 0,
    }


@pytest.fixture
def wsgi_in_test_transaction():
    """The WSGI handler closes the database connection after each request, which would end the test's
    transaction; Django's own test client turns that off the same way."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def _point_at_real_rows(case, world: dict[str, object]) -> None:
    params = case.path_parameters or {}
    pk = params.get("id")
    if isinstance(pk, int) and pk % 2 == 0:
        collection = case.path.split("/")[3]  # /api/v1/<collection>/{id}/...
        if collection in world:
            params["id"] = world[collection]
    name = params.get("name")
    if isinstance(name, str) and len(name) % 2 == 0:
        params["name"] = MODEL
        if isinstance(params.get("version"), str) and len(params["version"]) % 2 == 0:
            params["version"] = "1"


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_answers_every_generated_request_as_documented(case, world, wsgi_in_test_transaction):
    _point_at_real_rows(case, world)
    world["calls"] += 1
    persona = "viewer" if world["calls"] % 3 == 0 else "admin"  # both, in every operation
    response = case.call(headers={"Authorization": f"Token {world[persona]}"})
    case.validate_response(response, checks=CHECKS)


def test_the_fuzzer_covers_every_operation_of_the_schema():
    operations = {
        (method.upper(), path)
        for path, item in raw_schema()["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    fuzzed = {(result.ok().method.upper(), result.ok().path) for result in schema.get_all_operations()}
    assert operations == fuzzed and len(operations) >= 20, sorted(operations ^ fuzzed)
