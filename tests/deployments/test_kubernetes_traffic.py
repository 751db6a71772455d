"""Traffic splitting on the Kubernetes target (issue 15): a candidate revision serves from ``<name>-canary`` beside
the primary, and the deployment's HTTPRoute (Gateway API) or, without Gateway API, the replica ratio behind the
primary Service shares the traffic. Through the real ``kubernetes`` client against the API emulator, whose
HTTPRoutes are admitted by the Gateway API v1.3.0 CRD schema (tests/emulators/k8s_gateway.py)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import kubernetes.client
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from apps.deployments.backends import PermanentBackendError
from apps.deployments.clusters import Cluster
from apps.deployments.kube import ClusterAccessError
from apps.deployments.naming import candidate_name, deployment_name_error, derive_deployment_name
from apps.deployments.targets.base import CANDIDATE, ServingSpec, TrafficSplit
from apps.deployments.targets.kubernetes import KubernetesTarget
from apps.deployments.targets.kubernetes_manifests import (
    render_deployment,
    render_manifests,
    render_route,
    render_service,
)
from apps.deployments.targets.kubernetes_traffic import candidate_replicas, route_shares
from tests.emulators.k8s import Controller, EmulatorThread, label_selector_matches
from tests.emulators.k8s_controllers import DeploymentController, Stage
from tests.emulators.k8s_gateway import GatewayController, admit_route, strict_fields

DNS1035_LABEL = r"[a-z]([-a-z0-9]*[a-z0-9])?"  # a Service name (the API server's rule)
IMAGE = "registry.example.com/scoring/iris:ctx-3f2a"
GATEWAY = "gateway-system/public"


class Logs(list[str]):
    def __call__(self, line: str) -> None:
        self.append(line)


@pytest.fixture
def stable(k8s_namespace: str) -> ServingSpec:
    return ServingSpec(
        deployment="iris",
        namespace=k8s_namespace,
        environment="prod",
        revision="r3",
        model_name="iris",
        model_version="3",
        model_uri="models:/iris/3",
        image=IMAGE,
        image_digest="sha256:3f2a",
        replicas=4,
        min_replicas=4,
        max_replicas=8,
        gateway=GATEWAY,
    )


def _candidate(stable: ServingSpec) -> ServingSpec:
    return replace(
        stable, revision="r4", model_version="4", model_uri="models:/iris/4", image=IMAGE + "-4", placement=CANDIDATE
    )


@pytest.fixture
def candidate(stable: ServingSpec) -> ServingSpec:
    return _candidate(stable)


@pytest.fixture
def target(k8s_api: EmulatorThread) -> KubernetesTarget:
    return KubernetesTarget(api_url=k8s_api.url, poll_interval_seconds=0.02)


@pytest.fixture
def cluster(k8s_api: EmulatorThread, k8s_namespace: str) -> Iterator[DeploymentController]:
    """The deployment controller and kubelets: every pod starts and becomes ready in 0.05 s."""
    controller = DeploymentController(k8s_api, k8s_namespace, lambda pod: [Stage(0.05)]).start()
    yield controller
    controller.stop()


def _backends(route: dict) -> list[tuple[str, int]]:
    return [(ref["name"], ref["weight"]) for ref in route["spec"]["rules"][0]["backendRefs"]]


def _mirror(route: dict) -> dict | None:
    filters = route["spec"]["rules"][0].get("filters") or []
    return next((f["requestMirror"] for f in filters if f["type"] == "RequestMirror"), None)


def _served_by(k8s_controller: Controller, namespace: str, service: str) -> dict[str, int]:
    """Revision -> ready pods the Service selects: what kube-proxy spreads its connections over."""
    selector = k8s_controller.get("Service", namespace, service)["spec"]["selector"]
    query = ",".join(f"{key}={value}" for key, value in selector.items())
    counts: dict[str, int] = {}
    for pod in k8s_controller.list("Pod", namespace):
        labels = pod["metadata"]["labels"]
        ready = (pod.get("status") or {}).get("phase") == "Running"
        if ready and label_selector_matches(query, labels):
            counts[labels["modelplane.io/revision"]] = counts.get(labels["modelplane.io/revision"], 0) + 1
    return counts


# ---------------------------------------------------------------------------------------------- rendering
class CandidateRenderingTests:
    def test_the_candidate_name_is_the_deployment_name_with_a_suffix_and_always_a_valid_name(self) -> None:
        assert candidate_name("iris") == "iris-canary"
        long_a, long_b = "a" * 60 + "-one", "a" * 60 + "-two"
        derived = candidate_name(long_a)
        assert len(derived) == 63 and derived.endswith("-canary") and re.fullmatch(DNS1035_LABEL, derived)
        assert derived != candidate_name(long_b) and derived == candidate_name(long_a)
        assert candidate_name("m" * 56) == "m" * 56 + "-canary"  # exactly 63: no hash needed

    def test_no_deployment_may_take_a_name_a_candidate_uses(self) -> None:
        assert "choose another name" in deployment_name_error("iris-canary")
        assert derive_deployment_name("fraud_canary") == "fraud-canary-2"
        assert derive_deployment_name("fraud_canary", taken={"fraud-canary-2"}) == "fraud-canary-3"

    def test_a_candidate_has_its_own_deployment_and_service_selecting_its_own_pods(
        self, stable: ServingSpec, candidate: ServingSpec
    ) -> None:
        import kubernetes_validate

        manifests = render_manifests(candidate, image_pull_secrets=("acr-pull",))
        assert [(m["kind"], m["metadata"]["name"]) for m in manifests] == [
            ("Service", "iris-canary"),
            ("Deployment", "iris-canary"),
        ]
        version = kubernetes_validate.utils.latest_version()
        for manifest in manifests:
            kubernetes_validate.validate(manifest, version, strict=True)
        deployment, primary = manifests[1], render_deployment(stable)
        labels = deployment["metadata"]["labels"]
        assert (labels["modelplane.io/deployment"], labels["modelplane.io/environment"]) == ("iris", "prod")
        assert labels["modelplane.io/role"] == "candidate" and "modelplane.io/role" not in primary["metadata"]["labels"]
        pods = deployment["spec"]["template"]["metadata"]["labels"]
        primary_selector = ",".join(f"{k}={v}" for k, v in primary["spec"]["selector"]["matchLabels"].items())
        assert not label_selector_matches(primary_selector, pods)  # the primary Deployment never adopts them
        assert not label_selector_matches(
            ",".join(f"{k}={v}" for k, v in render_service(stable)["spec"]["selector"].items()), pods
        )
        shared = render_service(stable, shared=True)["spec"]["selector"]
        query = ",".join(f"{k}={v}" for k, v in shared.items())
        assert label_selector_matches(query, pods)
        assert label_selector_matches(query, primary["spec"]["template"]["metadata"]["labels"])
        # the candidate's telemetry still names the deployment, so the analysis finds its requests
        env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert (env["SCORING_DEPLOYMENT"], env["SCORING_REVISION"]) == ("iris", "r4")
        assert deployment["spec"]["replicas"] == 4 and render_deployment(candidate, replicas=0)["spec"]["replicas"] == 1

    @pytest.mark.parametrize(
        "split",
        [
            {"weight": 20},
            {"weight": 0, "mirror_percent": 35},
            {"weight": 0, "mirror_percent": 100},
            {"candidate": None},
            {"stable": None},
        ],
        ids=["canary", "shadow", "blue-green", "stable-only", "first"],
    )
    def test_every_rendered_route_is_admitted_by_the_gateway_api_schema(
        self, stable: ServingSpec, candidate: ServingSpec, split: dict
    ) -> None:
        fields = {"stable": stable, "candidate": candidate, **split}
        for path, hostnames in (("/", ()), (f"/{stable.namespace}/iris", ("models.example.com",))):
            route = render_route(TrafficSplit(**fields), path_prefix=path, hostnames=hostnames)
            strict_fields(route, "Strict")  # no field the CRD does not declare
            admitted = admit_route(route)  # the schema and the CEL rules a route of ours can meet
            assert admitted["spec"]["parentRefs"] == [
                {
                    "group": "gateway.networking.k8s.io",
                    "kind": "Gateway",
                    "namespace": "gateway-system",
                    "name": "public",
                }
            ]

    def test_the_route_shares_by_weight_and_mirrors_a_percent_to_the_candidate(
        self, stable: ServingSpec, candidate: ServingSpec
    ) -> None:
        canary = render_route(TrafficSplit(stable=stable, candidate=candidate, weight=20), path_prefix="/ns/iris")
        assert _backends(canary) == [("iris", 80), ("iris-canary", 20)] and _mirror(canary) is None
        rule = canary["spec"]["rules"][0]
        assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/ns/iris"}}]
        assert rule["filters"] == [
            {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}
        ]
        shadow = render_route(TrafficSplit(stable=stable, candidate=candidate, mirror_percent=35))
        assert _backends(shadow) == [("iris", 100), ("iris-canary", 0)]
        assert _mirror(shadow) == {"backendRef": {"kind": "Service", "name": "iris-canary", "port": 80}, "percent": 35}
        # 100 %: no percent field, which Gateway API before v1.3 does not know
        assert "percent" not in _mirror(
            render_route(TrafficSplit(stable=stable, candidate=candidate, mirror_percent=100))
        )
        assert _backends(render_route(TrafficSplit(stable=stable))) == [("iris", 100)]

    def test_weights_read_back_are_percents_of_their_sum_and_a_fraction_mirror_is_a_percent(self) -> None:
        # A route someone else edited: Gateway API weights are relative, and a mirror may be a fraction.
        mirror = {"backendRef": {"name": "iris-canary", "port": 80}, "fraction": {"numerator": 1, "denominator": 4}}
        rule = {
            "backendRefs": [{"name": "iris", "weight": 3}, {"name": "iris-canary"}],  # weight defaults to 1
            "filters": [{"type": "RequestMirror", "requestMirror": mirror}],
        }
        assert route_shares({"spec": {"rules": [rule]}}) == ({"iris": 75, "iris-canary": 25}, 25)

    @pytest.mark.parametrize(
        ("primary", "weight", "expected"),
        [(4, 20, 1), (4, 50, 4), (1, 10, 1), (2, 20, 1), (4, 75, 8), (3, 0, 0)],
    )
    def test_the_fallback_candidate_gets_a_share_of_the_pods(self, primary: int, weight: int, expected: int) -> None:
        assert candidate_replicas(primary, weight, most=8) == expected


# ---------------------------------------------------------------------------------------------- Gateway API
class GatewayTrafficTests:
    def test_a_canary_goes_20_then_50_then_is_promoted_into_the_primary(
        self,
        target: KubernetesTarget,
        stable: ServingSpec,
        candidate: ServingSpec,
        k8s_controller: Controller,
        cluster: DeploymentController,
    ) -> None:
        ns, logs = stable.namespace, Logs()
        target.apply(stable, logs)
        assert target.wait_ready(stable, logs, timeout_seconds=10).ok
        target.set_traffic(TrafficSplit(stable=stable), logs)  # what going live does
        assert _backends(k8s_controller.get("HTTPRoute", ns, "iris")) == [("iris", 100)]

        target.apply(candidate, logs)
        ready = target.wait_ready(candidate, logs, timeout_seconds=10)
        assert ready.ok and ready.endpoint_url == f"http://iris-canary.{ns}.svc.cluster.local"
        assert target.stable_url(candidate) == target.stable_url(stable) == f"http://iris.{ns}.svc.cluster.local"
        for weight in (20, 50):
            target.set_traffic(TrafficSplit(stable=stable, candidate=candidate, weight=weight), logs)
            route = k8s_controller.get("HTTPRoute", ns, "iris")
            assert _backends(route) == [("iris", 100 - weight), ("iris-canary", weight)]
            assert route["spec"]["parentRefs"][0]["name"] == "public"
            assert target.traffic(stable) == {"r3": 100 - weight, "r4": weight}
        assert f"HTTPRoute {ns}/iris: iris 50%, iris-canary 50%" in logs
        assert logs.count(f"HTTPRoute {ns}/iris: accepted by the Gateway {GATEWAY}") == 3

        promoted = target.promote(candidate, logs, timeout_seconds=10)

        assert promoted.ok, promoted.message
        assert _backends(k8s_controller.get("HTTPRoute", ns, "iris")) == [("iris", 100)]
        assert target.traffic(stable) == {"r4": 100}
        primary = k8s_controller.get("Deployment", ns, "iris")
        assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE + "-4"
        assert k8s_controller.get("Deployment", ns, "iris-canary") is None
        assert k8s_controller.get("Service", ns, "iris-canary") is None
        assert _served_by(k8s_controller, ns, "iris") == {"r4": 4}

        again = target.promote(candidate, Logs(), timeout_seconds=10)  # a worker killed after promoting: the same
        assert again.ok and target.traffic(stable) == {"r4": 100}

    def test_a_promotion_replaces_a_primary_whose_own_rollout_never_finished(
        self, k8s_api: EmulatorThread, target: KubernetesTarget, stable: ServingSpec, candidate: ServingSpec
    ) -> None:
        # The live revision's pods are stuck starting (60 s); the promotion's rolling update must not wait for them:
        # pods that are not ready serve nothing, and the deployment controller removes them first.
        slow = {stable.image: 60.0, candidate.image: 0.05}
        script = lambda pod: [Stage(slow[pod["spec"]["containers"][0]["image"]])]  # noqa: E731
        cluster = DeploymentController(k8s_api, stable.namespace, script).start()
        try:
            target.apply(stable, Logs())
            target.apply(candidate, Logs())
            assert target.wait_ready(candidate, Logs(), timeout_seconds=10).ok
            promoted = target.promote(candidate, Logs(), timeout_seconds=10)
            assert promoted.ok, promoted.message
        finally:
            cluster.stop()

    def test_a_stable_revision_from_before_the_gateway_was_set_still_routes_through_it(
        self, target: KubernetesTarget, stable: ServingSpec, candidate: ServingSpec, k8s_controller: Controller
    ) -> None:
        # The live revision was deployed before the environment had a gateway: the candidate's word counts.
        older = replace(stable, gateway="")
        target.apply(older, Logs())
        target.apply(candidate, Logs())
        target.set_traffic(TrafficSplit(stable=older, candidate=candidate, weight=20), Logs())
        route = k8s_controller.get("HTTPRoute", stable.namespace, "iris")
        assert route["spec"]["parentRefs"][0]["name"] == "public"
        assert _backends(route) == [("iris", 80), ("iris-canary", 20)]

    def test_a_shadow_mirror_is_applied_and_removed(
        self, target: KubernetesTarget, stable: ServingSpec, candidate: ServingSpec, k8s_controller: Controller
    ) -> None:
        ns = stable.namespace
        target.apply(stable, Logs())
        target.apply(candidate, Logs())
        target.set_traffic(TrafficSplit(stable=stable, candidate=candidate, mirror_percent=50), Logs())
        route = k8s_controller.get("HTTPRoute", ns, "iris")
        assert _mirror(route) == {
            "backendRef": {"group": "", "kind": "Service", "name": "iris-canary", "port": 80},  # group: the default
            "percent": 50,
        }
        assert target.traffic(stable) == {"r3": 100, "r4": 0, "mirror": 50}
        version = route["metadata"]["resourceVersion"]
        target.set_traffic(TrafficSplit(stable=stable, candidate=candidate, mirror_percent=50), Logs())
        assert k8s_controller.get("HTTPRoute", ns, "iris")["metadata"]["resourceVersion"] == version  # declarative

        target.set_traffic(TrafficSplit(stable=stable), Logs())
        route = k8s_controller.get("HTTPRoute", ns, "iris")
        assert _mirror(route) is None and _backends(route) == [("iris", 100)]
        assert target.traffic(stable) == {"r3": 100}

    def test_an_aborted_canary_gives_the_stable_revision_everything_and_leaves_no_candidate(
        self, target: KubernetesTarget, stable: ServingSpec, candidate: ServingSpec, k8s_controller: Controller
    ) -> None:
        ns = stable.namespace
        target.apply(stable, Logs())
        target.apply(candidate, Logs())
        target.set_traffic(TrafficSplit(stable=stable, candidate=candidate, weight=20), Logs())

        logs = Logs()
        target.set_traffic(TrafficSplit(stable=stable), logs)
        target.retire(candidate, logs)

        assert _backends(k8s_controller.get("HTTPRoute", ns, "iris")) == [("iris", 100)]
        assert k8s_controller.get("Deployment", ns, "iris-canary") is None
        assert k8s_controller.get("Service", ns, "iris-canary") is None
        primary = k8s_controller.get("Deployment", ns, "iris")
        assert primary["metadata"]["annotations"]["modelplane.io/revision"] == "r3"
        assert target.traffic(stable) == {"r3": 100}
        assert logs[-2:] == [f"deleted Deployment {ns}/iris-canary", f"deleted Service {ns}/iris-canary"]
        target.retire(candidate, Logs())  # twice: nothing left, nothing raised

    def test_deleting_the_deployment_deletes_its_route_and_candidate(
        self, target: KubernetesTarget, stable: ServingSpec, candidate: ServingSpec, k8s_controller: Controller
    ) -> None:
        ns = stable.namespace
        target.apply(stable, Logs())
        target.apply(candidate, Logs())
        target.set_traffic(TrafficSplit(stable=stable, candidate=candidate, weight=20), Logs())
        logs = Logs()
        target.delete(stable, logs)
        assert logs[0] == f"deleted HTTPRoute {ns}/iris"
        for kind, name in (("HTTPRoute", "iris"), ("Deployment", "iris-canary"), ("Deployment", "iris")):
            assert k8s_controller.get(kind, ns, name) is None, kind
        assert target.traffic(stable) == {}

    def test_a_later_candidate_replaces_an_earlier_one_in_place_under_the_same_selector(
        self, target: KubernetesTarget, stable: ServingSpec, candidate: ServingSpec, k8s_controller: Controller
    ) -> None:
        # The API server refuses a changed Deployment selector (422): a candidate left by a worker that died before
        # retiring it is updated by the next rollout's candidate, in either traffic mode.
        target.apply(stable, Logs())
        target.apply(candidate, Logs())
        first = k8s_controller.get("Deployment", stable.namespace, "iris-canary")
        later = replace(candidate, revision="r5", image=IMAGE + "-5", gateway="")
        target.apply(later, Logs())
        live = k8s_controller.get("Deployment", stable.namespace, "iris-canary")
        assert live["spec"]["selector"] == first["spec"]["selector"]
        assert live["metadata"]["annotations"]["modelplane.io/revision"] == "r5"
        assert live["metadata"]["generation"] == first["metadata"]["generation"] + 1

    def test_another_environments_route_of_that_name_is_refused(
        self, target: KubernetesTarget, stable: ServingSpec, k8s_controller: Controller
    ) -> None:
        theirs = render_route(TrafficSplit(stable=replace(stable, environment="staging")))
        k8s_controller.create(theirs)
        target.apply(replace(stable, gateway=""), Logs())
        with pytest.raises(PermanentBackendError) as refused:
            target.set_traffic(TrafficSplit(stable=stable), Logs())
        assert refused.value.message.startswith(
            f"HTTPRoute {stable.namespace}/iris belongs to deployment iris of environment staging; prod will not "
            "overwrite it."
        )
        live = k8s_controller.get("HTTPRoute", stable.namespace, "iris")
        assert live["metadata"]["labels"]["modelplane.io/environment"] == "staging"
        logs = Logs()
        target.delete(stable, logs)
        assert logs[0].startswith("left alone: HTTPRoute") and k8s_controller.get("HTTPRoute", stable.namespace, "iris")


class RouteAcceptanceTests:
    """The weights are in effect only once the Gateway's controller accepts the route (its ``status.parents``)."""

    def test_a_route_the_gateway_does_not_accept_fails_with_its_reason(
        self, target: KubernetesTarget, stable: ServingSpec, k8s_api: EmulatorThread, monkeypatch
    ) -> None:
        ns = stable.namespace
        monkeypatch.setattr(k8s_api.emulator, "gateway_controller", GatewayController({GATEWAY: {"team-other"}}))
        target.apply(stable, Logs())
        with pytest.raises(PermanentBackendError) as refused:
            target.set_traffic(TrafficSplit(stable=stable), Logs())
        assert refused.value.message == (
            f"The Gateway {GATEWAY} did not accept HTTPRoute {ns}/iris: NotAllowedByListeners: No listener of "
            f"Gateway {GATEWAY} allows routes from {ns} (let the Gateway's listeners allow routes from namespace "
            f"{ns}: allowedRoutes)"
        )

    def test_a_route_to_a_missing_service_fails_naming_it(
        self, target: KubernetesTarget, stable: ServingSpec, candidate: ServingSpec
    ) -> None:
        target.apply(stable, Logs())  # the candidate's Service is never created
        with pytest.raises(PermanentBackendError) as refused:
            target.set_traffic(TrafficSplit(stable=stable, candidate=candidate, weight=20), Logs())
        assert refused.value.message == (
            f"The Gateway {GATEWAY} cannot route HTTPRoute {stable.namespace}/iris to its backends: BackendNotFound: "
            "Service iris-canary not found"
        )

    def test_without_a_controller_the_route_is_applied_and_the_wait_is_logged(
        self, stable: ServingSpec, k8s_api: EmulatorThread, k8s_controller: Controller, monkeypatch
    ) -> None:
        monkeypatch.setattr(k8s_api.emulator, "gateway_controller", None)
        target = KubernetesTarget(api_url=k8s_api.url, poll_interval_seconds=0.02, route_accept_timeout_seconds=0.3)
        target.apply(stable, Logs())
        logs = Logs()
        target.set_traffic(TrafficSplit(stable=stable), logs)
        assert _backends(k8s_controller.get("HTTPRoute", stable.namespace, "iris")) == [("iris", 100)]
        assert logs[-1] == (
            f"HTTPRoute {stable.namespace}/iris: no controller of the Gateway {GATEWAY} reported on it within 0.3 s; "
            "the weights take effect when one accepts it"
        )


