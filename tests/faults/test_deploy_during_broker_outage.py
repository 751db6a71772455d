"""Issue 17 item 1 (follow-up): a deploy made while the broker is down is sent soon after the broker returns, by
the beat's next requeue run, not after DEPLOY_STUCK_QUEUED_SECONDS. The failed publish marks the revision; the
requeue sends marked rows at once and clears the mark. A Redis server of the test's own, stopped and started
again, and a real worker with the real beat."""

from __future__ import annotations

import pytest

from apps.accounts.models import AuditEvent
from apps.deployments.models import Revision
from tests.common.test_worker import _use_broker
from tests.deployments.test_end_to_end import _deploy, _finished
from tests.faults.embedded import redis_server
from tests.registries import free_port
from tests.workers import running_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_deploy_during_a_broker_outage_is_sent_at_the_next_requeue_after_the_broker_returns(
    lead_api, environments, registry, worker_env, teardown_local, tmp_path, settings
):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with redis_server(port, tmp_path):
        _use_broker(url)
    try:  # the broker is down from here on
        revision = _deploy(lead_api, "2", "during-outage")
        assert revision["status"] == "queued"
        assert Revision.objects.get(pk=revision["id"]).publish_failed_at is not None, "the failed publish is marked"

        log = tmp_path / "worker.log"
        # The age rule alone would wait an hour: only the mark can get the revision sent.
        env = {**worker_env, "DEPLOY_STUCK_QUEUED_SECONDS": "3600", "DEPLOY_REQUEUE_SECONDS": "2"}
        with (
            redis_server(port, tmp_path),
            running_worker(
                log, broker_url=url, env=env, args=("--beat", "--schedule", str(tmp_path / "beat-schedule"))
            ),
        ):
            wait_for(
                lambda: Revision.objects.filter(pk=revision["id"], attempts__gte=1).exists(),
                timeout=60,
                what="the requeue to send the revision once the broker is back",
                log=log,
            )
            done = _finished(lead_api, f"/api/v1/revisions/{revision['id']}/", log)
    finally:
        _use_broker(settings.CELERY_BROKER_URL)
    assert done["status"] == "live" and done["attempts"] == 1, done
    assert Revision.objects.get(pk=revision["id"]).publish_failed_at is None, "sent once, the mark is cleared"
    assert AuditEvent.objects.filter(action="deployment.deploy").count() == 1
    assert AuditEvent.objects.filter(action="deployment.live", target_id=revision["id"]).count() == 1
