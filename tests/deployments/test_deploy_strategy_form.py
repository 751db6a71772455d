"""The deploy form's rollout choice: the strategy it builds is the API's ``strategy`` object, it reaches
``deployment_create``, and what the service refuses shows at the form's fields on the version page."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.deployments.forms import DeployForm
from apps.deployments.models import Environment, Revision

pytestmark = pytest.mark.django_db

VERSION_PAGE = ("registry:version_detail", {"name": "credit-default", "version": "2"})


def _deploy(client, **fields):
    data = {"model": "credit-default", "version": "2", "environment": "dev", **fields}
    return client.post(reverse("deployments:deployment_create"), data, follow=True)


def _field(html: str, name: str) -> str:
    """The HTML of one rollout option on the version page (label, input, errors)."""
    match = re.search(
        rf'<div class="strategy-field[^"]*"><label for="id_{name}">.*?</div>\s*(?=<div class="strategy|</div>)',
        html,
        re.S,
    )
    assert match, f"no {name} field"
    return match.group(0)


class DeployFormStrategyTests:
    def test_it_builds_the_strategy_object_the_api_takes(self, environments):
        data = {"model": "m", "version": "2", "environment": "dev", "strategy": "canary", "steps": "20, 50"}
        data |= {"step_seconds": "30", "max_error_rate": "1.5", "max_p99_ms": "400", "min_requests": "20"}
        form = DeployForm(data)
        assert form.is_valid(), form.errors
        assert form.strategy_request() == {
            "type": "canary",
            "steps": [20, 50],
            "step_seconds": 30,
            "max_error_rate": 0.015,
            "max_p99_ms": 400.0,
            "min_requests": 20,
        }

    def test_nothing_chosen_means_the_environment_default_and_keys_alone_go_on_top_of_it(self, environments):
        base = {"model": "m", "version": "2", "environment": "dev"}
        form = DeployForm(base)
        assert form.is_valid() and form.strategy_request() is None
        form = DeployForm({**base, "step_seconds": "120"})
        assert form.is_valid() and form.strategy_request() == {"step_seconds": 120}

    def test_steps_that_are_not_percents_are_a_form_error(self, environments):
        form = DeployForm({"model": "m", "version": "2", "environment": "dev", "steps": "20%, half"})
        assert not form.is_valid()
        assert form.errors["steps"] == ["Write whole percents separated by commas, e.g. 20, 50."]


class DeployFromTheVersionPageWithAStrategyTests:
    def test_the_version_page_offers_the_rollout_choice_and_options(self, client, alice, environments, registry):
        client.force_login(alice)
        html = client.get(reverse(VERSION_PAGE[0], kwargs=VERSION_PAGE[1])).content.decode()
        options = re.findall(r'<option value="(\w*)"', html.split('name="strategy"')[1].split("</select>")[0])
        assert options == ["", "all_at_once", "canary", "blue_green", "shadow"]
        for name in ("steps", "step_seconds", "max_error_rate", "max_p99_ms", "min_requests"):
            assert f'name="{name}"' in _field(html, name)
        assert 'id="strategy-options" open' not in html  # folded until there is something to show

    def test_a_canary_from_the_form_is_the_revision_s_strategy(self, client, alice, environments, registry):
        """Needs a target that splits traffic: the local target does with its router (wip/router)."""
        client.force_login(alice)
        response = _deploy(client, strategy="canary", steps="20, 50", step_seconds="30", max_error_rate="2")
        revision = Revision.objects.get()
        assert response.redirect_chain[-1][0] == reverse("deployments:revision_detail", kwargs={"pk": revision.pk})
        strategy = revision.strategy
        assert (strategy["type"], strategy["steps"], strategy["step_seconds"]) == ("canary", [20, 50], 30)
        assert strategy["max_error_rate"] == 0.02 and strategy["max_p99_ms"] == 500.0  # the rest: defaults
        html = response.content.decode()
        assert 'id="rollout"' in html and "20% → 50% → 100% of traffic, each step held 30 s" in html

    def test_the_chosen_strategy_reaches_the_service_over_the_environment_default(
        self, client, alice, environments, registry
    ):
        Environment.objects.filter(name="dev").update(rollout_strategy={"type": "canary", "steps": [20, 50]})
        client.force_login(alice)
        response = _deploy(client, strategy="all_at_once")
        revision = Revision.objects.get()
        assert response.redirect_chain[-1][0] == reverse("deployments:revision_detail", kwargs={"pk": revision.pk})
        assert revision.strategy == {}  # all at once, as chosen, not the environment's canary
        assert 'id="rollout"' not in response.content.decode()

    def test_a_strategy_the_service_refuses_shows_at_its_field_with_the_input_kept(
        self, client, alice, environments, registry
    ):
        client.force_login(alice)
        response = _deploy(client, strategy="canary", steps="50, 20", step_seconds="45", name="credit-trial")
        html = response.content.decode()
        assert response.redirect_chain[-1][0] == reverse(VERSION_PAGE[0], kwargs=VERSION_PAGE[1])
        steps = _field(html, "steps")
        assert 'class="strategy-field has-error"' in steps and 'value="50, 20"' in steps
        assert "strategy.steps must rise strictly, each below 100, not [50, 20]." in steps
        assert 'value="45"' in _field(html, "step_seconds") and 'value="credit-trial"' in html
        assert re.search(r'<option value="canary" selected>', html) and 'id="strategy-options" open' in html
        assert "code-invalid_strategy" in html and not Revision.objects.exists()
        # shown once: the next visit is a blank form
        html = client.get(reverse(VERSION_PAGE[0], kwargs=VERSION_PAGE[1])).content.decode()
        assert "has-error" not in html and 'value="50, 20"' not in html

    def test_a_strategy_the_target_cannot_run_shows_on_the_form(self, client, alice, environments, registry):
        Environment.objects.create(
            name="aks",
            order=4,
            target="kubernetes",
            namespace="models",
            image_builder="acr",
            image_registry="example.azurecr.io/models",
        )
        client.force_login(alice)
        response = _deploy(client, environment="aks", strategy="shadow")
        html = response.content.decode()
        flashed = re.search(r'<li class="msg-error status-400 code-strategy_unsupported">(.*?)</li>', html, re.S)
        shown = re.search(r'<div class="error-message strategy-error" id="strategy-error">(.*?)</div>', html, re.S)
        assert flashed and shown and flashed.group(1).strip() == shown.group(1).strip()
        assert '<option value="aks" selected>' in html and not Revision.objects.exists()

    def test_a_malformed_option_comes_back_to_the_version_page(self, client, alice, environments, registry):
        client.force_login(alice)
        response = _deploy(client, strategy="canary", steps="twenty")
        html = response.content.decode()
        assert response.redirect_chain[-1][0] == reverse(VERSION_PAGE[0], kwargs=VERSION_PAGE[1])
        assert "Write whole percents separated by commas" in _field(html, "steps")
        assert "Cannot deploy: steps:" in html and not Revision.objects.exists()
