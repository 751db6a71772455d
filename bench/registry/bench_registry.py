"""Benchmark the models list against the bare MLflow call, on a registry of 10,000 models.

Run from the repository root::

    .venv/bin/python bench/registry/bench_registry.py              # build (once) and measure
    .venv/bin/python bench/registry/bench_registry.py --rebuild    # throw the cached registry away first
    .venv/bin/python bench/registry/bench_registry.py --http       # also against a real `mlflow server`
    .venv/bin/python bench/registry/bench_registry.py --profile    # pyinstrument the page and the API

The registry is a SQLite file with MLflow's own schema (created by MLflow's migrations), filled with bulk
inserts and cached under ``var/bench/``. See README.md next to this file.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / "var" / "bench"
REGISTRY_DB = BENCH_DIR / "registry.sqlite3"
REGISTRY_META = BENCH_DIR / "registry.json"
REGISTRY_URI = f"sqlite:///{REGISTRY_DB}"

MODELS = 10_000
VERSIONS = 3
PAGE_SIZE = 25
SEARCH = "model-12"
ORDER_BY = ["last_updated_timestamp DESC", "name ASC"]  # what the app sends for its default order "updated"
SEED = 20261127
DAY_MS = 86_400_000
EPOCH_MS = 1_764_547_200_000  # 2025-12-01, so the registry is the same on every build

TEAMS = ["fraud", "churn", "ranking", "search", "pricing", "forecast", "recsys", "ads", "risk", "nlp", "vision", "ltv"]
KINDS = ["xgb", "lgbm", "bert", "resnet", "linear", "gbdt", "two-tower", "prophet", "tabnet", "rf"]
USERS = ["alice@example.com", "bob@example.com", "mlops-ci@example.com", "dana@example.com"]
DESCRIPTIONS = [
    "Nightly retrained on the last 90 days of events.",
    "Owned by the {team} team; see the runbook before promoting.",
    "Candidate replacement for the rules engine.",
    "Distilled from the large {kind} baseline, 4x cheaper to serve.",
]


# ---------------------------------------------------------------------------------------------- building
def model_name(i: int, rng: random.Random) -> str:
    return f"{rng.choice(TEAMS)}-{rng.choice(KINDS)}-model-{i}"


def build_registry(path: Path, models: int = MODELS) -> dict:
    """A fresh registry: MLflow creates the schema, then one transaction of bulk inserts fills it."""
    from mlflow import MlflowClient

    started = time.perf_counter()
    for stale in (path, path.with_name(path.name + "-journal"), path.with_name(path.name + "-wal")):
        stale.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{path}"
    # Instantiating the stores runs MLflow's migrations, so the tables below are exactly MLflow's.
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_registered_models(max_results=1)
    client.search_experiments(max_results=1)
    schema_seconds = time.perf_counter() - started

    rng = random.Random(SEED)
    rms, mvs, rm_tags, mv_tags, aliases = [], [], [], [], []
    for i in range(models):
        name = model_name(i, rng)
        team = name.split("-")[0]
        kind = name.split("-model-")[0].split("-", 1)[1]
        created = EPOCH_MS - rng.randrange(0, 700 * DAY_MS)
        updated = created
        legacy_stages = rng.random() < 0.15  # some models still use the deprecated stages
        for v in range(1, VERSIONS + 1):
            v_created = created + (v - 1) * rng.randrange(DAY_MS // 2, 30 * DAY_MS)
            v_updated = v_created + rng.randrange(0, DAY_MS)
            updated = max(updated, v_updated)
            stage = "None"
            if legacy_stages:
                stage = {VERSIONS - 1: "Production", VERSIONS: "Staging"}.get(v, "Archived")
            source = f"s3://ml-models/{team}/{name}/v{v}"
            mvs.append(
                (name, v, v_created, v_updated, None, rng.choice(USERS), stage, source, None, "READY", None, None,
                 source)
            )  # fmt: skip
            if rng.random() < 0.3:
                mv_tags.append(("validation_status", rng.choice(["passed", "passed", "failed"]), name, v))
        if rng.random() < 0.35:
            champion = rng.randrange(1, VERSIONS + 1)
            aliases.append(("champion", champion, name))
            if champion < VERSIONS and rng.random() < 0.6:
                aliases.append(("challenger", VERSIONS, name))
            updated += rng.randrange(0, 3 * DAY_MS)  # setting an alias bumps the model's last update
        if rng.random() < 0.6:
            rm_tags.append(("team", team, name))
            rm_tags.append(("task", rng.choice(["classification", "regression", "ranking", "embedding"]), name))
            if rng.random() < 0.3:
                rm_tags.append(("pii", rng.choice(["false", "true"]), name))
        description = rng.choice(DESCRIPTIONS).format(team=team, kind=kind) if rng.random() < 0.4 else None
        rms.append((name, created, updated, description))

    con = sqlite3.connect(path)
    try:
        with con:
            con.executemany(
                "INSERT INTO registered_models (name, creation_time, last_updated_time, description) VALUES (?,?,?,?)",
                rms,
            )
            con.executemany(
                "INSERT INTO model_versions (name, version, creation_time, last_updated_time, description, user_id,"
                " current_stage, source, run_id, status, status_message, run_link, storage_location)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                mvs,
            )
            con.executemany("INSERT INTO registered_model_tags (key, value, name) VALUES (?,?,?)", rm_tags)
            con.executemany("INSERT INTO model_version_tags (key, value, name, version) VALUES (?,?,?,?)", mv_tags)
            con.executemany("INSERT INTO registered_model_aliases (alias, version, name) VALUES (?,?,?)", aliases)
        con.execute("ANALYZE")
    finally:
        con.close()

    meta = {
        "mlflow": _mlflow_version(),
        "models": models,
        "versions": len(mvs),
        "registered_model_tags": len(rm_tags),
        "model_version_tags": len(mv_tags),
        "aliases": len(aliases),
        "schema_seconds": round(schema_seconds, 2),
        "build_seconds": round(time.perf_counter() - started, 2),
    }
    _check_registry(uri, meta)
    REGISTRY_META.write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _check_registry(uri: str, meta: dict) -> None:
    """Read the inserted rows back through MLflow, so a schema mismatch fails the build, not the numbers."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    con = sqlite3.connect(REGISTRY_DB)
    (name,) = con.execute("SELECT name FROM registered_model_aliases ORDER BY name LIMIT 1").fetchone()
    count = con.execute("SELECT count(*) FROM registered_models").fetchone()[0]
    con.close()
    assert count == meta["models"], count
    model = client.get_registered_model(name)
    assert model.aliases and "champion" in model.aliases, model
    versions = client.search_model_versions(f"name = '{name}'")
    assert sorted(int(v.version) for v in versions) == list(range(1, VERSIONS + 1)), versions


