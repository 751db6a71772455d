"""The demo of `make run` comes with data: demo_setup asks for a dev deployment of the demo credit model and
demo_traffic sends bounded, labelled requests with a drift episode; both only with DEMO_TRAFFIC, which is off
unless the embedded default turns it on, and never on in a deployed control plane."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.accounts.models import AuditEvent
from apps.deployments.models import Deployment
from tests.monitoring.test_simulate_traffic import endpoint  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def test_demo_setup_requests_the_demo_deployment_once(registry, settings):
    settings.DEMO_TRAFFIC = True
    out = io.StringIO()
    call_command("demo_setup", "--rows", "400", stdout=out)
    call_command("demo_setup", "--rows", "400", stdout=out)
    deployment = Deployment.objects.get(model_name="credit-default", environment__name="dev")
    revision = deployment.revisions.get()
    assert revision.model_version == "1" and deployment.created_by.username == "lead"
    assert AuditEvent.objects.filter(action="deployment.deploy", actor__username="lead").count() == 1
    assert "requested as credit-default r1" in out.getvalue() and "exists already" in out.getvalue()


def test_off_by_default_nothing_is_deployed_or_sent(registry, settings):
    assert settings.DEMO_TRAFFIC is False
    call_command("demo_setup", "--rows", "400", stdout=io.StringIO())
    assert not Deployment.objects.exists()
    with pytest.raises(CommandError, match="Demo traffic is off"):
        call_command("demo_traffic", stdout=io.StringIO())


def test_demo_traffic_sends_labelled_phases_with_a_drift_episode(deployment, registry, settings, endpoint):  # noqa: F811
    url, received = endpoint
    deployment.endpoint_url = url
    deployment.save()
    settings.DEMO_TRAFFIC = True
    out = io.StringIO()
    call_command("demo_traffic", "--scale", "0.003", "--wait", "5", stdout=out)  # phases of 0.36, 1.08, 2.16 s
    assert len(received) == 1 + 2 + 4  # 2 requests per second, at least one per phase
    assert all(r["id"].startswith("demo-traffic-") for r in received)
    ages = [[row.get("age") for row in r["body"]["dataframe_records"]] for r in received]
    assert all(len(rows) == 3 for rows in ages)
    drifted, normal = ages[1:3], ages[:1] + ages[3:]
    mean = lambda groups: sum(a for rows in groups for a in rows) / sum(len(rows) for rows in groups)  # noqa: E731
    assert mean(drifted) > mean(normal) + 5  # the middle phase shifts age up by 1.5 standard deviations
    assert "drift episode" in out.getvalue() and "demo traffic done" in out.getvalue()


@pytest.mark.parametrize(
    ("secret_key", "expected"),
    [("", "True"), ("a-deployed-control-plane-key", "False")],
)
def test_a_deployed_control_plane_never_runs_demo_traffic(tmp_path, secret_key, expected):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
        "DEMO_TRAFFIC": "true",
        "DJANGO_SECRET_KEY": secret_key,
        "DJANGO_DEBUG": "false",
        "MODELPLANE_VAR_DIR": str(tmp_path),
    }
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEMO_TRAFFIC)"
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
