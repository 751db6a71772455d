"""The deploy pipeline on the ``kubernetes`` target: real client over HTTP to the API emulator, the test
thread playing the cluster's controllers, and the smoke test scoring a real scoring server that stands in
for the Service (the target's ``endpoint_url_template`` points at it)."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from apps.deployments import pipeline, services
from apps.deployments.choices import RevisionStatus
from apps.deployments.models import Deployment
from tests.workers import wait_for

pytestmark = pytest.mark.django_db

IMAGE_V1 = "registry.example/models/credit-default:aaa111"
IMAGE_V2 = "registry.example/models/credit-default:bbb222"


class PlayedController:
    """Answers every new Deployment generation the way ``behaviour`` says: "ok" completes the rollout,
    "pull" makes a pod that cannot pull its image."""

    def __init__(self, controller, namespace: str) -> None:
        self.controller, self.namespace = controller, namespace
        self.behaviour = "ok"
        self.seen: set[tuple[str, int]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            for deployment in self.controller.list("Deployment", self.namespace):
                name, generation = deployment["metadata"]["name"], deployment["metadata"]["generation"]
                if (name, generation) in self.seen:
                    continue
                self.seen.add((name, generation))
                image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
                if self.behaviour == "pull" and image == IMAGE_V1:
                    message = f'failed to pull image "{image}": 401 Unauthorized'
                    state = {"waiting": {"reason": "ErrImagePull", "message": message}}
                    self.controller.create_pod(self.namespace, name, f"g{generation}", container_state=state)
                else:
                    self.controller.complete_rollout(self.namespace, name)


@pytest.fixture
def cluster_history(kube_deployment):
    """credit-default in a Kubernetes environment whose r1 (v1) and r2 (v2) went live earlier."""
    # A pull that keeps failing for half a second is persistent here (180 s by default).
    deployment, (r1, r2) = kube_deployment(
        {"1": IMAGE_V1, "2": IMAGE_V2}, ready_timeout=20, image_pull_grace_seconds=0.5
    )
    return deployment, r1, r2


def _image_in_cluster(controller, namespace: str) -> str:
    deployment = controller.get("Deployment", namespace, "credit-default")
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def test_a_rollback_rolls_out_to_the_cluster_and_smoke_tests(cluster_history, alice, k8s_controller, k8s_namespace):
    deployment, r1, r2 = cluster_history
    revision = services.deployment_rollback(actor=alice, deployment=deployment, to_revision=r1)
    with PlayedController(k8s_controller, k8s_namespace):
        assert pipeline.revision_run(revision_id=revision.pk) == "live"
    revision.refresh_from_db()
    assert revision.status == RevisionStatus.LIVE, revision.error
    assert _image_in_cluster(k8s_controller, k8s_namespace) == IMAGE_V1
    assert {
        o["kind"]
        for kind in ("Service", "HorizontalPodAutoscaler", "PodDisruptionBudget")
        for o in k8s_controller.list(kind, k8s_namespace)
    } == {"Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    steps = {s.name: s for s in revision.steps.all()}
    assert steps["rollout"].message == "1/1 replicas available"
    assert "scored the input example" in steps["smoke_test"].message
    assert Deployment.objects.get().live_revision == revision


def test_an_image_pull_failure_rolls_back_to_the_live_revision(cluster_history, alice, k8s_controller, k8s_namespace):
    deployment, r1, r2 = cluster_history
    with PlayedController(k8s_controller, k8s_namespace) as played:
        # The cluster runs r2, as its history says.
        target = pipeline.target_for(deployment, r2.config)
        target.apply(pipeline.serving_spec(r2), lambda line: None)
        wait_for(lambda: ("credit-default", 1) in played.seen, timeout=10, what="r2 to be rolled out")
        played.behaviour = "pull"
        revision = services.deployment_rollback(actor=alice, deployment=deployment, to_revision=r1)
        assert pipeline.revision_run(revision_id=revision.pk) == "failed at rollout"
    revision.refresh_from_db()
    assert revision.status == RevisionStatus.ROLLED_BACK
    assert f"image pull failed: unauthorized for {IMAGE_V1}" in revision.error and "rolled back to r2" in revision.error
    assert _image_in_cluster(k8s_controller, k8s_namespace) == IMAGE_V2, "the cluster serves r2 again"
    assert Deployment.objects.get().live_revision == r2


def test_the_progress_deadline_and_the_overall_limit_are_separate_settings(cluster_history, settings):
    # Issue 20 #3: DEPLOY_READY_TIMEOUT was both progressDeadlineSeconds and the whole wait.
    deployment, r1, r2 = cluster_history
    settings.DEPLOY_PROGRESS_DEADLINE, settings.DEPLOY_READY_TIMEOUT = 300, 0
    spec = replace(pipeline.serving_spec(r2), replicas=3, min_replicas=3)
    assert spec.progress_deadline_seconds == 300
    assert pipeline.ready_timeout(spec) == 300 * 4  # three replicas replaced one at a time, then the old ones go
    settings.DEPLOY_READY_TIMEOUT = 900
    assert pipeline.ready_timeout(spec) == 900
