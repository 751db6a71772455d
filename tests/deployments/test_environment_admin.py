"""The environment admin: the rollout default and the Gateway API gateway, editable with help, the default checked
as a deploy would check it."""

from __future__ import annotations

import pytest

from apps.deployments.models import Environment

pytestmark = pytest.mark.django_db

FIELDS = {
    "name": "dev",
    "order": 0,
    "target": "local",
    "image_builder": "none",
    "replicas": 1,
    "min_replicas": 1,
    "max_replicas": 3,
    "cpu_request": "250m",
    "cpu_limit": "1",
    "memory_request": "512Mi",
    "memory_limit": "1Gi",
}
KUBERNETES = {"target": "kubernetes", "namespace": "models", "image_builder": "acr", "image_registry": "r.example/m"}
ADD = "/admin/deployments/environment/add/"


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw-for-tests-only"))
    return client


def _errors(response) -> str:
    return response.content.decode().split('class="errorlist', 1)[-1][:600] if response.status_code == 200 else ""


def test_the_form_shows_both_fields_with_their_help(admin_client):
    html = admin_client.get(ADD).content.decode()
    assert 'name="rollout_strategy"' in html and 'name="gateway"' in html
    assert "{} means all at once" in html and "namespace/name of the Gateway API Gateway" in html


def test_a_default_strategy_that_does_not_parse_is_refused_at_its_field(admin_client):
    response = admin_client.post(ADD, {**FIELDS, "rollout_strategy": '{"type": "canary", "steps": [50, 20]}'})
    assert response.status_code == 200 and not Environment.objects.exists()
    assert "strategy.steps must rise strictly, each below 100, not [50, 20]." in _errors(response)


def test_a_default_the_target_cannot_run_is_refused(admin_client):
    data = {**FIELDS, **KUBERNETES, "rollout_strategy": '{"type": "shadow"}'}
    response = admin_client.post(ADD, data)
    assert response.status_code == 200 and not Environment.objects.exists()
    assert "rollout_strategy" in response.context["adminform"].form.errors


def test_an_emptied_default_is_all_at_once_and_a_gateway_is_kept(admin_client):
    data = {**FIELDS, **KUBERNETES, "rollout_strategy": "", "gateway": "gateway-system/models"}
    assert admin_client.post(ADD, data).status_code == 302
    environment = Environment.objects.get()
    assert (environment.rollout_strategy, environment.gateway) == ({}, "gateway-system/models")
    listing = admin_client.get("/admin/deployments/environment/").content.decode()
    assert "all_at_once" in listing and "gateway-system/models" in listing