def _mlflow_version() -> str:
    import mlflow

    return mlflow.__version__


def ensure_registry(rebuild: bool) -> tuple[dict, bool]:
    if not rebuild and REGISTRY_DB.exists() and REGISTRY_META.exists():
        meta = json.loads(REGISTRY_META.read_text())
        if meta.get("mlflow") == _mlflow_version() and meta.get("models") == MODELS:
            return meta, False
    return build_registry(REGISTRY_DB), True


# ---------------------------------------------------------------------------------------------- the app
def setup_django(registry_uri: str) -> None:
    """The real settings module, pointed at the bench registry and a bench database under var/bench/."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "controlplane.settings"
    os.environ["MODELPLANE_VAR_DIR"] = str(BENCH_DIR)
    os.environ["DATABASE_URL"] = f"sqlite:///{BENCH_DIR / 'controlplane.sqlite3'}"
    os.environ["MLFLOW_TRACKING_URI"] = registry_uri
    os.environ["MLFLOW_REGISTRY_URI"] = registry_uri
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    if not (Path(settings.STATIC_ROOT) / "staticfiles.json").exists():  # production static storage needs it
        call_command("collectstatic", interactive=False, verbosity=0)


def app_clients():
    """A logged-in browser client and a token-authenticated API client, both through the full middleware."""
    from django.test import Client

    from apps.accounts.choices import Role
    from apps.accounts.models import User
    from apps.accounts.services import api_token_create

    user, _ = User.objects.get_or_create(username="bench", defaults={"role": Role.VIEWER})
    browser = Client()
    browser.force_login(user)
    key = api_token_create(user=user, name=f"bench {time.time():.0f}").key
    api = Client(HTTP_AUTHORIZATION=f"Token {key}")
    return browser, api


# ---------------------------------------------------------------------------------------------- measuring
@dataclass
class Variant:
    label: str
    call: Callable[[], list[str]]  # returns the model names it got, to check every variant sees the same page


@dataclass
class Result:
    case: str
    label: str
    samples: list[float]
    cpu: list[float]  # process CPU time: steadier than wall time on a shared machine, but blind to a server

    @property
    def p50(self) -> float:
        return statistics.median(self.samples)

    @property
    def cpu50(self) -> float:
        return statistics.median(self.cpu)

    @property
    def p95(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


PAGE_NAME = re.compile(r'<a class="name" href="[^"]*">([^<]*)</a>')
PAGE_NEXT = re.compile(r'<a class="button [^"]*" href="([^"]*)" rel="next">')


def page_names(response) -> list[str]:
    assert response.status_code == 200, (response.status_code, response.content[:500])
    return [html.unescape(n) for n in PAGE_NAME.findall(response.content.decode())]


def api_names(response) -> list[str]:
    assert response.status_code == 200, (response.status_code, response.content[:500])
    return [m["name"] for m in response.json()["results"]]


def bare_variant(client, filter_string: str | None, token: str | None) -> Variant:
    def call() -> list[str]:
        result = client.search_registered_models(
            filter_string=filter_string, max_results=PAGE_SIZE, order_by=ORDER_BY, page_token=token
        )
        return [m.name for m in result]

    return Variant("bare MlflowClient", call)


def cases(mlflow_client, browser, api) -> dict[str, list[Variant]]:
    """For each case the same page four ways. Next-page URLs come from the page's own Next link / `next`."""
    from apps.registry import selectors

    def selector(search: str, token: str | None) -> Variant:
        return Variant(
            "selector", lambda: [m.name for m in selectors.registered_model_list(search=search, page_token=token).items]
        )

    def get(client, url: str, parse) -> Variant:
        return Variant(
            "page GET /models/" if parse is page_names else "api GET /api/v1/models/", lambda: parse(client.get(url))
        )

    out: dict[str, list[Variant]] = {}
    for case, search in (("first page", ""), (f"search {SEARCH!r}", SEARCH)):
        filter_string = f"name ILIKE '%{search}%'" if search else None
        page_url = "/models/" + (f"?q={search}" if search else "")
        api_url = "/api/v1/models/" + (f"?search={search}" if search else "")
        first = mlflow_client.search_registered_models(
            filter_string=filter_string, max_results=PAGE_SIZE, order_by=ORDER_BY
        )
        out[case] = [
            bare_variant(mlflow_client, filter_string, None),
            selector(search, None),
            get(browser, page_url, page_names),
            get(api, api_url, api_names),
        ]
        # page 2, reached the way a user or API client reaches it
        page_next = html.unescape(PAGE_NEXT.search(browser.get(page_url).content.decode()).group(1))
        api_next = urlsplit(api.get(api_url).json()["next"])
        out[f"{case}, next page"] = [
            bare_variant(mlflow_client, filter_string, first.token),
            selector(search, first.token),
            get(browser, "/models/" + page_next, page_names),
            get(api, f"{api_next.path}?{api_next.query}", api_names),
        ]
    return out


