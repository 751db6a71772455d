"""What a rollout's pods and their events say: why the new revision cannot run, or None while it still may.

Pure functions of the pods and events the Kubernetes target read (``diagnose_pods``), turned into sentences a
person can act on: an image pull that kept failing, a crash loop with its last log lines, pods no node fits (and
whether the cluster autoscaler is adding one).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

__all__ = ["diagnose_pods", "latest_warning", "conditions", "unschedulable", "involved"]

Manifest = dict[str, Any]


_PULL_REASONS = (
    (r"unauthorized|\b401\b|authentication required|no basic auth credentials", "unauthorized"),
    (r"denied|\b403\b|forbidden", "access denied"),
    (r"not found|manifest unknown|\b404\b|does not exist", "not found"),
    (r"no such host|i/o timeout|connection refused|dial tcp", "registry unreachable"),
    (r"invalidimagename|invalid reference format", "invalid image name"),
)


def _short_pull_reason(text: str, image: str) -> str:
    """ "unauthorized", "not found"...: the kubelet's long message reduced to what to fix."""
    # Image references are quoted in kubelet messages; a tag or repository must not look like a reason.
    lowered = re.sub(r'"[^"]*"', '""', text).replace(image, "").lower()
    for pattern, reason in _PULL_REASONS:
        if re.search(pattern, lowered):
            return reason
    return text.strip()[:300] or "unknown reason"


def conditions(obj: Manifest) -> dict[str, dict[str, Any]]:
    return {c.get("type", ""): c for c in (obj.get("status") or {}).get("conditions") or []}


def _age_seconds(timestamp: str | None, now: datetime) -> float:
    if not timestamp:
        return 0.0
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return (now - then).total_seconds()


def diagnose_pods(
    pods: list[Manifest],
    events: list[Manifest],
    *,
    read_log: Callable[[str, str], str],
    unschedulable_grace_seconds: float = 0.0,
    image_pull_grace_seconds: float = 0.0,
    waiting_since: dict[str, datetime] | None = None,
    now: datetime | None = None,
) -> str | None:
    """A sentence naming why the rollout cannot succeed, or None while it still may.

    ``events`` are the namespace's events about these pods; ``read_log(pod, container)`` returns the last
    log lines of the container's previous (crashed) run. The kubelet retries failed image pulls, so a pull
    fails the rollout only once it kept failing for ``image_pull_grace_seconds``. A pod the scheduler
    cannot place fails after ``unschedulable_grace_seconds`` unless the cluster autoscaler triggered a
    scale-up for it (its TriggeredScaleUp event counts as progress). ``waiting_since`` (kept by the caller
    between looks) holds when each pod was first seen failing to pull or to be scheduled."""
    now = now or datetime.now(UTC)
    since = waiting_since if waiting_since is not None else {}
    events_by_pod: dict[str, list[Manifest]] = {}
    for event in events:
        events_by_pod.setdefault((event.get("involvedObject") or {}).get("name", ""), []).append(event)
    for pod in pods:
        name = pod["metadata"]["name"]
        pod_events = events_by_pod.get(name, [])
        pulling = _pull_failure(pod)
        if pulling is None:
            since.pop(f"pull:{name}", None)
        elif pulling != "InvalidImageName" and _waited(since, f"pull:{name}", now) < image_pull_grace_seconds:
            continue
        found = _diagnose_containers(pod, pod_events, read_log, _waited(since, f"pull:{name}", now))
        if not found and unschedulable(pod):
            waited = min(_waited(since, f"schedule:{name}", now), _unschedulable_age(pod, now))
            found = _diagnose_scheduling(pod_events, waited >= unschedulable_grace_seconds, unschedulable(pod))
        elif not found:
            since.pop(f"schedule:{name}", None)
        if found:
            return found
    return None


def latest_warning(events: list[Manifest]) -> str:
    """The message of the most recent Warning event (readiness probe failures, say), or ""."""
    warnings = [e for e in events if e.get("type") == "Warning" and e.get("message")]
    warnings.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return warnings[-1]["message"].strip() if warnings else ""


_PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName")


def _pull_failure(pod: Manifest) -> str | None:
    """The waiting reason of a container whose image cannot be pulled, or None."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason", "")
        if reason in _PULL_FAILURES:
            return reason
    return None


def _diagnose_containers(
    pod: Manifest, events: list[Manifest], read_log: Callable[[str, str], str], pull_failing_for: float = 0.0
) -> str | None:
    status = pod.get("status") or {}
    images = {c["name"]: c.get("image", "") for c in (pod.get("spec") or {}).get("containers") or []}
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason", "")
        image = images.get(cs.get("name", ""), "") or cs.get("image", "")
        if reason in _PULL_FAILURES:
            failed = [e.get("message", "") for e in events if e.get("reason") in ("Failed", "ErrImagePull")]
            detail = " ".join([waiting.get("message", ""), *failed])
            message = f"image pull failed: {_short_pull_reason(detail.strip() or reason, image)} for {image}"
            if pull_failing_for >= 1:
                message += f" (still failing after {pull_failing_for:.0f} s"
                message += f"; the kubelet: {failed[-1].strip()[:300]})" if failed else ")"
            return message
        if reason == "CrashLoopBackOff":
            return f"container crash-looping: {_crash_detail(pod, cs, read_log)}"
        if reason in ("CreateContainerConfigError", "CreateContainerError", "RunContainerError"):
            return f"container cannot start: {waiting.get('message') or reason}"
    return None


def _crash_detail(pod: Manifest, cs: dict[str, Any], read_log: Callable[[str, str], str]) -> str:
    terminated = (cs.get("lastState") or {}).get("terminated") or {}
    lines = read_log(pod["metadata"]["name"], cs.get("name", "")).strip()
    if terminated.get("reason") == "OOMKilled":
        prefix = "out of memory (OOMKilled)"
        return f"{prefix}; last log lines:\n{lines}" if lines else prefix
    if lines:
        return lines
    if terminated:
        return f"exited with code {terminated.get('exitCode')} ({terminated.get('reason') or 'no reason given'})"
    return "no log output"


def involved(event: Manifest) -> str:
    return (event.get("involvedObject") or {}).get("name", "")


def _waited(since: dict[str, datetime], key: str, now: datetime) -> float:
    return (now - since.setdefault(key, now)).total_seconds()


def unschedulable(pod: Manifest) -> dict[str, Any] | None:
    """The pod's PodScheduled condition when the scheduler found no node for it, else None."""
    scheduled = conditions(pod).get("PodScheduled")
    if not scheduled or scheduled.get("status") != "False" or scheduled.get("reason") != "Unschedulable":
        return None
    return scheduled


def _unschedulable_age(pod: Manifest, now: datetime) -> float:
    return _age_seconds((unschedulable(pod) or {}).get("lastTransitionTime"), now)


def _diagnose_scheduling(events: list[Manifest], grace_over: bool, scheduled: dict[str, Any] | None) -> str | None:
    # A cluster autoscaler may still add a node: give it a while before calling the rollout failed, and once it
    # reports a triggered scale-up, leave the verdict to the Deployment's progress deadline.
    if scheduled is None or not grace_over or any(e.get("reason") == "TriggeredScaleUp" for e in events):
        return None
    message = scheduled.get("message") or next(
        (e.get("message", "") for e in reversed(events) if e.get("reason") == "FailedScheduling"), ""
    )
    refused = next((e.get("message", "") for e in reversed(events) if e.get("reason") == "NotTriggerScaleUp"), "")
    return f"pods cannot be scheduled: {message or 'no node fits'}" + (
        f" (cluster autoscaler: {refused})" if refused else ""
    )
