"""A deployment controller, scheduler and kubelet for the Kubernetes emulator, on a fast real clock.

``DeploymentController`` does in one namespace what kube-controller-manager's deployment controller does for a
RollingUpdate with maxSurge 1 and maxUnavailable 0: it creates the new template's pods one at a time, removes an
old pod once a new one is ready, and reports ``status`` with the ``Progressing`` condition's reasons
(ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded: no progress within
``progressDeadlineSeconds``, counted per progress, not per rollout) and ``Available``. Each new pod goes through
the ``Stage``s that ``script(pod)`` returns (waiting reasons, unschedulable, events from the scheduler, the
kubelet or the cluster autoscaler) and then runs, ready. Times are seconds of the real clock, so tests use
fractions of a second.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

from tests.emulators.k8s import EmulatorThread, label_selector_matches, resource_of

__all__ = ["DeploymentController", "Stage", "BuildPodKubelet", "BuildRun"]

TICK_SECONDS = 0.02
HASH_LABEL = "pod-template-hash"


@dataclass(frozen=True)
class Stage:
    """``seconds`` of a pod's life: its container ``waiting`` state (or unschedulable with the scheduler's
    message), and the events (reason, message, component) emitted as the stage begins."""

    seconds: float
    waiting: dict[str, str] | None = None
    unschedulable: str = ""
    events: tuple[tuple[str, str, str], ...] = ()


def starting(seconds: float) -> list[Stage]:
    return [Stage(seconds, waiting={"reason": "ContainerCreating"})]


@dataclass
class _Rollout:
    template_hash: str
    generation: int
    last_progress: float
    started: dict[str, float] = field(default_factory=dict)  # pod -> monotonic time created
    stage: dict[str, int] = field(default_factory=dict)  # pod -> index of the stage it is in


def _stamp(micro: bool = False) -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


class _OnTheClock:
    """A loop (``_run``) on the emulator's event loop, from ``start()`` until ``stop()``."""

    runner: EmulatorThread
    _task: asyncio.Task[None] | None = None

    def start(self) -> Self:
        async def begin() -> None:
            self._task = asyncio.get_running_loop().create_task(self._run())

        assert self.runner.loop is not None
        asyncio.run_coroutine_threadsafe(begin(), self.runner.loop).result(5)
        return self

    def stop(self) -> None:
        if self._task is not None and self.runner.loop is not None:
            self.runner.loop.call_soon_threadsafe(self._task.cancel)

    async def _run(self) -> None:
        raise NotImplementedError


