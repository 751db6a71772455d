"""What a promotion request compares: the candidate version next to what the target environment served when the
request was made (its live revision's version; with nothing deployed, the version the environment's alias named).

``promotion_request`` takes this comparison once and keeps it on the request (``PromotionRequest.comparison``, the
JSON of :func:`comparison_to_json`), so a request shows what its reviewers were shown for ever, also after the
candidate went live and the live side became the candidate itself. Reads the registry; writes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.common.errors import NotFoundError
from apps.deployments.models import Environment, Revision
from apps.registry import selectors as registry
from apps.registry.metrics import MetricDirections, metric_verdict
from apps.registry.types import Signature

__all__ = ["MetricRow", "Change", "Comparison", "comparison_build", "comparison_to_json", "comparison_from_json"]

SNAPSHOT_FORMAT = 1


@dataclass(frozen=True)
class MetricRow:
    name: str
    candidate: float | None
    live: float | None
    direction: str  # "lower" or "higher": which way is better (apps/registry/metrics.py)
    verdict: str | None = None  # "better", "worse", "same"; None when one side is missing

    @property
    def delta(self) -> float | None:
        return None if self.candidate is None or self.live is None else self.candidate - self.live


@dataclass(frozen=True)
class Change:
    name: str
    change: str  # added, removed, changed/retyped
    before: str | None
    after: str | None


@dataclass(frozen=True)
class Comparison:
    """The candidate against the version the target served (``live_version``, None when it served none)."""

    candidate_version: str
    live_version: str | None
    live_from: str  # "revision": the live revision's version; "alias": the environment's alias; "" for none
    live_revision: dict | None  # {"id", "label", "since" (a datetime)} of the revision that served then
    metrics: list[MetricRow]
    params: list[Change]
    signature: list[Change]
    taken_at: datetime | None
    notes: list[str] = field(default_factory=list)  # what could not be read when it was taken
    recorded: bool = True  # False: computed now, for a request made before requests kept their comparison


def _number(value: float | None) -> float | None:
    """JSON (and PostgreSQL's jsonb) has no NaN or infinity: an unusable metric is kept as unknown."""
    return None if value is None or math.isnan(value) or math.isinf(value) else float(value)


def _signature_changes(before: Signature | None, after: Signature | None) -> list[Change]:
    old = {c.name or f"#{i}": c.type for i, c in enumerate(before.inputs)} if before else {}
    new = {c.name or f"#{i}": c.type for i, c in enumerate(after.inputs)} if after else {}
    changes = [Change(n, "added", None, new[n]) for n in new if n not in old]
    changes += [Change(n, "removed", old[n], None) for n in old if n not in new]
    changes += [Change(n, "retyped", old[n], new[n]) for n in new if n in old and old[n] != new[n]]
    return changes


def _param_changes(before: dict[str, str], after: dict[str, str]) -> list[Change]:
    names = sorted(set(before) | set(after))
    return [
        Change(
            n, "added" if n not in before else "removed" if n not in after else "changed", before.get(n), after.get(n)
        )
        for n in names
        if before.get(n) != after.get(n)
    ]


def comparison_build(
    *, model_name: str, version: str, environment: Environment, live_revision: Revision | None
) -> Comparison:
    """Compare ``version`` with what ``environment`` serves (``live_revision``), reading the registry now.

    Raises the registry's errors for the model and the candidate; a live version gone from the registry is a
    note, not an error."""
    model = registry.registered_model_get(name=model_name)
    candidate = registry.model_version_detail_get(name=model_name, version=version)
    directions = MetricDirections.of_model(model.tags)
    live_version, live_from = None, ""
    if live_revision is not None:
        live_version, live_from = live_revision.model_version, "revision"
    elif alias_version := model.aliases.get(registry.environment_alias(environment.name)):
        live_version, live_from = str(alias_version), "alias"
    notes: list[str] = []
    live = None
    if live_version is not None:
        try:
            live = registry.model_version_detail_get(name=model_name, version=live_version)
        except NotFoundError:
            notes.append(f"v{live_version}, which {environment.name} served, is no longer in the registry.")
    if candidate.run is None and candidate.version.run_id:
        notes.append(f"The source run of v{version} could not be read: its metrics and params are missing.")
    if live and live.run is None and live.version.run_id:
        notes.append(f"The source run of v{live_version} could not be read: its metrics and params are missing.")
    for detail in (candidate, live):
        if detail and detail.signature_error:
            notes.append(f"The signature of v{detail.version.version} could not be read: {detail.signature_error}")
    new_metrics = candidate.run.metrics if candidate.run else {}
    old_metrics = live.run.metrics if live and live.run else {}
    metrics = []
    for name in sorted(set(new_metrics) | set(old_metrics)):
        new, old, direction = _number(new_metrics.get(name)), _number(old_metrics.get(name)), directions(name)
        metrics.append(MetricRow(name, new, old, direction, metric_verdict(new, old, direction)))
    params, signature = [], []
    if live is not None:  # with nothing live in the target there is nothing to compare against
        params = _param_changes(live.run.params if live.run else {}, candidate.run.params if candidate.run else {})
        signature = _signature_changes(live.signature, candidate.signature)
    revision = None
    if live_revision is not None:
        since = live_revision.finished_at or live_revision.updated_at
        revision = {"id": live_revision.pk, "label": live_revision.label, "since": since}
    return Comparison(
        candidate_version=candidate.version.version,
        live_version=live_version,
        live_from=live_from,
        live_revision=revision,
        metrics=metrics,
        params=params,
        signature=signature,
        taken_at=timezone.now(),
        notes=notes,
    )


def comparison_to_json(comparison: Comparison) -> dict:
    """The snapshot kept on the request; its shape is the API's ``comparison`` (``ComparisonSerializer``)."""
    return {
        "format": SNAPSHOT_FORMAT,
        "taken_at": comparison.taken_at.isoformat() if comparison.taken_at else None,
        "candidate_version": comparison.candidate_version,
        "live_version": comparison.live_version,
        "live_from": comparison.live_from,
        "live_revision": _revision_json(comparison.live_revision),
        "metrics": [
            {
                "name": m.name,
                "candidate": m.candidate,
                "live": m.live,
                "delta": _number(m.delta),
                "better": m.direction,
                "verdict": m.verdict,
            }
            for m in comparison.metrics
        ],
        "params": [vars(c) for c in comparison.params],
        "signature": [vars(c) for c in comparison.signature],
        "notes": list(comparison.notes),
    }


def _revision_json(revision: dict | None) -> dict | None:
    if revision is None:
        return None
    since = revision["since"]
    return {**revision, "since": since.isoformat() if isinstance(since, datetime) else since}


def comparison_from_json(data: dict) -> Comparison:
    taken_at = parse_datetime(data["taken_at"]) if data.get("taken_at") else None
    revision = data.get("live_revision")
    if revision is not None:
        revision = {**revision, "since": parse_datetime(revision["since"]) if revision.get("since") else None}
    return Comparison(
        candidate_version=data["candidate_version"],
        live_version=data.get("live_version"),
        live_from=data.get("live_from", ""),
        live_revision=revision,
        metrics=[MetricRow(m["name"], m["candidate"], m["live"], m["better"], m["verdict"]) for m in data["metrics"]],
        params=[Change(**c) for c in data["params"]],
        signature=[Change(**c) for c in data["signature"]],
        taken_at=taken_at,
        notes=list(data.get("notes", [])),
    )
