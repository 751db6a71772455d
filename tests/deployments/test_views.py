from __future__ import annotations

import pytest
from django.urls import reverse

from apps.deployments.models import Deployment, Revision
from apps.deployments.services import deployment_create

pytestmark = pytest.mark.django_db


class DeployFromTheVersionPageTests:
    def test_a_lead_sees_the_deploy_form_and_a_viewer_does_not(self, client, alice, carol, environments, registry):
        url = reverse("registry:version_detail", kwargs={"name": "credit-default", "version": "2"})
        client.force_login(alice)
        page = client.get(url).content.decode()
        assert 'id="deploy-form"' in page and '<option value="dev">dev</option>' in page
        assert '<input type="hidden" name="model" value="credit-default"' in page
        client.force_login(carol)
        page = client.get(url).content
        assert b'id="deploy-form"' not in page and b"ML leads and admins of an ungated environment can deploy" in page

    def test_deploying_redirects_to_the_revision_page(self, client, alice, environments, registry):
        client.force_login(alice)
        response = client.post(
            reverse("deployments:deployment_create"), {"model": "credit-default", "version": "2", "environment": "dev"}
        )
        revision = Revision.objects.get()
        assert response.status_code == 302 and response["Location"] == reverse(
            "deployments:revision_detail", kwargs={"pk": revision.pk}
        )
        page = client.get(response["Location"])
        assert b"Resolve model" in page.content and b"deployments/revision" in page.content

    def test_a_refused_deploy_shows_why_on_the_version_page(self, client, alice, environments, registry):
        client.force_login(alice)
        response = client.post(
            reverse("deployments:deployment_create"),
            {"model": "credit-default", "version": "2", "environment": "production"},
            follow=True,
        )
        assert b"production is gated" in response.content and not Revision.objects.exists()

    def test_a_viewer_posting_the_form_is_refused(self, client, carol, environments, registry):
        client.force_login(carol)
        response = client.post(
            reverse("deployments:deployment_create"),
            {"model": "credit-default", "version": "2", "environment": "dev"},
            follow=True,
        )
        assert (
            b"Only ML leads and admins of dev may deploy; carol is viewer there." in response.content
            and not Revision.objects.exists()
        )


class DeploymentPagesTests:
    def test_the_list_shows_what_runs_where(self, client, alice, environments, registry):
        deployment_create(actor=alice, model_name="customer-churn", model_version="1", environment="staging")
        client.force_login(alice)
        page = client.get(reverse("deployments:deployment_list"))
        assert b"customer-churn" in page.content and b"staging" in page.content
        filtered = client.get(reverse("deployments:deployment_list"), {"environment": "dev"})
        assert b"customer-churn" not in filtered.content

    def test_the_list_costs_a_fixed_number_of_queries(
        self, client, alice, environments, registry, django_assert_max_num_queries
    ):
        for model, version in [("customer-churn", "1"), ("credit-default", "2"), ("house-prices", "1")]:
            deployment_create(actor=alice, model_name=model, model_version=version, environment="dev")
        client.force_login(alice)
        with django_assert_max_num_queries(6):
            client.get(reverse("deployments:deployment_list"))

    def test_delete_from_the_page(self, client, alice, environments, registry):
        revision = deployment_create(actor=alice, model_name="customer-churn", model_version="1", environment="dev")
        Revision.objects.filter(pk=revision.pk).update(status="live")
        client.force_login(alice)
        response = client.post(
            reverse("deployments:deployment_delete", kwargs={"pk": revision.deployment_id}), follow=True
        )
        assert b"being torn down" in response.content
        assert Deployment.objects.get().status == "deleting"

    def test_rollback_to_an_unknown_revision_says_so(self, client, alice, environments, registry):
        revision = deployment_create(actor=alice, model_name="customer-churn", model_version="1", environment="dev")
        client.force_login(alice)
        url = reverse("deployments:deployment_rollback", kwargs={"pk": revision.deployment_id})
        assert b"has no revision r9" in client.post(url, {"revision": "9"}, follow=True).content
