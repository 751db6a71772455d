"""Edits of existing state record what changed, before and after, through the services that make them."""

from __future__ import annotations

import pytest

from apps.accounts.models import AuditEvent
from apps.deployments.services import deployment_delete
from apps.monitoring.services import drift_thresholds_set
from apps.promotions.models import PromotionRequest
from apps.promotions.services import promotion_cancel

pytestmark = pytest.mark.django_db


def test_changing_drift_thresholds_records_before_and_after(alice, deployment):
    drift_thresholds_set(actor=alice, deployment=deployment, psi_warn=0.2, psi_alert=0.5)
    drift_thresholds_set(actor=alice, deployment=deployment, psi_warn=0.2, psi_alert=0.7)
    first, second = AuditEvent.objects.filter(action="monitoring.thresholds_set").order_by("id")
    assert first.data["before"] == {"psi_warn": None, "psi_alert": None}
    assert second.data["before"] == {"psi_alert": 0.5} and second.data["after"] == {"psi_alert": 0.7}
    assert (second.data["psi_warn"], second.data["psi_alert"]) == (0.2, 0.7)


def test_deleting_a_deployment_records_the_status_it_left(alice, deployment, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        deployment_delete(actor=alice, deployment=deployment)
    event = AuditEvent.objects.get(action="deployment.delete")
    assert event.data["before"] == {"status": "live"} and event.data["after"] == {"status": "deleting"}
    assert event.data["model"] == "credit-default"


def test_cancelling_a_promotion_records_the_status_change(alice, deployment):
    promotion = PromotionRequest.objects.create(
        model_name="credit-default", version="2", environment=deployment.environment, justification="x",
        requested_by=alice,
    )  # fmt: skip
    promotion_cancel(actor=alice, promotion=promotion.pk)
    event = AuditEvent.objects.get(action="promotion.cancel")
    assert event.data["before"] == {"status": "pending"} and event.data["after"] == {"status": "cancelled"}
    assert event.data["version"] == "2" and event.source == "system", "a service called outside any request"