class GatewayEmulatorTests:
    """The emulator refuses what an API server with the Gateway API v1.3.0 CRDs refuses, in its words."""

    @pytest.fixture
    def routes(self, k8s_api: EmulatorThread) -> kubernetes.client.CustomObjectsApi:
        cfg = kubernetes.client.Configuration()
        cfg.host = k8s_api.url
        return kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(cfg))

    def _apply(self, routes, route: dict, **options) -> dict:
        return routes.patch_namespaced_custom_object(
            "gateway.networking.k8s.io",
            "v1",
            route["metadata"]["namespace"],
            "httproutes",
            route["metadata"]["name"],
            route,
            field_manager="test",
            _content_type="application/apply-patch+yaml",
            **options,
        )

    @pytest.mark.parametrize(
        ("change", "status", "message"),
        [
            (
                lambda r: r["spec"]["rules"][0]["backendRefs"][0].__setitem__("weight", -1),
                422,
                "spec.rules[0].backendRefs[0].weight: Invalid value: -1: spec.rules[0].backendRefs[0].weight in body "
                "should be greater than or equal to 0",
            ),
            (
                lambda r: r["spec"]["rules"][0]["backendRefs"][0].__setitem__("weight", 1_000_001),
                422,
                "should be less than or equal to 1000000",
            ),
            (
                lambda r: r["spec"]["rules"][0].__setitem__(
                    "backendRefs", [{"name": f"svc-{i}", "port": 80} for i in range(17)]
                ),
                422,
                "spec.rules[0].backendRefs: Too many: 17: must have at most 16 items",
            ),
            (
                lambda r: r["spec"]["rules"][0]["filters"][1]["requestMirror"].__setitem__("percent", 101),
                422,
                "spec.rules[0].filters[1].requestMirror.percent: Invalid value: 101",
            ),
            (
                lambda r: r["spec"]["rules"][0]["filters"][1]["requestMirror"].__setitem__(
                    "fraction", {"numerator": 1, "denominator": 2}
                ),
                422,
                "Only one of percent or fraction may be specified in HTTPRequestMirrorFilter",
            ),
            (
                lambda r: r["spec"]["rules"][0]["backendRefs"][1].pop("port"),
                422,
                'spec.rules[0].backendRefs[1]: Invalid value: "object": Must have port for Service reference',
            ),
            (
                lambda r: r["spec"]["parentRefs"][0].__setitem__("name", ""),
                422,
                "spec.parentRefs[0].name in body should be at least 1 chars long",
            ),
            (
                lambda r: r["metadata"].__setitem__("name", "Iris_1"),
                422,
                'metadata.name: Invalid value: "Iris_1": a lowercase RFC 1123 subdomain',
            ),
            (
                lambda r: r["spec"]["rules"][0]["backendRefs"][0].__setitem__("weigth", 5),
                400,
                'strict decoding error: unknown field "spec.rules[0].backendRefs[0].weigth"',
            ),
        ],
        ids=[
            "weight-1",
            "weight-too-big",
            "17-backends",
            "percent-101",
            "percent-and-fraction",
            "no-port",
            "no-parent",
            "name",
            "unknown-field",
        ],
    )
    def test_an_invalid_route_is_refused(
        self, routes, stable: ServingSpec, candidate: ServingSpec, k8s_controller: Controller, change, status, message
    ) -> None:
        route = render_route(TrafficSplit(stable=stable, candidate=candidate, mirror_percent=40), path_prefix="/x")
        self._apply(routes, copy.deepcopy(route), field_validation="Strict")  # valid as rendered
        change(route)
        with pytest.raises(ApiException) as refused:
            self._apply(routes, route, field_validation="Strict")
        answer = json.loads(refused.value.body)
        assert (refused.value.status, answer["code"]) == (status, status)
        assert message in answer["message"]
        if status == 422:
            assert answer["reason"] == "Invalid"
            assert answer["message"].startswith(f'HTTPRoute.gateway.networking.k8s.io "{route["metadata"]["name"]}"')
        assert _mirror(k8s_controller.get("HTTPRoute", stable.namespace, "iris"))["percent"] == 40  # unchanged

    def test_an_unknown_field_is_dropped_without_strict_validation(
        self, routes, stable: ServingSpec, k8s_controller: Controller
    ) -> None:
        route = render_route(TrafficSplit(stable=stable))
        route["spec"]["rules"][0]["backendRefs"][0]["weigth"] = 5
        self._apply(routes, route)
        stored = k8s_controller.get("HTTPRoute", stable.namespace, "iris")
        assert stored["spec"]["rules"][0]["backendRefs"][0] == {
            "group": "",
            "kind": "Service",
            "name": "iris",
            "port": 80,
            "weight": 100,
        }


