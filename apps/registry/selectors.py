"""Reads of the MLflow registry, for pages and the API alike.

Cost per call is fixed however big the registry is: a models page is one registry call; a model page is
one call for the model, one for its page of versions, and the source runs of that page fetched
concurrently. Immutable things (finished runs, signatures) are cached.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from django.conf import settings
from django.core.cache import cache

from apps.common.errors import ApplicationError, NotFoundError
from apps.registry.client import alias_for_environment, get_client
from apps.registry.metrics import MetricDirections, best_of
from apps.registry.types import ModelSummary, Page, RunInfo, Signature, VersionInfo

__all__ = [
    "registered_model_list",
    "registered_model_get",
    "model_version_list",
    "model_version_get",
    "model_version_detail_get",
    "run_get",
    "runs_get",
    "signature_get",
    "registry_display_uri",
    "registry_is_unity_catalog",
    "model_page_get",
    "model_files_get",
    "environment_alias",
    "model_cache_forget",
    "models_get",
    "model_versions_compare",
    "ModelPage",
    "VersionDetail",
    "VersionsComparison",
]

FINISHED_RUN_STATES = {"FINISHED", "FAILED", "KILLED"}


def _canonical(name: str) -> str:
    """Unity Catalog stores names lower-case and answers to any case: one cache entry per model."""
    return name.lower() if settings.MLFLOW_REGISTRY_URI.startswith("databricks-uc") else name


def _key(*parts: str) -> str:
    digest = hashlib.sha256("\x1f".join((settings.MLFLOW_REGISTRY_URI, *parts)).encode()).hexdigest()
    return f"registry:{digest}"


def registry_display_uri() -> str:
    return get_client().display_uri


def registry_is_unity_catalog() -> bool:
    """Unity Catalog has no sort order and no stages; pages leave those choices out."""
    return get_client().is_unity_catalog


def registered_model_list(
    *, search: str = "", order: str = "updated", page_token: str | None = None, page_size: int | None = None
) -> Page[ModelSummary]:
    client = get_client()
    page = client.search_models(
        search=search.strip(), order=order, page_token=page_token, page_size=page_size or settings.REGISTRY_PAGE_SIZE
    )
    if not client.is_unity_catalog or not page.items:
        return page
    # Unity Catalog's search has no aliases or tags: read each listed model (concurrently, briefly cached).
    models = models_get(names=[m.name for m in page.items])
    return Page(items=[models.get(m.name) or m for m in page.items], next_token=page.next_token)


def models_get(*, names: list[str]) -> dict[str, ModelSummary | None]:
    """Models by name, each from the cache for ``REGISTRY_MODEL_CACHE_SECONDS`` after its first read."""
    keys = {name: _key("model", _canonical(name)) for name in names}
    cached = cache.get_many(list(keys.values()))
    found = {name: cached[key] for name, key in keys.items() if key in cached}
    missing = [name for name in names if name not in found]
    fetched = get_client().get_models(missing) if missing else {}
    cache.set_many({keys[n]: m for n, m in fetched.items() if m}, timeout=settings.REGISTRY_MODEL_CACHE_SECONDS)
    return {**found, **fetched}


def model_cache_forget(*, name: str) -> None:
    """Drop the cached aliases/tags of a model after we moved one of them."""
    cache.delete(_key("model", _canonical(name)))


def registered_model_get(*, name: str) -> ModelSummary:
    return get_client().get_model(name)


def environment_alias(environment: str) -> str:
    """The alias a promotion to ``environment`` moves in this registry (Unity Catalog: no ``-``, lower-case)."""
    return alias_for_environment(environment, unity_catalog=get_client().is_unity_catalog)


def model_version_list(*, name: str, page_token: str | None = None, page_size: int | None = None) -> Page[VersionInfo]:
    return get_client().search_versions(name, page_token=page_token, page_size=page_size or settings.REGISTRY_PAGE_SIZE)


def model_version_get(*, name: str, version: str) -> VersionInfo:
    return get_client().get_version(name, version)


def runs_get(*, run_ids: list[str]) -> dict[str, RunInfo | None]:
    """Source runs by id; finished runs come from the cache after the first read."""
    found: dict[str, RunInfo | None] = {}
    keys = {run_id: _key("run", run_id) for run_id in run_ids if run_id}
    cached = cache.get_many(list(keys.values()))
    missing = [run_id for run_id, key in keys.items() if key not in cached]
    found.update({run_id: cached[key] for run_id, key in keys.items() if key in cached})
    fetched = get_client().get_runs(missing) if missing else {}
    cache.set_many(
        {keys[run_id]: run for run_id, run in fetched.items() if run and run.status in FINISHED_RUN_STATES},
        timeout=settings.REGISTRY_CACHE_SECONDS,
    )
    found.update(fetched)
    return found


def run_get(*, run_id: str) -> RunInfo:
    run = runs_get(run_ids=[run_id]).get(run_id)
    if run is None:
        raise NotFoundError(f"Run {run_id!r} was not found in the MLflow tracking server.")
    return run


def signature_get(*, name: str, version: str) -> Signature | None:
    """The signature logged with a model version. A version's files never change, so it is cached long."""
    key = _key("signature", _canonical(name), version)
    hit = cache.get(key, default=...)
    if hit is not ...:
        return hit
    signature = get_client().get_signature(name, version)
    cache.set(key, signature, timeout=settings.REGISTRY_CACHE_SECONDS * 12)
    return signature


