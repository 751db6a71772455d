from __future__ import annotations

import json
import logging
import re
import shlex
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import Prefetch, QuerySet

from apps.accounts.models import AuditEvent, User
from apps.accounts.permissions import DELETE_DEPLOYMENT, DEPLOY, ROLL_BACK, TEST_ENDPOINT, environments_where, may
from apps.common.errors import ApplicationError, NotFoundError
from apps.deployments.choices import (
    CheckVerdict,
    DeploymentStatus,
    RevisionStatus,
    RolloutControl,
    StepName,
    StepStatus,
)
from apps.deployments.models import AnalysisCheck, Deployment, Environment, Revision, RevisionStep
from apps.deployments.rollouts.strategy import Strategy, strategy_of
from apps.registry import selectors as registry

__all__ = [
    "ServingHealth",
    "deployment_serving_health",
    "environment_list",
    "environment_get",
    "deploy_targets",
    "deployment_list",
    "deployment_get",
    "revision_get",
    "revision_numbered",
    "revision_number_parse",
    "revision_wait",
    "MAX_WAIT_SECONDS",
    "deployment_permissions",
    "DeploymentPermissions",
    "revisions_of_deployment",
    "revisions_of_version",
    "live_by_version",
    "input_example_read",
    "input_example_get",
    "score_snippet",
    "RolloutPermissions",
    "rollout_permissions",
    "CheckRow",
    "RolloutView",
    "rollout_key",
    "rollout_view",
    "STRATEGY_LABELS",
    "strategy_summary",
]

logger = logging.getLogger(__name__)


def environment_list() -> QuerySet[Environment]:
    return Environment.objects.all()


def deploy_targets(*, user: User) -> QuerySet[Environment]:
    """Where ``user`` may deploy directly: environments they may deploy to that are not gated (a gated one takes
    a promotion, ``promotions.selectors.promotion_targets``)."""
    return environments_where(user, DEPLOY).filter(gated=False)


def environment_get(*, name: str) -> Environment:
    """400 ``unknown_environment`` naming the environments there are, unless ``name`` is one of them."""
    environment = Environment.objects.filter(name=name).first()
    if environment is None:
        names = ", ".join(Environment.objects.values_list("name", flat=True)) or "none"
        raise ApplicationError(f"Unknown environment {name!r}; expected one of {names}.", code="unknown_environment")
    return environment


def deployment_list(*, include_deleted: bool = False) -> QuerySet[Deployment]:
    queryset = Deployment.objects.select_related(
        "environment", "live_revision", "created_by", "live_revision__requested_by"
    )
    return queryset if include_deleted else queryset.exclude(status=DeploymentStatus.DELETED)


def deployment_get(*, pk: int) -> Deployment:
    deployment = deployment_list(include_deleted=True).filter(pk=pk).first()
    if deployment is None:
        raise NotFoundError(f"Deployment {pk} does not exist.")
    return deployment


def revision_get(*, pk: int) -> Revision:
    revision = (
        Revision.objects.select_related(
            "deployment__environment",
            "deployment__live_revision",
            "requested_by",
            "rollback_of",
            "paused_by",
            "control_by",
        )
        .prefetch_related(Prefetch("steps", queryset=RevisionStep.objects.order_by("position")), "checks")
        .filter(pk=pk)
        .first()
    )
    if revision is None:
        raise NotFoundError(f"Revision {pk} does not exist.")
    return revision


def revision_numbered(*, deployment: Deployment, number: int) -> Revision:
    """The deployment's revision ``number`` (3 for r3), e.g. the target of a rollback."""
    revision = deployment.revisions.filter(number=number).first()
    if revision is None:
        raise NotFoundError(f"{deployment} has no revision r{number}.")
    return revision


_REVISION_REF = re.compile(r"^\s*[rR]?([1-9][0-9]{0,8})\s*$")


