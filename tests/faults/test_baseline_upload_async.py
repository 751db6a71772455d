"""Issue 17 item 3 (off the request thread): a baseline file larger than MONITORING_BASELINE_INLINE_BYTES passes
the cheap checks in the request (type, size), is stored and answered 202 with a status URL, and a real Celery
worker parses, checks and profiles it: the status says done (the baseline replaced) or failed with the same
refusal an inline upload gives (the previous baseline kept). The page says so and lists the uploads."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts.models import AuditEvent
from apps.accounts.services import api_token_create
from apps.monitoring.models import Baseline, BaselineUpload
from tests.faults.test_baseline_limits import _post
from tests.monitoring.frames import credit_inputs
from tests.workers import running_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _status(alice, url: str) -> dict:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=alice, name='poll').key}")
    return client.get(url).json()


def _finished(alice, url: str, log: Path) -> dict:
    return wait_for(
        lambda: (body := _status(alice, url))["status"] in ("done", "failed") and body,
        timeout=90,
        what=f"{url} to finish",
        log=log,
    )


def test_a_large_upload_is_parsed_by_a_worker_and_its_status_says_how_it_ended(
    alice, client, deployment, registry, settings, tmp_path
):
    settings.MONITORING_BASELINE_INLINE_BYTES = 2000
    good = credit_inputs(80).to_csv(index=False).encode()
    wrong = credit_inputs(80).drop(columns=["age"]).assign(shoe_size=42).to_csv(index=False).encode()
    assert len(good) > 2000 and len(wrong) > 2000

    refused_now = _post(alice, deployment, b"\x00\x01binary" * 400, "ref.csv")
    assert refused_now.status_code == 415, "the file type is checked in the request"

    queued = _post(alice, deployment, good, "big.csv")
    assert queued.status_code == 202, queued.content
    body = queued.json()
    assert body["status"] == "queued" and queued["Location"] == body["url"]
    assert not Baseline.objects.filter(source="upload").exists(), "nothing replaced before it is parsed"

    log = tmp_path / "worker.log"
    with running_worker(log):
        done = _finished(alice, body["url"], log)
        assert (done["status"], done["rows"], done["error"]) == ("done", 80, ""), done
        baseline = Baseline.objects.get(model_name="credit-default", model_version="1")
        assert (baseline.source, baseline.rows) == ("upload", 80)

        failed_call = _post(alice, deployment, wrong, "wrong.csv")
        assert failed_call.status_code == 202
        failed = _finished(alice, failed_call.json()["url"], log)
    assert failed["status"] == "failed" and failed["code"] == "columns_mismatch", failed
    assert "'shoe_size'" in failed["error"] and "'age'" in failed["error"]
    after = Baseline.objects.get(model_name="credit-default", model_version="1")
    assert (after.rows, after.profile) == (baseline.rows, baseline.profile), "the previous baseline is kept"
    assert not any(Path(u.path).exists() for u in BaselineUpload.objects.all()), "stored files are removed"
    assert AuditEvent.objects.filter(action="monitoring.baseline_upload_queued").count() == 2
    replaced = AuditEvent.objects.get(action="monitoring.baseline_upload")
    assert replaced.actor == alice and replaced.source == "system" and replaced.data["rows"] == 80

    client.force_login(alice)
    page = reverse("monitoring:deployment_monitoring", kwargs={"pk": deployment.pk})
    text = client.get(page).content.decode()
    assert 'id="baseline-uploads"' in text and "Baseline replaced" in text and "Refused" in text
    upload = {"file": SimpleUploadedFile("page.csv", good, content_type="text/csv"), "version": "1", "window": "24h"}
    answer = client.post(reverse("monitoring:baseline_upload", kwargs={"pk": deployment.pk}), upload, follow=True)
    assert "is being checked and profiled by a worker" in answer.content.decode()
    assert BaselineUpload.objects.filter(filename="page.csv", status="queued").exists()
