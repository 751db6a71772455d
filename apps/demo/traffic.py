"""The demo traffic of `make run`: a live dev deployment of the demo credit model, then bounded and labelled
requests with one drift episode, so the monitoring page shows latency, throughput, errors and drift within
minutes. Only when ``settings.DEMO_TRAFFIC`` (which a deployed control plane never has)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings

from apps.accounts.models import User
from apps.common.errors import ApplicationError
from apps.deployments.models import Deployment, Revision

__all__ = ["DEMO_MODEL", "DEMO_ENVIRONMENT", "PHASES", "Phase", "demo_deployment_ensure", "demo_enabled_or_refuse"]

DEMO_MODEL = "credit-default"
DEMO_VERSION = "1"
DEMO_ENVIRONMENT = "dev"
DEMO_REQUESTER = "lead"
IDEMPOTENCY_KEY = "demo-traffic-deployment"


@dataclass(frozen=True)
class Phase:
    label: str
    seconds: float
    drift: tuple[str, ...] = ()


# About 20 minutes in all, then it stops: normal traffic, a drift episode on two features, normal again. The
# episode starts early so that drift shows within about five minutes of `make run`.
PHASES = [
    Phase("normal", 2 * 60),
    Phase("drift episode: age and credit_limit shifted", 6 * 60, ("age", "credit_limit")),
    Phase("normal again", 12 * 60),
]
RATE = 2.0  # requests per second
ROWS_PER_REQUEST = 3
BAD_SHARE = 0.02  # requests missing a column: the scoring server refuses them, so the errors chart has data


def demo_enabled_or_refuse() -> None:
    if not settings.DEMO_TRAFFIC:
        raise ApplicationError(
            "Demo traffic is off: it runs only in the embedded default with DEMO_TRAFFIC=true (make run sets it; "
            "a control plane given DJANGO_SECRET_KEY never runs it)."
        )


def demo_deployment_ensure() -> Revision | None:
    """Ask, as the demo's ML lead, for the demo credit model in dev, once: None when a deployment of it exists
    already (live, pending or failed: the demo does not redeploy what a person changed). Audited like any deploy."""
    from apps.deployments.services import deployment_create

    demo_enabled_or_refuse()
    exists = Deployment.objects.filter(model_name=DEMO_MODEL, environment__name=DEMO_ENVIRONMENT).exclude(
        status="deleted"
    )
    if exists.exists():
        return None
    lead = User.objects.get(username=DEMO_REQUESTER)
    return deployment_create(
        actor=lead,
        model_name=DEMO_MODEL,
        model_version=DEMO_VERSION,
        environment=DEMO_ENVIRONMENT,
        idempotency_key=IDEMPOTENCY_KEY,
    )


def live_demo_deployment(*, wait_seconds: float, poll: float = 2.0) -> Deployment:
    """The demo deployment once it is live with an endpoint, waiting up to ``wait_seconds`` for the worker."""
    deadline = time.monotonic() + wait_seconds
    while True:
        deployment = (
            Deployment.objects.filter(model_name=DEMO_MODEL, environment__name=DEMO_ENVIRONMENT)
            .exclude(status="deleted")
            .first()
        )
        if deployment is not None and deployment.status == "live" and deployment.endpoint_url:
            return deployment
        if deployment is not None and deployment.status == "failed":
            raise ApplicationError(f"{deployment} failed to deploy; see its page. No demo traffic is sent.")
        if time.monotonic() > deadline:
            raise ApplicationError(f"{DEMO_MODEL} in {DEMO_ENVIRONMENT} is not live after {wait_seconds:g} s.")
        time.sleep(poll)