def revision_number_parse(value: object) -> int:
    """A deployment's revision number from how pages and the API name it: ``"r3"``, ``"3"`` or ``3``.
    400 ``invalid_revision`` naming the value otherwise."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**9:
        return value
    match = _REVISION_REF.match(value) if isinstance(value, str) else None
    if match is None:
        raise ApplicationError(
            f'{value!r} is not a revision: use its number as pages and the API show it, e.g. "r3" (or 3).',
            code="invalid_revision",
        )
    return int(match.group(1))


MAX_WAIT_SECONDS = 60
_WAIT_POLL_SECONDS = 0.25


def revision_wait(*, pk: int, seconds: float) -> Revision:
    """The revision once it is final (live, superseded, failed, rolled back) or once ``seconds`` (at most
    ``MAX_WAIT_SECONDS``) have passed, whichever comes first: the ``?wait=`` long-poll of the API, for scripts
    that would rather not poll. Reads the row a few times a second; the worker writes it."""
    deadline = time.monotonic() + min(max(seconds, 0.0), MAX_WAIT_SECONDS)
    revision = revision_get(pk=pk)
    while not revision.is_final and time.monotonic() < deadline:
        time.sleep(min(_WAIT_POLL_SECONDS, max(deadline - time.monotonic(), 0.0)))
        revision = revision_get(pk=pk)
    return revision


def revisions_of_deployment(*, deployment: Deployment) -> QuerySet[Revision]:
    return deployment.revisions.select_related("requested_by", "rollback_of").order_by("-number")


def revisions_of_version(*, model_name: str, version: str) -> QuerySet[Revision]:
    return Revision.objects.select_related("deployment__environment").filter(
        deployment__model_name=model_name, model_version=version
    )


def live_by_version(*, model_name: str) -> dict[str, list[Revision]]:
    """Where each version of ``model_name`` serves now: version -> its live revisions (with their deployment and
    environment), in environment order. One query."""
    deployments = (
        Deployment.objects.select_related("environment", "live_revision")
        .filter(model_name=model_name, live_revision__isnull=False)
        .exclude(status__in=[DeploymentStatus.DELETING, DeploymentStatus.DELETED])
        .order_by("environment__order", "environment__name")
    )
    live: dict[str, list[Revision]] = {}
    for deployment in deployments:
        revision = deployment.live_revision
        revision.deployment = deployment  # already loaded, with its environment
        live.setdefault(revision.model_version, []).append(revision)
    return live


# ---------------------------------------------------------------------------- scoring it
def input_example_read(model_dir: str | Path) -> dict | None:
    """The model's logged input example as a request body in MLflow's scoring protocol (``dataframe_split``,
    ``inputs``...), from its model directory: ``serving_input_example.json`` as MLflow writes it, else the older
    ``input_example.json`` wrapped as a ``dataframe_split``. None when the model was logged without one."""
    for name in ("serving_input_example.json", "input_example.json"):
        path = Path(model_dir, name)
        if path.is_file():
            example = json.loads(path.read_text())
            return example if name.startswith("serving") else {"dataframe_split": example}
    return None


def input_example_get(*, deployment: Deployment) -> dict | None:
    """The input example of the version ``deployment`` serves: from the live revision's model directory when this
    process can read it (the embedded default), else from the registry (one download per version, cached in
    DEPLOY_MODEL_CACHE). None when there is nothing live, no example, or the registry cannot be reached."""
    revision = deployment.live_revision
    if revision is None:
        return None
    if revision.model_dir and Path(revision.model_dir).is_dir():
        return input_example_read(revision.model_dir)
    try:
        model_dir = registry.model_files_get(
            name=deployment.model_name, version=revision.model_version, cache_dir=Path(settings.DEPLOY_MODEL_CACHE)
        )
    except (ApplicationError, OSError) as exc:
        logger.warning("no input example for %s: %s", deployment, exc)
        return None
    return input_example_read(model_dir)


def score_snippet(*, endpoint_url: str, example: dict) -> str:
    """A curl command that works when pasted: the example as the body, through a quoted here-document (no shell
    quoting of the JSON to get wrong)."""
    url = shlex.quote(f"{endpoint_url.rstrip('/')}/invocations")
    body = json.dumps(example, indent=None, separators=(", ", ": "))
    return f"curl -s -X POST {url} -H 'Content-Type: application/json' --data-binary @- <<'JSON'\n{body}\nJSON"


@dataclass(frozen=True)
class DeploymentPermissions:
    """What the deployment page offers the viewer. Only a hint: the services check the same rules on every call."""

    can_delete: bool
    rollback_to: frozenset[int]  # pks of the revisions the viewer may roll back to
    can_test: bool = False  # send a test request through the control plane


def deployment_permissions(*, deployment: Deployment, user: User, revisions: list[Revision]) -> DeploymentPermissions:
    """A rollout in progress is a passing state: the buttons stay, and the service answers "wait for it"."""
    from apps.deployments.services import rollback_refusal  # the services read through these selectors

    env = deployment.environment
    may_roll_back = may(user, ROLL_BACK, environment=env)
    return DeploymentPermissions(
        can_delete=may(user, DELETE_DEPLOYMENT, environment=env)
        and deployment.status not in (DeploymentStatus.DELETING, DeploymentStatus.DELETED),
        rollback_to=frozenset(r.pk for r in revisions if may_roll_back and rollback_refusal(deployment, r) is None),
        can_test=bool(deployment.endpoint_url) and may(user, TEST_ENDPOINT, environment=env),
    )


@dataclass(frozen=True)
class ServingHealth:
    """The live revision's serving process as the deployment page reports it. ``running`` is None where the
    target does not report it (Kubernetes: its controller restarts pods, the rollout shows readiness)."""

    running: bool | None
    restarts: int
    last_restart: datetime | None


def deployment_serving_health(*, deployment: Deployment) -> ServingHealth | None:
    """Whether the live revision's scoring process runs now (local target), and how often the control plane's
    reconcile restarted it (the ``deployment.restarted`` audit events). None when nothing is live."""
    from apps.deployments.pipeline import serving_spec, target_for  # pipeline reads through these selectors

    live = deployment.live_revision
    if live is None or deployment.status != DeploymentStatus.LIVE:
        return None
    target = target_for(deployment, live.config)
    running = target.is_running(serving_spec(live))
    restarts = AuditEvent.objects.filter(action="deployment.restarted", target_type="revision", target_id=live.pk)
    last = restarts.order_by("-occurred_at").values_list("occurred_at", flat=True).first()
    return ServingHealth(running=running, restarts=restarts.count(), last_restart=last)


# ------------------------------------------------------------------ a progressive rollout, as its page shows it
@dataclass(frozen=True)
class RolloutPermissions:
    """Which buttons the revision page offers the viewer: who may act (``permissions.may``) and what the rollout
    accepts now (``rollouts.control.control_refusal``). Only a hint: ``rollout_control`` checks both again."""

    promote: bool = False
    pause: bool = False
    resume: bool = False
    abort: bool = False

    @property
    def any(self) -> bool:
        return self.promote or self.pause or self.resume or self.abort


def rollout_permissions(*, revision: Revision, user: User) -> RolloutPermissions:
    from apps.deployments.rollouts.control import ABORT, PAUSE, PROMOTE, RESUME, control_refusal

    env = revision.deployment.environment
    steer = may(user, DEPLOY, environment=env)
    paused = revision.paused_at is not None
    return RolloutPermissions(
        promote=steer and revision.control != PROMOTE and control_refusal(revision, PROMOTE) is None,
        pause=steer and not paused and control_refusal(revision, PAUSE) is None,
        resume=steer and paused and control_refusal(revision, RESUME) is None,
        abort=may(user, ROLL_BACK, environment=env) and control_refusal(revision, ABORT) is None,
    )


@dataclass(frozen=True)
class CheckRow:
    """One stored analysis check, formatted for people."""

    checked_at: datetime
    interval: int  # 1-based
    weight: int
    metric: str
    metric_label: str
    subject: str
    value: str
    threshold: str
    verdict: str
    verdict_label: str
    message: str
    over: str  # a failed check: by how much it missed its threshold


@dataclass(frozen=True)
class RolloutView:
    """What the revision page shows of a progressive rollout. ``phase``: waiting (the traffic step has not
    started), skipped (nothing live to compare with), analysing, paused, promoting, aborting, promoted, aborted,
    rolled_back. ``key`` changes whenever the card must be drawn again (the page compares it with the API's
    answer: status, canary_weight, paused, number of checks)."""

    strategy: Strategy
    candidate: str
    stable: str
    phase: str
    weight: int  # the candidate's percent of client traffic, as the bar shows it
    mirror: int  # percent of live requests mirrored to the candidate (shadow, blue-green)
    interval: int  # the current analysis interval, 1-based (0: none yet)
    intervals: int
    due: datetime | None  # when the current interval is judged
    paused_by: str
    control_by: str
    skipped_because: str
    checks: list[CheckRow]  # newest first
    failed: list[CheckRow]  # the failed checks of the last analysis that failed
    figures: list[tuple[str, str, dict]]
    key: str
    permissions: RolloutPermissions
    summary: list[tuple[str, str]]

    @property
    def phase_label(self) -> str:
        return PHASES[self.phase][0]

    @property
    def phase_class(self) -> str:
        return PHASES[self.phase][1]

    @property
    def type_label(self) -> str:
        return STRATEGY_LABELS.get(self.strategy.type, self.strategy.type)

    @property
    def stable_weight(self) -> int:
        return 100 - self.weight

    @property
    def in_progress(self) -> bool:
        return self.phase in ("waiting", "analysing", "paused", "promoting", "aborting")


STRATEGY_LABELS = {"all_at_once": "All at once", "canary": "Canary", "blue_green": "Blue-green", "shadow": "Shadow"}
PHASES = {  # phase -> (what the page says, pill class)
    "waiting": ("Starts after the smoke test", "idle"),
    "skipped": ("All at once", "idle"),
    "analysing": ("Analysing", "run"),
    "paused": ("Paused", "warn"),
    "promoting": ("Promoting", "run"),
    "aborting": ("Aborting", "bad"),
    "promoted": ("Promoted", "ok"),
    "aborted": ("Aborted", "bad"),
    "rolled_back": ("Rolled back by analysis", "bad"),
}


def strategy_summary(strategy: Strategy, *, stable: str = "the old revision") -> list[tuple[str, str]]:
    """The plan in words, row by row, for the revision page."""
    seconds = f"{strategy.step_seconds} s"
    if strategy.type == "canary":
        plan = " → ".join(f"{w}%" for w in [*strategy.steps, 100]) + f" of traffic, each step held {seconds}"
    else:
        plan = (
            f"{strategy.intervals} interval{'s' if strategy.intervals != 1 else ''} of {seconds}, "
            f"{strategy.mirror_percent}% of live requests mirrored to it (its answers discarded)"
        )
        plan += (
            f"; then 100% in one switch, {stable} kept warm {strategy.keep_warm_seconds} s"
            if strategy.type == "blue_green"
            else "; then it takes all traffic"
        )
    limits = [f"error rate ≤ {strategy.max_error_rate * 100:g}%", f"p99 ≤ {strategy.max_p99_ms:g} ms"]
    if strategy.max_p50_ms is not None:
        limits.append(f"p50 ≤ {strategy.max_p50_ms:g} ms")
    if strategy.max_drift is not None:
        limits.append(f"drift (PSI) ≤ {strategy.max_drift:g}")
    if strategy.min_agreement is not None and strategy.mirror():
        limits.append(f"agreement ≥ {strategy.min_agreement * 100:g}% (from {strategy.min_compared} compared requests)")
    return [
        ("Strategy", STRATEGY_LABELS.get(strategy.type, strategy.type)),
        ("Plan", plan),
        ("Thresholds", ", ".join(limits)),
        (
            "Judged after",
            f"{strategy.min_requests} requests on it per interval (fails after waiting {strategy.max_wait_seconds} s)",
        ),
        (
            "Rolls back",
            f"when more than {strategy.max_failed_checks} interval{'s' if strategy.max_failed_checks != 1 else ''} "
            "fail, or at once when aborted",
        ),
    ]


def rollout_key(revision: Revision, checks: int) -> str:
    paused = "true" if revision.paused_at is not None else "false"
    return f"{revision.status}|{revision.canary_weight}|{paused}|{checks}"


def rollout_view(*, revision: Revision, user: User) -> RolloutView | None:
    """The rollout part of ``revision``'s page; None when it rolls out all at once. Reads the revision's prefetched
    steps and checks, plus one query for the permissions."""
    from apps.deployments.rollout_charts import analysis_figures

    strategy = strategy_of(revision.strategy)
    if not strategy.progressive:
        return None
    checks = sorted(revision.checks.all(), key=lambda c: (c.checked_at, c.pk))
    traffic = next((s for s in revision.steps.all() if s.name == StepName.TRAFFIC), None)
    phase = _rollout_phase(revision, strategy, traffic)
    weight = {"promoted": 100, "aborted": 0, "rolled_back": 0, "waiting": 0}.get(phase, revision.canary_weight)
    rows = [_check_row(c) for c in checks]
    last_failure = max((c.checked_at for c in checks if c.verdict == CheckVerdict.FAIL), default=None)
    due = None
    if phase == "analysing" and revision.step_started_at:
        due = revision.step_started_at + timedelta(seconds=strategy.step_seconds)
    stable = _stable_label(revision, checks)
    return RolloutView(
        strategy=strategy,
        candidate=revision.label,
        stable=stable,
        phase=phase,
        weight=weight,
        mirror=strategy.mirror() if phase not in ("promoted", "aborted", "rolled_back") else 0,
        interval=min(revision.rollout_step + 1, len(strategy.weights())) if revision.step_started_at or checks else 0,
        intervals=len(strategy.weights()),
        due=due,
        paused_by=revision.paused_by.get_username() if revision.paused_by else "",
        control_by=revision.control_by.get_username() if revision.control_by else "",
        skipped_because=traffic.message if traffic and traffic.status == StepStatus.SKIPPED else "",
        checks=rows[::-1],
        failed=[r for r, c in zip(rows, checks, strict=True) if c.checked_at == last_failure and r.over],
        figures=analysis_figures(checks, candidate=revision.label),
        key=rollout_key(revision, len(checks)),
        permissions=rollout_permissions(revision=revision, user=user),
        summary=strategy_summary(strategy, stable=stable),
    )


def _rollout_phase(revision: Revision, strategy: Strategy, traffic: RevisionStep | None) -> str:
    if revision.status in (RevisionStatus.LIVE, RevisionStatus.SUPERSEDED):
        return "skipped" if traffic and traffic.status == StepStatus.SKIPPED else "promoted"
    if revision.status in (RevisionStatus.FAILED, RevisionStatus.ROLLED_BACK):
        return "aborted" if revision.control == RolloutControl.ABORT else "rolled_back"
    if revision.control == RolloutControl.ABORT:
        return "aborting"
    if revision.control == RolloutControl.PROMOTE:
        return "promoting"
    if traffic is not None and traffic.status == StepStatus.SKIPPED:
        return "skipped"
    if traffic is None or traffic.status == StepStatus.PENDING:
        return "paused" if revision.paused_at else "waiting"
    if revision.paused_at is not None:
        return "paused"
    return "promoting" if revision.rollout_step >= len(strategy.weights()) else "analysing"


def _stable_label(revision: Revision, checks: list[AnalysisCheck]) -> str:
    live = revision.deployment.live_revision
    if live is not None and live.pk != revision.pk:
        return live.label
    others = [c.subject for c in checks if c.subject != revision.label]
    return others[-1] if others else "stable"


def _check_row(check: AnalysisCheck) -> CheckRow:
    from apps.deployments.rollout_charts import metric_info, value_text

    info = metric_info(check.metric)
    over = ""
    if check.verdict == CheckVerdict.FAIL and check.value is not None and check.threshold is not None:
        missed = check.value - check.threshold if info.limit == "max" else check.threshold - check.value
        unit = " points" if info.unit == "%" else ""
        amount = value_text(check.metric, missed).rstrip("%")
        over = f"{amount}{unit} {'over' if info.limit == 'max' else 'under'} the {info.limit}imum"
    return CheckRow(
        checked_at=check.checked_at,
        interval=check.step + 1,
        weight=check.weight,
        metric=check.metric,
        metric_label=info.label,
        subject=check.subject,
        value=value_text(check.metric, check.value),
        threshold=f"{info.limit} {value_text(check.metric, check.threshold)}" if check.threshold is not None else "—",
        verdict=check.verdict,
        verdict_label=check.get_verdict_display(),
        message=check.message,
        over=over,
    )