# ---------------------------------------------------------------------------------------------- no Gateway API
@pytest.fixture(scope="module")
def bare_api() -> Iterator[EmulatorThread]:
    """A cluster without the Gateway API CRDs."""
    runner = EmulatorThread(gateway_api="").start()
    yield runner
    runner.stop()


@pytest.fixture
def bare(bare_api: EmulatorThread, stable: ServingSpec) -> tuple[KubernetesTarget, Controller, ServingSpec]:
    controller = Controller(bare_api)
    controller.create_namespace(stable.namespace)
    target = KubernetesTarget(api_url=bare_api.url, poll_interval_seconds=0.02)
    return target, controller, replace(stable, gateway="")


class ReplicaRatioTests:
    def test_a_canary_shares_the_primary_service_by_replica_ratio(self, bare, bare_api: EmulatorThread) -> None:
        target, k8s, stable = bare
        candidate, ns = _candidate(stable), stable.namespace
        cluster = DeploymentController(bare_api, ns, lambda pod: [Stage(0.05)]).start()
        try:
            target.apply(stable, Logs())
            assert target.wait_ready(stable, Logs(), timeout_seconds=10).ok
            target.set_traffic(TrafficSplit(stable=stable), Logs())
            target.apply(candidate, Logs())
            assert target.wait_ready(candidate, Logs(), timeout_seconds=10).ok
            assert _served_by(k8s, ns, "iris") == {"r3": 4}  # applied, not yet sharing

            for weight, replicas, share in ((20, 1, 20), (50, 4, 50)):
                logs = Logs()
                target.set_traffic(TrafficSplit(stable=stable, candidate=candidate, weight=weight), logs)
                assert k8s.get("Deployment", ns, "iris-canary")["spec"]["replicas"] == replicas
                assert target.wait_ready(candidate, Logs(), timeout_seconds=10).ok
                assert _served_by(k8s, ns, "iris") == {"r3": 4, "r4": replicas}
                assert target.traffic(stable) == {"r3": 100 - share, "r4": share}
                assert logs[-1].endswith(f"about {share}% to r4")

            target.set_traffic(TrafficSplit(stable=stable), Logs())  # abort: back to the primary's pods only
            assert _served_by(k8s, ns, "iris") == {"r3": 4}
            assert target.traffic(stable) == {"r3": 100, "r4": 0}
            target.retire(candidate, Logs())
            assert target.traffic(stable) == {"r3": 100} and k8s.get("Deployment", ns, "iris-canary") is None
        finally:
            cluster.stop()

    def test_a_promotion_without_gateway_api_leaves_the_primary_service_on_the_new_pods(
        self, bare, bare_api: EmulatorThread
    ) -> None:
        target, k8s, stable = bare
        candidate, ns = _candidate(stable), stable.namespace
        cluster = DeploymentController(bare_api, ns, lambda pod: [Stage(0.05)]).start()
        try:
            target.apply(stable, Logs())
            target.apply(candidate, Logs())
            target.set_traffic(TrafficSplit(stable=stable, candidate=candidate, weight=50), Logs())
            assert target.promote(candidate, Logs(), timeout_seconds=10).ok
            assert k8s.get("Service", ns, "iris")["spec"]["selector"] == render_service(stable)["spec"]["selector"]
            assert _served_by(k8s, ns, "iris") == {"r4": 4}
            assert target.traffic(stable) == {"r4": 100}
        finally:
            cluster.stop()

    def test_blue_green_without_gateway_api_gives_the_candidate_no_client_traffic(self, bare) -> None:
        target, k8s, stable = bare
        candidate = _candidate(stable)
        target.apply(stable, Logs())
        target.apply(candidate, Logs())
        target.set_traffic(TrafficSplit(stable=stable, candidate=candidate, weight=0), Logs())
        selector = k8s.get("Service", stable.namespace, "iris")["spec"]["selector"]
        pods = k8s.get("Deployment", stable.namespace, "iris-canary")["spec"]["template"]["metadata"]["labels"]
        assert not label_selector_matches(",".join(f"{k}={v}" for k, v in selector.items()), pods)
        assert target.traffic(stable) == {"r3": 100, "r4": 0}

    def test_shadow_is_refused_without_a_gateway_and_offered_with_one(self) -> None:
        target = KubernetesTarget()
        refusal = target.traffic_refusal("shadow", gateway="")
        assert refusal is not None and "needs Gateway API" in refusal and "set the environment's gateway" in refusal
        assert target.traffic_refusal("shadow", gateway=GATEWAY) is None
        for strategy in ("all_at_once", "canary", "blue_green"):
            assert target.traffic_refusal(strategy, gateway="") is None

    def test_a_gateway_on_a_cluster_without_gateway_api_is_named(self, bare, stable: ServingSpec) -> None:
        target, k8s, _ = bare
        target.apply(stable, Logs())
        with pytest.raises(PermanentBackendError) as refused:
            target.set_traffic(TrafficSplit(stable=stable), Logs())
        assert refused.value.message == (
            f"Environment prod routes through the Gateway {GATEWAY}, but the cluster has no Gateway API "
            "(gateway.networking.k8s.io/v1 httproutes): install its CRDs (v1.3 or later for a mirror percent), or "
            "clear the environment's gateway."
        )


