"""Issue 17 item 3 (restorable): a replaced baseline is kept as an earlier one; an ML lead lists and restores it
through the API and the monitoring page (the same service), audited; the restored-over baseline becomes an earlier
one in turn; a viewer may list but not restore; only the newest BASELINES_KEPT are kept."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.accounts.models import AuditEvent
from apps.monitoring import services
from apps.monitoring.models import Baseline, EarlierBaseline
from tests.faults.test_baseline_limits import _post
from tests.monitoring.frames import credit_inputs

pytestmark = pytest.mark.django_db


def _upload(alice, deployment, rows: int) -> None:
    response = _post(alice, deployment, credit_inputs(rows).to_csv(index=False).encode(), f"ref-{rows}.csv")
    assert response.status_code == 201, response.content


def _current() -> Baseline:
    return Baseline.objects.get(model_name="credit-default", model_version="1")


def _earlier_url(deployment) -> str:
    return f"/api/v1/deployments/{deployment.pk}/monitoring/baselines/earlier/"


def test_a_replaced_baseline_is_listed_and_restored_through_the_api(alice, lead_api, api_client, deployment, registry):
    _upload(alice, deployment, 50)
    first = _current().profile
    _upload(alice, deployment, 60)
    listed = lead_api.get(_earlier_url(deployment))
    assert listed.status_code == 200
    assert [(b["source"], b["rows"]) for b in listed.json()] == [("upload", 50)]
    assert api_client.get(_earlier_url(deployment)).status_code == 200, "a viewer may look"

    earlier_id = listed.json()[0]["id"]
    url = f"{_earlier_url(deployment)}{earlier_id}/restore/"
    assert api_client.post(url, {}, format="json").status_code == 403, "a viewer may not restore"
    restored = lead_api.post(url, {}, format="json")
    assert restored.status_code == 200, restored.content
    assert restored.json()["rows"] == 50 and _current().profile == first
    assert [(b["source"], b["rows"]) for b in lead_api.get(_earlier_url(deployment)).json()] == [("upload", 60)]
    audit = AuditEvent.objects.get(action="monitoring.baseline_restore")
    assert audit.target_id == "credit-default/1" and audit.data["rows"] == 50 and audit.source == "api"
    assert lead_api.post(url, {}, format="json").status_code == 404, "restored once; it is the baseline now"


def test_the_monitoring_page_lists_earlier_baselines_and_restores_one(
    alice, carol, client, deployment, registry, traffic
):
    _upload(alice, deployment, 50)
    _upload(alice, deployment, 60)
    page = reverse("monitoring:deployment_monitoring", kwargs={"pk": deployment.pk})
    client.force_login(carol)
    text = client.get(page).content.decode()
    assert 'id="earlier-baselines"' in text and "restore-baseline" not in text, "a viewer sees no Restore"
    client.force_login(alice)
    text = client.get(page).content.decode()
    assert "restore-baseline" in text
    earlier = EarlierBaseline.objects.get()
    action = reverse("monitoring:baseline_restore", kwargs={"pk": deployment.pk, "earlier": earlier.pk})
    assert action in text
    response = client.post(action, {"window": "24h"}, follow=True)
    assert "Earlier baseline of v1 restored (50 rows)." in response.content.decode()
    assert _current().rows == 50
    assert AuditEvent.objects.get(action="monitoring.baseline_restore").source == "ui"


def test_only_the_newest_earlier_baselines_are_kept(alice, deployment, registry):
    for rows in range(50, 50 + services.BASELINES_KEPT + 2):
        _upload(alice, deployment, rows)
    kept = list(EarlierBaseline.objects.values_list("rows", flat=True))
    assert len(kept) == services.BASELINES_KEPT and kept[0] == 50 + services.BASELINES_KEPT