def model_files_get(*, name: str, version: str, cache_dir: Path) -> Path:
    """A local copy of a version's model directory. Versions never change, so one download serves every
    rollout; the copy appears atomically, so a worker killed mid-download leaves no half directory."""
    digest = hashlib.sha256(f"{settings.MLFLOW_REGISTRY_URI}\x1f{_canonical(name)}\x1f{version}".encode()).hexdigest()
    digest = digest[:16]
    final = cache_dir / digest
    if (final / "MLmodel").is_file():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".partial-") as tmp:
        downloaded = Path(get_client().download_model(name, version, tmp))
        if not (downloaded / "MLmodel").is_file():
            raise NotFoundError(f"{name!r} version {version} has no MLmodel file; it cannot be served.")
        try:
            downloaded.rename(final)
        except OSError:
            if not (final / "MLmodel").is_file():  # another worker won the race with the same content
                raise
    return final


@dataclass(frozen=True)
class ModelPage:
    model: ModelSummary
    versions: Page[VersionInfo]
    runs: dict[str, RunInfo | None]
    metric_names: list[str]
    signature: Signature | None
    signature_version: str | None
    signature_error: str = ""  # why the signature could not be read (the version's files are unreadable)
    directions: dict[str, str] = field(default_factory=dict)  # metric -> "lower"/"higher" is better
    best: dict[str, set[str]] = field(default_factory=dict)  # metric -> the versions on this page best at it
    more_metrics: int = 0  # metrics logged beyond the MAX_METRIC_COLUMNS shown

    def metric_values(self, name: str) -> dict[str, float | None]:
        """``name``'s value per version on this page (None: not logged, or the run is unreadable)."""
        values = {}
        for v in self.versions.items:
            run = self.runs.get(v.run_id) if v.run_id else None
            values[v.version] = run.metrics.get(name) if run else None
        return values


def signature_or_reason(*, name: str, version: str) -> tuple[Signature | None, str]:
    """The signature, or why it cannot be read: a version whose files are unreadable (storage SDK missing,
    storage refusing us) still shows, with its signature marked unavailable, instead of failing the page."""
    try:
        return signature_get(name=name, version=version), ""
    except ApplicationError as exc:
        return None, exc.message


MAX_METRIC_COLUMNS = 6