# ---------------------------------------------------------------------------------------------- RBAC
RBAC_YAML = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "base" / "rbac-targets.yaml"
WORKER = "system:serviceaccount:modelplane:modelplane-worker"


def _shipped_roles(namespace: str, *names: str) -> list[dict]:
    """The shipped Roles and RoleBindings ``names``, as the file says to install them in a target namespace."""
    docs = [doc for doc in yaml.safe_load_all(RBAC_YAML.read_text()) if doc]
    chosen = [copy.deepcopy(d) for d in docs if d["kind"] in ("Role", "RoleBinding") and d["metadata"]["name"] in names]
    for doc in chosen:
        doc["metadata"]["namespace"] = namespace
    return chosen


class RouterRoleTests:
    def test_a_canary_needs_the_router_role_and_uses_each_of_its_grants(self, stable: ServingSpec, tmp_path) -> None:
        runner = EmulatorThread(strict=True).start()
        try:
            k8s = Controller(runner)
            k8s.create_namespace(stable.namespace)
            token = tmp_path / "token"
            token.write_text(runner.emulator.auth.service_account_token("modelplane", "modelplane-worker"))
            target = KubernetesTarget(
                cluster=Cluster(name="aks", auth="token", server=runner.url, token_file=str(token)),
                poll_interval_seconds=0.02,
            )
            candidate = _candidate(stable)
            for doc in _shipped_roles(stable.namespace, "modelplane-deployer"):
                k8s.create(doc)
            target.apply(stable, Logs())
            with pytest.raises(ClusterAccessError) as refused:
                target.set_traffic(TrafficSplit(stable=stable), Logs())
            assert (
                f'httproutes.gateway.networking.k8s.io "iris" is forbidden: User "{WORKER}" cannot get resource '
                f'"httproutes" in API group "gateway.networking.k8s.io" in the namespace "{stable.namespace}"'
            ) in refused.value.message

            for doc in _shipped_roles(stable.namespace, "modelplane-router"):
                k8s.create(doc)
            target.apply(candidate, Logs())
            target.set_traffic(TrafficSplit(stable=stable, candidate=candidate, weight=20), Logs())
            target.set_traffic(TrafficSplit(stable=stable, candidate=candidate, weight=50), Logs())
            assert target.traffic(stable) == {"r3": 50, "r4": 50}
            target.delete(stable, Logs())

            router = {(v, "gateway.networking.k8s.io", "httproutes") for v in ("get", "create", "patch", "delete")}
            assert runner.emulator.rbac.granted(WORKER) & router == router
        finally:
            runner.stop()