class DeploymentController(_OnTheClock):
    """Runs on the emulator's loop until ``stop()``; ``script(pod)`` gives each new pod's stages."""

    def __init__(
        self, runner: EmulatorThread, namespace: str, script: Callable[[dict[str, Any]], list[Stage]] | None = None
    ) -> None:
        self.runner, self.emulator, self.namespace = runner, runner.emulator, namespace
        self.script = script or (lambda pod: starting(0.05))
        self.rollouts: dict[str, _Rollout] = {}
        self.history: list[tuple[str, str]] = []  # (deployment, Progressing reason) as each changes
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            async with self.emulator._lock:
                for deployment in self._items("Deployment"):
                    self._reconcile(deployment, time.monotonic())
            await asyncio.sleep(TICK_SECONDS)

    # ------------------------------------------------------------------ storage
    def _items(self, kind: str) -> list[dict[str, Any]]:
        return self.emulator._list(resource_of(kind), self.namespace, {})["items"]

    def _store(self, kind: str, obj: dict[str, Any]) -> None:
        self.emulator.store(resource_of(kind), self.namespace, obj)

    def _event(self, pod: str, reason: str, message: str, component: str) -> None:
        event_type = "Normal" if reason in ("Scheduled", "Pulling", "Pulled", "TriggeredScaleUp") else "Warning"
        self._store(
            "Event",
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{pod}.{uuid.uuid4().hex[:12]}", "namespace": self.namespace},
                "involvedObject": {"kind": "Pod", "name": pod, "namespace": self.namespace},
                "reason": reason,
                "message": message,
                "type": event_type,
                "source": {"component": component},
                "count": 1,
                "firstTimestamp": _stamp(),
                "lastTimestamp": _stamp(),
                "eventTime": _stamp(micro=True),
            },
        )

    # ------------------------------------------------------------------ one deployment
    def _reconcile(self, deployment: dict[str, Any], now: float) -> None:
        name, spec = deployment["metadata"]["name"], deployment["spec"]
        generation = int(deployment["metadata"].get("generation", 1))
        template_hash = hashlib.sha256(json.dumps(spec["template"], sort_keys=True).encode()).hexdigest()[:10]
        rollout = self.rollouts.get(name)
        if rollout is None or rollout.generation != generation:
            rollout = _Rollout(template_hash, generation, now, **({} if rollout is None else self._keep(rollout)))
            self.rollouts[name] = rollout
        rollout.template_hash = template_hash
        desired = int(spec.get("replicas", 1))
        selector = ",".join(f"{k}={v}" for k, v in spec["selector"]["matchLabels"].items())
        pods = [p for p in self._items("Pod") if label_selector_matches(selector, p["metadata"].get("labels") or {})]
        new = [p for p in pods if p["metadata"]["labels"].get(HASH_LABEL) == template_hash]
        old = [p for p in pods if p not in new]
        progressed = False
        for pod in new:
            progressed |= self._advance(pod, rollout, now)
        ready_new = sum(_ready(p) for p in new)
        ready_old = sum(_ready(p) for p in old)
        # maxUnavailable 0: an old pod goes once a new one serves; an old pod that is not ready (a rollout replaced
        # before it finished) serves nothing and goes as soon as the surge is used (the controller's
        # cleanupUnhealthyReplicas: all pods - desired - new pods not ready > 0).
        unready_old = len(old) - ready_old
        if old and (ready_new + ready_old > desired or (unready_old and len(new) - ready_new + desired < len(pods))):
            victim = next((p for p in old if not _ready(p)), old[0])
            self.emulator._delete(resource_of("Pod"), self.namespace, victim["metadata"]["name"])
            old.remove(victim)
            ready_old -= _ready(victim)
            progressed = True
        if not old and len(new) > desired:  # scaled down: the ReplicaSet deletes pods, those not ready first
            for victim in sorted(new, key=_ready)[: len(new) - desired]:
                self.emulator._delete(resource_of("Pod"), self.namespace, victim["metadata"]["name"])
                new.remove(victim)
            progressed = True
        if len(new) < desired and len(new) + len(old) < desired + 1:  # maxSurge 1
            new.append(self._create_pod(deployment, template_hash, rollout, now))
            progressed = True
        if progressed:
            rollout.last_progress = now
        self._report(deployment, rollout, desired, new, old, ready_new + ready_old, now)

    @staticmethod
    def _keep(rollout: _Rollout) -> dict[str, Any]:
        return {"started": rollout.started, "stage": rollout.stage}

    def _create_pod(self, deployment: dict[str, Any], template_hash: str, rollout: _Rollout, now: float) -> dict:
        template = copy.deepcopy(deployment["spec"]["template"])
        name = f"{deployment['metadata']['name']}-{template_hash[:6]}-{uuid.uuid4().hex[:5]}"
        labels = {**template["metadata"].get("labels", {}), HASH_LABEL: template_hash}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
            "spec": template["spec"],
            "status": {"phase": "Pending", "conditions": []},
        }
        rollout.started[name] = now
        rollout.stage[name] = -1
        self._store("Pod", pod)
        self._advance(pod, rollout, now)
        return pod

    def _advance(self, pod: dict[str, Any], rollout: _Rollout, now: float) -> bool:
        """Moves the pod to the stage its age puts it in; True when it just became ready (progress)."""
        name = pod["metadata"]["name"]
        if name not in rollout.started:  # a pod of an earlier controller run: leave it as it is
            return False
        stages = self.script(pod)
        age, index, elapsed = now - rollout.started[name], 0, 0.0
        while index < len(stages) and age >= elapsed + stages[index].seconds:
            elapsed += stages[index].seconds
            index += 1
        if index == rollout.stage[name]:
            return False
        rollout.stage[name] = index
        container = pod["spec"]["containers"][0]
        status = {"name": container["name"], "image": container["image"], "imageID": "", "restartCount": 0}
        if index < len(stages):
            stage = stages[index]
            for reason, message, component in stage.events:
                self._event(name, reason, message, component)
            if stage.unschedulable:
                condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
                condition.update(message=stage.unschedulable, lastTransitionTime=self._since(pod, "PodScheduled"))
                pod["status"] = {"phase": "Pending", "conditions": [condition]}
            else:
                scheduled = {"type": "PodScheduled", "status": "True", "lastTransitionTime": _stamp()}
                state = {"waiting": stage.waiting or {"reason": "ContainerCreating"}}
                pod["status"] = {
                    "phase": "Pending",
                    "conditions": [scheduled],
                    "containerStatuses": [{**status, "ready": False, "started": False, "state": state}],
                }
            self._store("Pod", pod)
            return False
        running = {"running": {"startedAt": _stamp()}}
        conditions = [{"type": kind, "status": "True", "lastTransitionTime": _stamp()} for kind in _READY]
        pod["status"] = {
            "phase": "Running",
            "conditions": conditions,
            "containerStatuses": [{**status, "ready": True, "started": True, "state": running}],
        }
        self._store("Pod", pod)
        return True

    @staticmethod
    def _since(pod: dict[str, Any], kind: str) -> str:
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if condition.get("type") == kind and condition.get("status") == "False":
                return condition.get("lastTransitionTime") or _stamp()
        return _stamp()

    def _report(self, deployment, rollout, desired, new, old, available, now) -> None:
        spec = deployment["spec"]
        deadline = float(spec.get("progressDeadlineSeconds", 600))
        previous = {c["type"]: c for c in (deployment.get("status") or {}).get("conditions") or []}
        complete = len(new) == desired and not old and sum(_ready(p) for p in new) == desired
        if complete:
            progressing = (
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rollout.template_hash}" has successfully progressed.',
            )
        elif now - rollout.last_progress > deadline:
            progressing = (
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rollout.template_hash}" has timed out progressing.',
            )
        else:
            progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{rollout.template_hash}" is progressing.')
        was = previous.get("Progressing", {})
        if (was.get("status"), was.get("reason")) == progressing[:2] and now != rollout.last_progress:
            progressing_condition = was
        else:
            status, reason, message = progressing
            progressing_condition = {"type": "Progressing", "status": status, "reason": reason, "message": message}
            progressing_condition.update(lastUpdateTime=_stamp(), lastTransitionTime=_stamp())
        if not self.history or self.history[-1] != (deployment["metadata"]["name"], progressing[1]):
            self.history.append((deployment["metadata"]["name"], progressing[1]))
        enough = available >= desired
        available_condition = {
            "type": "Available",
            "status": "True" if enough else "False",
            "reason": "MinimumReplicasAvailable" if enough else "MinimumReplicasUnavailable",
        }
        deployment["status"] = {
            "observedGeneration": rollout.generation,
            "replicas": len(new) + len(old),
            "updatedReplicas": len(new),
            "readyReplicas": available,
            "availableReplicas": available,
            "unavailableReplicas": max(0, desired - available),
            "conditions": [available_condition, progressing_condition],
        }
        self._store("Deployment", deployment)