def model_page_get(*, name: str, page_token: str | None = None) -> ModelPage:
    model = registered_model_get(name=name)
    versions = model_version_list(name=name, page_token=page_token)
    # Some registries leave aliases out of version searches; the model's alias map is authoritative.
    by_version: dict[str, list[str]] = {}
    for alias, number in model.aliases.items():
        by_version.setdefault(number, []).append(alias)
    items = [replace(v, aliases=sorted(set(v.aliases) | set(by_version.get(v.version, [])))) for v in versions.items]
    versions = Page(items=items, next_token=versions.next_token)
    runs = runs_get(run_ids=[v.run_id for v in versions.items if v.run_id])
    all_metrics = sorted({m for run in runs.values() if run for m in run.metrics})
    metric_names = all_metrics[:MAX_METRIC_COLUMNS]
    signature_version = model.latest_version or (versions.items[0].version if versions.items else None)
    signature, reason = signature_or_reason(name=name, version=signature_version) if signature_version else (None, "")
    directions = MetricDirections.of_model(model.tags)
    page = ModelPage(
        model,
        versions,
        runs,
        metric_names,
        signature,
        signature_version,
        reason,
        directions={m: directions(m) for m in metric_names},
        more_metrics=len(all_metrics) - len(metric_names),
    )
    for m in metric_names:
        page.best[m] = best_of(page.metric_values(m), page.directions[m])
    return page


@dataclass(frozen=True)
class VersionDetail:
    version: VersionInfo
    run: RunInfo | None
    signature: Signature | None
    signature_error: str = ""


def model_version_detail_get(*, name: str, version: str) -> VersionDetail:
    info = model_version_get(name=name, version=version)
    run = runs_get(run_ids=[info.run_id]).get(info.run_id) if info.run_id else None
    signature, reason = signature_or_reason(name=name, version=info.version)
    return VersionDetail(version=info, run=run, signature=signature, signature_error=reason)


MAX_COMPARED_VERSIONS = 10


@dataclass(frozen=True)
class ComparedMetric:
    name: str
    direction: str  # "lower" or "higher" is better
    values: dict[str, float | None]  # version -> value
    best: set[str]  # the versions with the best value (ties: all of them)


@dataclass(frozen=True)
class ComparedParam:
    name: str
    values: dict[str, str | None]  # version -> value
    differs: bool


@dataclass(frozen=True)
class VersionsComparison:
    model: ModelSummary
    versions: list[VersionInfo]  # oldest first
    runs: dict[str, RunInfo | None]  # version -> its source run
    metrics: list[ComparedMetric]
    params: list[ComparedParam]


def model_versions_compare(*, name: str, versions: list[str]) -> VersionsComparison:
    """Several versions side by side: every source-run metric (with the best value by its direction) and every
    param. Costs one model read, the versions and their runs fetched concurrently (runs cached once finished).
    An unknown version is a 404 naming it; more than ``MAX_COMPARED_VERSIONS`` is refused."""
    wanted = sorted(dict.fromkeys(v.strip() for v in versions if v.strip()), key=lambda v: (len(v), v))
    if not wanted:
        raise ApplicationError("Choose the versions to compare, e.g. versions=1,2,3.", code="no_versions")
    if len(wanted) > MAX_COMPARED_VERSIONS:
        raise ApplicationError(
            f"Compare at most {MAX_COMPARED_VERSIONS} versions at once; {len(wanted)} were asked for.",
            code="too_many_versions",
        )
    model = registered_model_get(name=name)
    found = get_client().get_versions(name, wanted)
    if missing := [v for v in wanted if found.get(v) is None]:
        raise NotFoundError(f"{name!r} has no version {', '.join(missing)}.")
    infos = [found[v] for v in wanted]
    run_of = runs_get(run_ids=[v.run_id for v in infos if v.run_id])
    runs = {v.version: run_of.get(v.run_id) if v.run_id else None for v in infos}
    directions = MetricDirections.of_model(model.tags)
    metrics = []
    for metric in sorted({m for run in runs.values() if run for m in run.metrics}):
        values = {v: run.metrics.get(metric) if run else None for v, run in runs.items()}
        direction = directions(metric)
        metrics.append(ComparedMetric(metric, direction, values, best_of(values, direction)))
    params = []
    for param in sorted({p for run in runs.values() if run for p in run.params}):
        values = {v: run.params.get(param) if run else None for v, run in runs.items()}
        params.append(ComparedParam(param, values, len(set(values.values())) > 1))
    return VersionsComparison(model, infos, runs, metrics, params)