class OlderGatewayApiTests:
    """AKS's managed Gateway API installs v1.2.1 below Kubernetes 1.34: HTTPRoute v1 without a mirror percent."""

    def test_a_full_mirror_works_on_gateway_api_1_2_and_a_partial_one_is_refused_by_name(
        self, stable: ServingSpec, candidate: ServingSpec
    ) -> None:
        runner = EmulatorThread(gateway_api="v1.2.1").start()
        try:
            k8s = Controller(runner)
            k8s.create_namespace(stable.namespace)
            target = KubernetesTarget(api_url=runner.url)
            target.apply(stable, Logs())
            target.apply(candidate, Logs())
            target.set_traffic(TrafficSplit(stable=stable, candidate=candidate, mirror_percent=100), Logs())
            assert target.traffic(stable) == {"r3": 100, "r4": 0, "mirror": 100}
            with pytest.raises(PermanentBackendError) as refused:
                target.set_traffic(TrafficSplit(stable=stable, candidate=candidate, mirror_percent=50), Logs())
            assert refused.value.message.startswith(
                "The Gateway API of environment prod's cluster is older than v1.3 and cannot mirror 50% of requests"
            )
            assert _mirror(k8s.get("HTTPRoute", stable.namespace, "iris")) == {
                "backendRef": {"group": "", "kind": "Service", "name": "iris-canary", "port": 80}
            }
        finally:
            runner.stop()