def measure(case_variants: dict[str, list[Variant]], iterations: int, warmup: int) -> list[Result]:
    """Interleaved: each round calls every variant once, so drift on a busy machine hits them alike."""
    results: list[Result] = []
    for case, variants in case_variants.items():
        expected = variants[0].call()
        assert len(expected) == PAGE_SIZE, (case, len(expected))
        for variant in variants:
            got = variant.call()
            assert got == expected, (case, variant.label, got[:3], expected[:3])
        for _ in range(warmup):
            for variant in variants:
                variant.call()
        wall: dict[str, list[float]] = {v.label: [] for v in variants}
        cpu: dict[str, list[float]] = {v.label: [] for v in variants}
        for _ in range(iterations):
            for variant in variants:
                started, started_cpu = time.perf_counter(), time.process_time()
                variant.call()
                wall[variant.label].append((time.perf_counter() - started) * 1000)
                cpu[variant.label].append((time.process_time() - started_cpu) * 1000)
        results += [Result(case, label, wall[label], cpu[label]) for label in wall]
    return results


def table(results: list[Result], title: str) -> str:
    bare = {r.case: r for r in results if r.label.startswith("bare")}
    lines = [
        f"{title}",
        "",
        "| case | variant | p50 ms | p95 ms | p50 / bare | CPU p50 ms | CPU / bare |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio, cpu_ratio = r.p50 / bare[r.case].p50, r.cpu50 / bare[r.case].cpu50
        lines.append(
            f"| {r.case} | {r.label} | {r.p50:.1f} | {r.p95:.1f} | {ratio:.2f}x | {r.cpu50:.1f} | {cpu_ratio:.2f}x |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- mlflow server
@contextlib.contextmanager
def mlflow_server(db: Path) -> Iterator[str]:
    """A real `mlflow server` (one worker) on a copy of the bench registry, started as the tests start one."""
    from tests.registries import mlflow_server as start_server

    copy = BENCH_DIR / "server.sqlite3"
    shutil.copyfile(db, copy)
    with start_server(BENCH_DIR, backend_uri=f"sqlite:///{copy}", timeout=120) as url:
        yield url


# ---------------------------------------------------------------------------------------------- profiling
def _cpu_ms(call: Callable[[], object], iterations: int) -> float:
    """p50 process CPU time of one call: the parts below are all in-process, and CPU time shrugs off other load."""
    for _ in range(5):
        call()
    samples = []
    for _ in range(iterations):
        started = time.process_time()
        call()
        samples.append((time.process_time() - started) * 1000)
    return statistics.median(samples)


def breakdown(browser, iterations: int) -> None:
    """The page's extra cost split into its parts, each timed alone (p50 CPU ms, SQLite registry)."""
    from django.contrib.humanize.templatetags.humanize import naturaltime
    from django.template.defaultfilters import date
    from django.template.loader import render_to_string
    from django.urls import reverse

    from apps.registry import selectors
    from apps.registry.client import get_client
    from apps.registry.views import ORDER_LABELS

    page = selectors.registered_model_list()
    request = browser.get("/models/").wsgi_request
    context = {
        "models": page.items, "search": "", "order": "updated", "orders": ORDER_LABELS, "page_number": 1,
        "next_query": "?page_token=abc&history=-", "previous_query": None, "registry_uri": "sqlite:///registry",
    }  # fmt: skip
    n = max(iterations, 100)
    nothing = "zzz-no-such-model"
    rows = {
        "selector, first page (MLflow call + conversion)": _cpu_ms(selectors.registered_model_list, iterations),
        "render registry/model_list.html, 25 rows": _cpu_ms(
            lambda: render_to_string("registry/model_list.html", context, request=request), n
        ),
        "render registry/model_list.html, 0 rows": _cpu_ms(
            lambda: render_to_string("registry/model_list.html", {**context, "models": []}, request=request), n
        ),
        "  of which 50x {% url %} (2 per row)": _cpu_ms(
            lambda: [
                (
                    reverse("registry:model_detail", kwargs={"name": m.name}),
                    reverse("registry:version_detail", kwargs={"name": m.name, "version": m.latest_version}),
                )
                for m in page.items
            ],
            n,
        ),
        "  of which 25x |naturaltime": _cpu_ms(lambda: [naturaltime(m.updated_at) for m in page.items], n),
        "  of which 25x |date:'Y-m-d H:i:s T'": _cpu_ms(
            lambda: [date(m.updated_at, "Y-m-d H:i:s T") for m in page.items], n
        ),
        "get_client() (called twice per page)": _cpu_ms(get_client, n),
        "page with no match (pipeline + empty render + 1 cheap MLflow call)": _cpu_ms(
            lambda: browser.get(f"/models/?q={nothing}"), iterations
        ),
        "selector with no match (1 cheap MLflow call)": _cpu_ms(
            lambda: selectors.registered_model_list(search=nothing), iterations
        ),
    }
    print("\nwhere the page's time goes (each part timed alone, p50 CPU ms)\n")
    print("| part | CPU p50 ms |\n|---|---:|")
    for label, value in rows.items():
        print(f"| {label} | {value:.2f} |")


def profile(browser, api, iterations: int) -> None:
    from pyinstrument import Profiler  # not a project dependency: `.venv/bin/pip install pyinstrument`

    breakdown(browser, iterations)
    for label, client, url in (("page", browser, "/models/"), ("api", api, "/api/v1/models/")):
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for _ in range(iterations):
            client.get(url)
        profiler.stop()
        print(f"\n==================== pyinstrument: {label} GET {url} x{iterations}")
        print(profiler.output_text(unicode=False, color=False, show_all=False))


# ---------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached 10k-model registry")
    parser.add_argument("-n", "--iterations", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--http", action="store_true", help="also measure against a real `mlflow server`")
    parser.add_argument("--profile", action="store_true", help="pyinstrument the page and the API (SQLite)")
    args = parser.parse_args()
    os.chdir(ROOT)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)

    meta, built = ensure_registry(args.rebuild)
    how = "built" if built else "cached, --rebuild to rebuild"
    print(
        f"registry {REGISTRY_DB.relative_to(ROOT)} ({how}): {meta['models']} models, {meta['versions']} versions,"
        f" {meta['aliases']} aliases, {meta['registered_model_tags']} model tags, mlflow {meta['mlflow']};"
        f" build took {meta['build_seconds']} s (schema {meta['schema_seconds']} s)"
    )

    setup_django(REGISTRY_URI)
    from django.test import override_settings
    from mlflow import MlflowClient

    browser, api = app_clients()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"cpus: {os.cpu_count()}, load average: {load}, iterations: {args.iterations}, warmup: {args.warmup},"
        f" page size {PAGE_SIZE}\n"
    )

    client = MlflowClient(tracking_uri=REGISTRY_URI, registry_uri=REGISTRY_URI)
    results = measure(cases(client, browser, api), args.iterations, args.warmup)
    print(table(results, "SQLite registry (sqlite:///var/bench/registry.sqlite3)"))

    if args.http:
        with mlflow_server(REGISTRY_DB) as url, override_settings(MLFLOW_TRACKING_URI=url, MLFLOW_REGISTRY_URI=url):
            http_client = MlflowClient(tracking_uri=url, registry_uri=url)
            results = measure(cases(http_client, browser, api), args.iterations, args.warmup)
            print()
            print(table(results, f"HTTP registry (mlflow server, 1 worker, at {url})"))

    if args.profile:
        profile(browser, api, args.iterations)


if __name__ == "__main__":
    main()
