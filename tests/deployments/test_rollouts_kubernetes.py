"""Progressive delivery on the ``kubernetes`` target: the deploy pipeline's traffic step through the real client over
HTTP to the API emulator (Gateway API HTTPRoutes admitted by the CRD schema, a played deployment controller), judged
on telemetry read from Azure Monitor over HTTPS (the local Log Analytics query endpoint, answering per revision).

The routes' weights are recorded as the cluster saw them at every change."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from apps.deployments import pipeline, services
from apps.deployments.choices import RevisionStatus, StepName
from apps.deployments.models import Deployment, Revision
from tests.emulators.k8s_controllers import DeploymentController, Stage
from tests.emulators.log_analytics import FakeCredential, LogAnalyticsEmulator, table

pytestmark = pytest.mark.django_db

IMAGE_V1 = "registry.example/models/credit-default:aaa111"
IMAGE_V2 = "registry.example/models/credit-default:bbb222"

GATEWAY = "gateway-system/public"
WINDOW_COLUMNS = [
    ("revision", "string"),
    ("requests", "long"),
    ("errors", "long"),
    ("shadow", "long"),
    ("percentile_latency_50", "real"),
    ("percentile_latency_99", "real"),
]
STEPS = [StepName.APPLY, StepName.ROLLOUT, StepName.SMOKE_TEST, StepName.TRAFFIC, StepName.LIVE]


@pytest.fixture
def workspace(settings, tmp_path) -> Iterator[LogAnalyticsEmulator]:
    emulator = LogAnalyticsEmulator(tmp_path).start()
    settings.TELEMETRY_SOURCE = "azure_monitor"
    settings.TELEMETRY_SOURCE_OPTIONS = {
        "azure_monitor": {
            "workspace_id": "ws",
            "endpoint": emulator.url,
            "credential": FakeCredential(),
            "connection_verify": emulator.ca,
        }
    }
    yield emulator
    emulator.stop()


def _windows(candidate_errors: int) -> tuple[int, dict, dict]:
    rows = [["r2", 100, candidate_errors, 0, 12.0, 40.0], ["r1", 400, 0, 0, 11.0, 35.0]]
    return 200, {"tables": [table(WINDOW_COLUMNS, rows)]}, {}


class RouteRecorder:
    """Every distinct state of the deployment's HTTPRoute backends, as the API server stored it."""

    def __init__(self, controller, namespace: str) -> None:
        self.controller, self.namespace = controller, namespace
        self.seen: list[list[tuple[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            route = self.controller.get("HTTPRoute", self.namespace, "credit-default")
            if route is None:
                continue
            backends = [(b["name"], b["weight"]) for b in route["spec"]["rules"][0]["backendRefs"]]
            if not self.seen or self.seen[-1] != backends:
                self.seen.append(backends)

    def __enter__(self) -> RouteRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.fixture
def canary_cluster(alice, settings, k8s_api, k8s_namespace, kube_deployment):
    """credit-default r1 (v1) live on an emulated cluster with Gateway API, and r2 (v2) asked for as a canary."""
    deployment, (r1,) = kube_deployment({"1": IMAGE_V1}, gateway=GATEWAY, poll_interval_seconds=0.05)
    settings.ROLLOUT_TICK_SECONDS = 0.05
    environment, config, model_dir = deployment.environment, r1.config, r1.model_dir
    controller = DeploymentController(k8s_api, k8s_namespace, lambda pod: [Stage(0.05)]).start()
    try:
        deployment.refresh_from_db()
        target = pipeline.target_for(deployment, config)
        spec = pipeline.serving_spec(r1)
        target.apply(spec, lambda line: None)
        assert target.wait_ready(spec, lambda line: None, timeout_seconds=30).ok
        strategy = services.rollout_strategy(
            environment,
            {"type": "canary", "steps": [20, 50], "step_seconds": 1, "min_requests": 50, "max_drift": None},
        )
        r2 = services._new_revision(
            deployment,
            steps=STEPS,
            model_version="2",
            image=IMAGE_V2,
            model_dir=model_dir,
            config=config,
            requested_by=alice,
            strategy=strategy.as_dict(),
        )
        yield deployment, r1, r2
    finally:
        controller.stop()


def _image(k8s_controller, namespace: str, name: str) -> str | None:
    deployment = k8s_controller.get("Deployment", namespace, name)
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"] if deployment else None


def test_a_good_canary_shifts_the_route_20_50_then_promotes_into_the_primary(
    canary_cluster, workspace, k8s_controller, k8s_namespace
):
    deployment, r1, r2 = canary_cluster
    workspace.default = _windows(candidate_errors=0)
    with RouteRecorder(k8s_controller, k8s_namespace) as routes:
        assert pipeline.revision_run(revision_id=r2.pk) == "live"
    r2.refresh_from_db()
    assert r2.status == RevisionStatus.LIVE and r2.canary_weight == 100, r2.error
    assert routes.seen == [
        [("credit-default", 80), ("credit-default-canary", 20)],
        [("credit-default", 50), ("credit-default-canary", 50)],
        [("credit-default", 100)],
    ]
    assert _image(k8s_controller, k8s_namespace, "credit-default") == IMAGE_V2, "promoted into the primary"
    assert _image(k8s_controller, k8s_namespace, "credit-default-canary") is None, "the canary objects are gone"
    assert k8s_controller.get("Service", k8s_namespace, "credit-default-canary") is None
    checks = list(r2.checks.filter(subject="r2", metric="error_rate").values_list("step", "verdict", "value"))
    assert checks == [(0, "pass", 0.0), (1, "pass", 0.0)]
    query = workspace.requests[0]["body"]["query"]
    assert '| where revision in ("r2", "r1")' in query
    assert Deployment.objects.get().live_revision == r2


def test_a_canary_failing_its_analysis_gives_the_route_back_to_the_primary(
    canary_cluster, workspace, k8s_controller, k8s_namespace
):
    deployment, r1, r2 = canary_cluster
    Revision.objects.filter(pk=r2.pk).update(strategy={**r2.strategy, "max_failed_checks": 0})
    workspace.default = _windows(candidate_errors=7)
    with RouteRecorder(k8s_controller, k8s_namespace) as routes:
        assert pipeline.revision_run(revision_id=r2.pk) == "failed at traffic"
    r2.refresh_from_db()
    assert r2.status == RevisionStatus.ROLLED_BACK
    assert "error rate 7.0% > 1.0% on r2 (7 of 100 requests)" in r2.error and "rolled back to r1" in r2.error
    assert routes.seen == [[("credit-default", 80), ("credit-default-canary", 20)], [("credit-default", 100)]]
    assert _image(k8s_controller, k8s_namespace, "credit-default") == IMAGE_V1, "the primary never changed"
    assert _image(k8s_controller, k8s_namespace, "credit-default-canary") is None
    assert Deployment.objects.get().live_revision == r1
