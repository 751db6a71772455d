"""Role x action x environment: every cell, through the API and through the pages.

A person holds a role either globally or only in ``dev`` (with a global viewer role). Each action is tried in
``dev`` (open) and ``production`` (gated). An allowed action goes past the permission check and stops at the
next rule (a version that does not exist, a rollout in progress), so the cell's answer says which side of the
check it landed on without starting real work.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts.choices import Role
from apps.accounts.models import User
from apps.accounts.services import api_token_create
from apps.deployments.choices import RevisionStatus
from apps.deployments.models import Deployment, Environment, EnvironmentGrant, Revision
from apps.deployments.services import environment_ensure
from apps.promotions.models import PromotionPolicy, PromotionRequest

ENVIRONMENTS = ["dev", "production"]
ROLES = [Role.VIEWER, Role.LEAD, Role.REVIEWER, Role.ADMIN]
SCOPES = ["global", "dev-only"]
# The role each action needs (admins hold every role).
NEEDS = {
    "deploy": Role.LEAD,
    "rollback": Role.LEAD,
    "delete": Role.LEAD,
    "request": Role.LEAD,
    "approve": Role.REVIEWER,
    "reject": Role.REVIEWER,
    "thresholds": Role.LEAD,
}
# What an allowed call answers: the next rule after the permission check, per environment.
API_ALLOWED = {
    ("deploy", "dev"): 404,  # version 999 does not exist
    ("deploy", "production"): 409,  # gated: promotion required
    ("rollback", "dev"): 409,  # r2 is already live
    ("rollback", "production"): 409,
    ("delete", "dev"): 409,  # a rollout (r3) is in progress
    ("delete", "production"): 409,
    ("request", "dev"): 400,  # not gated
    ("request", "production"): 404,  # version 999 does not exist
    ("approve", "dev"): 200,  # one of two approvals: recorded, still pending
    ("approve", "production"): 200,
    ("reject", "dev"): 200,
    ("reject", "production"): 200,
    ("thresholds", "dev"): 200,
    ("thresholds", "production"): 200,
}
MODEL = "credit-default"


@dataclass
class World:
    environments: dict[str, Environment]
    deployments: dict[str, Deployment]
    promotions: dict[str, PromotionRequest]


@pytest.fixture
def world(db) -> World:
    requester = User.objects.create(username="zed", role=Role.LEAD)
    environments, deployments, promotions = {}, {}, {}
    for order, name in enumerate(ENVIRONMENTS):
        env = environments[name] = environment_ensure(name=name, order=order, gated=name == "production")[0]
        PromotionPolicy.objects.create(environment=env, approvals_required=2)
        deployment = deployments[name] = Deployment.objects.create(
            environment=env, model_name=MODEL, name="credit-default", status="live"
        )
        for number, status in [(1, RevisionStatus.SUPERSEDED), (2, RevisionStatus.LIVE), (3, RevisionStatus.QUEUED)]:
            revision = Revision.objects.create(deployment=deployment, number=number, model_version="1", status=status)
            if status == RevisionStatus.LIVE:
                deployment.live_revision = revision
        deployment.save()
        promotions[name] = PromotionRequest.objects.create(
            model_name=MODEL, version="1", environment=env, justification="better", requested_by=requester
        )
    return World(environments, deployments, promotions)


def person(world: World, role: str, scope: str) -> User:
    user = User.objects.create(username="erin", role=role if scope == "global" else Role.VIEWER)
    if scope == "dev-only":
        EnvironmentGrant.objects.create(user=user, environment=world.environments["dev"], role=role)
    return user


def allowed(role: str, scope: str, action: str, env: str) -> bool:
    return role in (NEEDS[action], Role.ADMIN) and (scope == "global" or env == "dev")


CELLS = [
    pytest.param(role, scope, action, env, id=f"{role}-{scope}-{action}-{env}")
    for role, scope, action, env in itertools.product(ROLES, SCOPES, NEEDS, ENVIRONMENTS)
]


def call_api(client: APIClient, world: World, action: str, env: str):
    deployment, promotion = world.deployments[env], world.promotions[env]
    if action == "deploy":
        return client.post(
            "/api/v1/deployments/", {"model": MODEL, "version": "999", "environment": env}, format="json"
        )
    if action == "rollback":
        return client.post(f"/api/v1/deployments/{deployment.pk}/rollback/", {"revision": 2}, format="json")
    if action == "delete":
        return client.delete(f"/api/v1/deployments/{deployment.pk}/")
    if action == "request":
        body = {"model": MODEL, "version": "999", "environment": env, "justification": "why not"}
        return client.post("/api/v1/promotions/", body, format="json")
    if action in ("approve", "reject"):
        return client.post(f"/api/v1/promotions/{promotion.pk}/{action}/", {"comment": "ok"}, format="json")
    if action == "thresholds":
        body = {"psi_warn": 0.2, "psi_alert": 0.3}
        return client.put(f"/api/v1/deployments/{deployment.pk}/monitoring/thresholds/", body, format="json")
    raise AssertionError(action)


@pytest.mark.parametrize(("role", "scope", "action", "env"), CELLS)
def test_api_cell(world, request, role, scope, action, env):
    if action in ("deploy", "request"):
        request.getfixturevalue("registry")  # they look the version up
    user = person(world, role, scope)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, name='matrix').key}")
    response = call_api(client, world, action, env)
    expected = API_ALLOWED[(action, env)] if allowed(role, scope, action, env) else 403
    assert response.status_code == expected, response.content
    if expected == 403:
        assert "erin" in response.json()["detail"]


def post_page(client, world: World, action: str, env: str):
    deployment, promotion = world.deployments[env], world.promotions[env]
    if action == "deploy":
        data = {"model": MODEL, "version": "999", "environment": env}
        return client.post(reverse("deployments:deployment_create"), data)
    if action == "rollback":
        return client.post(reverse("deployments:deployment_rollback", args=[deployment.pk]), {"revision": 2})
    if action == "delete":
        return client.post(reverse("deployments:deployment_delete", args=[deployment.pk]))
    if action == "request":
        data = {"model": MODEL, "version": "999", "environment": env, "justification": "why not"}
        return client.post(reverse("promotions:promotion_create"), data)
    if action in ("approve", "reject"):
        return client.post(reverse(f"promotions:promotion_{action}", args=[promotion.pk]), {"comment": "ok"})
    if action == "thresholds":
        url = reverse("monitoring:drift_thresholds_set", args=[deployment.pk])
        return client.post(url, {"psi_warn": 0.2, "psi_alert": 0.3})
    raise AssertionError(action)


@pytest.mark.parametrize(("role", "scope", "action", "env"), CELLS)
def test_page_cell(world, request, client, role, scope, action, env):
    if action in ("deploy", "request"):
        request.getfixturevalue("registry")
    client.force_login(person(world, role, scope))
    response = post_page(client, world, action, env)
    assert response.status_code == 302
    refused = [m for m in get_messages(response.wsgi_request) if "status-403" in m.extra_tags]
    if allowed(role, scope, action, env):
        assert not refused, [str(m) for m in refused]
    else:
        assert len(refused) == 1 and "erin" in str(refused[0])


@pytest.mark.parametrize("role", ROLES)
def test_page_buttons_follow_the_environment(world, registry, client, role):
    """Where someone may not act, the page does not offer the button (the service refuses it anyway)."""
    client.force_login(person(world, role, "dev-only"))
    for env in ENVIRONMENTS:
        page = client.get(reverse("deployments:deployment_detail", args=[world.deployments[env].pk])).content
        assert (b'id="delete"' in page) == allowed(role, "dev-only", "delete", env)
        page = client.get(reverse("promotions:promotion_detail", args=[world.promotions[env].pk])).content
        assert (b'id="approve"' in page) == allowed(role, "dev-only", "approve", env)