_READY = ("PodScheduled", "Initialized", "ContainersReady", "Ready")


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


# ---------------------------------------------------------------------------------------------- build pods
@dataclass(frozen=True)
class BuildRun:
    """How a build pod goes: ``stages`` while Pending (as for deployment pods), then Running for ``run_seconds``
    writing the first half of ``log``, then terminated with ``exit_code`` and ``message`` (the termination message,
    where buildah writes the pushed digest) and the whole ``log``."""

    stages: tuple[Stage, ...] = ()
    run_seconds: float = 0.1
    log: str = ""
    exit_code: int = 0
    message: str = ""


class BuildPodKubelet(_OnTheClock):
    """Scheduler and kubelet for bare pods in one namespace (build pods): each new pod is moved through its
    ``BuildRun`` on a fast real clock, Pending -> Running -> Succeeded/Failed; ``activeDeadlineSeconds`` is
    honoured (the pod fails with reason DeadlineExceeded). ``script(pod)`` gives each pod's run."""

    def __init__(self, runner: EmulatorThread, namespace: str, script: Callable[[dict[str, Any]], BuildRun]) -> None:
        self.runner, self.emulator, self.namespace, self.script = runner, runner.emulator, namespace, script
        self.started: dict[str, float] = {}  # pod uid -> monotonic time first seen
        self.state: dict[str, str] = {}  # pod uid -> the last state written
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            async with self.emulator._lock:
                now = time.monotonic()
                for pod in self.emulator._list(resource_of("Pod"), self.namespace, {})["items"]:
                    if not (pod["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "image-build":
                        continue
                    self._advance(pod, now)
            await asyncio.sleep(TICK_SECONDS)

    def _event(self, pod: str, reason: str, message: str, component: str) -> None:
        event_type = "Normal" if reason in ("Scheduled", "Pulling", "Pulled", "TriggeredScaleUp") else "Warning"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{pod}.{uuid.uuid4().hex[:12]}", "namespace": self.namespace},
            "involvedObject": {"kind": "Pod", "name": pod, "namespace": self.namespace},
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": {"component": component},
            "count": 1,
            "firstTimestamp": _stamp(),
            "lastTimestamp": _stamp(),
            "eventTime": _stamp(micro=True),
        }
        self.emulator.store(resource_of("Event"), self.namespace, event)

    def _advance(self, pod: dict[str, Any], now: float) -> None:
        uid, name = pod["metadata"]["uid"], pod["metadata"]["name"]
        if self.state.get(uid) in ("Succeeded", "Failed"):
            return
        self.started.setdefault(uid, now)
        run, age = self.script(pod), now - self.started[uid]
        container = pod["spec"]["containers"][0]
        status = {"name": container["name"], "image": container["image"], "imageID": "", "restartCount": 0}
        deadline = pod["spec"].get("activeDeadlineSeconds")
        index, elapsed = 0, 0.0
        while index < len(run.stages) and age >= elapsed + run.stages[index].seconds:
            elapsed += run.stages[index].seconds
            index += 1
        if deadline is not None and age > float(deadline):
            state, new_status = (
                "Failed",
                {
                    "phase": "Failed",
                    "reason": "DeadlineExceeded",
                    "message": "Pod was active on the node longer than the specified deadline",
                },
            )
        elif index < len(run.stages):
            stage = run.stages[index]
            state = f"stage-{index}"
            if self.state.get(uid) != state:
                for reason, message, component in stage.events:
                    self._event(name, reason, message, component)
            if stage.unschedulable:
                condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
                condition.update(message=stage.unschedulable, lastTransitionTime=_stamp())
                new_status = {"phase": "Pending", "conditions": [condition]}
            else:
                waiting = {"waiting": stage.waiting or {"reason": "ContainerCreating"}}
                new_status = {
                    "phase": "Pending",
                    "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": _stamp()}],
                    "containerStatuses": [{**status, "ready": False, "started": False, "state": waiting}],
                }
        elif age < elapsed + run.run_seconds:
            state = "Running"
            half = run.log[: run.log.rfind("\n", 0, len(run.log) // 2 + 1) + 1]
            self.emulator.logs[(self.namespace, name, container["name"], False)] = half
            new_status = {
                "phase": "Running",
                "conditions": [{"type": kind, "status": "True", "lastTransitionTime": _stamp()} for kind in _READY],
                "containerStatuses": [
                    {**status, "ready": True, "started": True, "state": {"running": {"startedAt": _stamp()}}}
                ],
            }
        else:
            state = "Succeeded" if run.exit_code == 0 else "Failed"
            self.emulator.logs[(self.namespace, name, container["name"], False)] = run.log
            terminated = {
                "exitCode": run.exit_code,
                "reason": "Completed" if run.exit_code == 0 else "Error",
                "message": run.message,
            }
            new_status = {
                "phase": state,
                "containerStatuses": [
                    {**status, "ready": False, "started": False, "state": {"terminated": terminated}}
                ],
            }
        if self.state.get(uid) == state:
            return
        self.state[uid] = state
        pod["status"] = new_status
        self.emulator.store(resource_of("Pod"), self.namespace, pod)
