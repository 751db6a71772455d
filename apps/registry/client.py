"""The only module that imports MLflow. Everything leaves here as the plain values of ``types.py``,
and every MLflow failure leaves as one of our domain errors, with credentials masked."""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import mlflow
import requests
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException, RestException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    PERMISSION_DENIED,
    RESOURCE_DOES_NOT_EXIST,
    UNAUTHENTICATED,
    ErrorCode,
)

from apps.common.errors import ApplicationError, NotFoundError, UnavailableError
from apps.common.uris import mask_uri, mask_uris_in
from apps.registry.breaker import TimeoutBreaker
from apps.registry.credentials import workload_identity_apply
from apps.registry.types import ColumnSpec, ModelSummary, Page, RunInfo, Signature, VersionInfo
from apps.registry.versions import version_number_check

__all__ = ["RegistryClient", "get_client", "alias_for_environment", "use_worker_budget"]

logger = logging.getLogger(__name__)

MODEL_ORDER = {
    "updated": "last_updated_timestamp DESC",
    "-updated": "last_updated_timestamp ASC",
    "name": "name ASC",
    "-name": "name DESC",
}
RUN_FETCH_THREADS = 8
# A workspace (non-UC) Databricks registry has no aliases: there a promotion moves a registered-model tag
# ``modelplane.alias.<environment>`` whose value is the version, and pages read it back as an alias.
ALIAS_TAG_PREFIX = "modelplane.alias."
UC_SEARCH_SCAN_PAGES = 20  # Unity Catalog cannot filter by name: at most this many server pages per search page
UC_SEARCH_SERVER_PAGE = 100
HOST_CREDS_SECONDS = 900  # resolve Databricks credentials (host metadata, OIDC discovery) once per 15 minutes


def alias_for_environment(environment: str, *, unity_catalog: bool) -> str:
    """The registry alias a promotion to ``environment`` moves. Unity Catalog accepts letters, digits and
    underscores only (and stores aliases lower-case), so ``prod-eu`` becomes ``prod_eu`` there."""
    if not unity_catalog:
        return environment
    alias = re.sub(r"[^a-z0-9_]", "_", environment.lower())
    return f"env_{alias}" if re.fullmatch(r"v\d+", alias) else alias


def _cached_host_creds(get_host_creds):
    """Databricks stores resolve credentials on every call (``WorkspaceClient()``: a fetch of
    ``/.well-known/databricks-config``, and OIDC discovery for OAuth); resolve them once per process and
    ``HOST_CREDS_SECONDS``. The SDK client behind them is cached by MLflow and refreshes OAuth tokens itself."""
    lock = threading.Lock()
    state: dict = {}

    def cached():
        with lock:
            if state.get("until", 0) < time.monotonic():
                state["creds"] = get_host_creds()
                state["until"] = time.monotonic() + HOST_CREDS_SECONDS
            return state["creds"]

    return cached


def _timed_out(exc: Exception) -> bool:
    """A read or connect timeout, raised by requests or wrapped in an MlflowException's message."""
    return isinstance(exc, requests.Timeout) or "timed out" in str(getattr(exc, "message", exc)).lower()


def _time(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms else None


def _quote(value: str) -> str:
    """A string literal for an MLflow filter. MLflow's filter grammar has no escapes, only two quote kinds."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ApplicationError("Names containing both ' and \" cannot be searched in an MLflow registry.")


@contextlib.contextmanager
def _page_token_checked(page_token: str | None) -> Iterator[None]:
    """A database-backed registry cannot decode a page token it never gave out (ValueError): that is the
    caller's mistake (400), not an unavailable registry."""
    try:
        yield
    except ValueError as exc:
        if not page_token:
            raise
        raise ApplicationError(
            "page_token is not a token this registry gave out: follow the `next` link, or start from the first page.",
            code="invalid_page_token",
        ) from exc


def _type_label(spec: dict) -> str:
    if spec.get("type") == "tensor" and "tensor-spec" in spec:
        tensor = spec["tensor-spec"]
        shape = ", ".join("n" if d == -1 else str(d) for d in tensor.get("shape", []))
        return f"tensor {tensor.get('dtype', '')} [{shape}]"
    return str(spec.get("type"))


class RegistryClient:
    """Reads (and, for promotions, writes aliases and tags to) one MLflow registry."""

    def __init__(self, *, tracking_uri: str, registry_uri: str, ui_url: str = "") -> None:
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri
        self.ui_url = (ui_url or (tracking_uri if tracking_uri.startswith(("http://", "https://")) else "")).rstrip("/")
        self.is_unity_catalog = registry_uri.startswith("databricks-uc")
        # The workspace registry: "databricks" or "databricks://profile" (not "databricks-uc").
        self.is_workspace_registry = registry_uri.split(":")[0] == "databricks"
        self.databricks_host = os.environ.get("DATABRICKS_HOST", "").rstrip("/")
        if not ui_url and (self.is_unity_catalog or self.is_workspace_registry):
            self.ui_url = self.databricks_host
        self._client: MlflowClient | None = None
        self._warm: set[str] = set()  # stores that made their first call (see _fan_out)
        self._breaker = TimeoutBreaker()

    @property
    def display_uri(self) -> str:
        return mask_uri(self.registry_uri)

    # ------------------------------------------------------------------ errors
    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        closed_in = 0.0 if _role["worker"] else self._breaker.seconds_open()
        if closed_in:
            raise UnavailableError(
                f"The MLflow registry at {self.display_uri} timed out repeatedly; not asked again for "
                f"{closed_in:.0f} s.",
                code="registry_unavailable",
            )
        try:
            yield
        except ApplicationError:
            raise
        except Exception as exc:
            if _timed_out(exc):
                self._breaker.timed_out()
                logger.warning("registry %s timed out", self.display_uri)
                raise UnavailableError(
                    f"The MLflow registry at {self.display_uri} timed out (no answer within "
                    f"{os.environ.get('MLFLOW_HTTP_REQUEST_TIMEOUT', '?')} s).",
                    code="registry_unavailable",
                ) from exc
            if isinstance(exc, RestException):  # the registry answered, with an error
                self._breaker.answered()
            raise self._error(exc, what) from exc
        self._breaker.answered()

    def _error(self, exc: Exception, what: str) -> ApplicationError:
        if isinstance(exc, MlflowException):
            return self._translate(exc, what)
        if isinstance(exc, (requests.RequestException, OSError)):
            logger.warning("registry %s unreachable: %s", self.display_uri, type(exc).__name__)
            return UnavailableError(
                f"The MLflow registry at {self.display_uri} cannot be reached ({type(exc).__name__}).",
                code="registry_unavailable",
            )
        # SQLAlchemy and driver errors surface here for database-backed registries
        logger.exception("registry %s failed", self.display_uri)
        return UnavailableError(
            f"The MLflow registry at {self.display_uri} failed: {type(exc).__name__}.", code="registry_unavailable"
        )

    def _translate(self, exc: MlflowException, what: str) -> ApplicationError:
        code = exc.error_code
        if code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return NotFoundError(f"{what} was not found in the MLflow registry.", code="not_found")
        if code == ErrorCode.Name(INVALID_PARAMETER_VALUE) and "unreachable" not in exc.message.lower():
            return ApplicationError(f"The MLflow registry refused the request: {exc.message}", code="invalid")
        if code in (ErrorCode.Name(PERMISSION_DENIED), ErrorCode.Name(UNAUTHENTICATED)):
            return UnavailableError(
                f"The MLflow registry at {self.display_uri} refused our credentials ({code}).",
                code="registry_forbidden",
            )
        logger.warning("registry %s error %s", self.display_uri, code)
        if "failed with exception" in exc.message or "Max retries exceeded" in exc.message:
            return UnavailableError(
                f"The MLflow registry at {self.display_uri} cannot be reached (connection failed).",
                code="registry_unavailable",
            )
        message = mask_uris_in(exc.message.splitlines()[0])[:300] if exc.message else code
        return UnavailableError(
            f"The MLflow registry at {self.display_uri} cannot be used: {message}", code="registry_unavailable"
        )

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            try:
                client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
                for store in (client._get_registry_client().store, client._tracking_client.store):
                    if hasattr(store, "get_host_creds") and (self.is_unity_catalog or self.is_workspace_registry):
                        store.get_host_creds = _cached_host_creds(store.get_host_creds)
                self._client = client
            except Exception as exc:
                message = mask_uris_in(str(getattr(exc, "message", exc)).splitlines()[0])[:300]
                raise UnavailableError(
                    f"The MLflow registry URI {self.display_uri} is misconfigured: {message}",
                    code="registry_misconfigured",
                ) from exc
        return self._client

    # ------------------------------------------------------------------ models
    def search_models(
        self, *, search: str = "", order: str = "updated", page_size: int = 25, page_token: str | None = None
    ) -> Page[ModelSummary]:
        """A page of models. On Unity Catalog the summaries carry no aliases or tags (its search has none: see
        ``get_models``), the order is the catalog's own, and a search term is matched here, not by the server."""
        if self.is_unity_catalog:
            return self._search_models_uc(search=search, page_size=page_size, page_token=page_token)
        filter_string = f"name ILIKE {_quote('%' + search + '%')}" if search else None
        order_by = [MODEL_ORDER.get(order, MODEL_ORDER["updated"])]
        if order_by[0].startswith("last_updated"):
            order_by.append("name ASC")  # a stable order, so page tokens never skip or repeat a model
        with self._errors("The model list"), _page_token_checked(page_token):
            result = self.client.search_registered_models(
                filter_string=filter_string, max_results=page_size, order_by=order_by, page_token=page_token or None
            )
        return Page(items=[self._model(rm) for rm in result], next_token=result.token or None)

    def _search_models_uc(self, *, search: str, page_size: int, page_token: str | None) -> Page[ModelSummary]:
        """Unity Catalog refuses ``filter`` and ``order_by``. Without a term this is one server page; with one,
        server pages are scanned (at most ``UC_SEARCH_SCAN_PAGES``) and matched by name here. The token we hand
        out is the server's token plus how many matches of that server page were already shown."""
        server_token, skip = _uc_token_decode(page_token) if search else (page_token, 0)
        if not search:
            with self._errors("The model list"):
                result = self.client.search_registered_models(max_results=page_size, page_token=server_token)
            return Page(items=[self._model(rm) for rm in result], next_token=result.token or None)
        needle, found = search.lower(), []
        for _ in range(UC_SEARCH_SCAN_PAGES):
            with self._errors("The model list"):
                result = self.client.search_registered_models(
                    max_results=UC_SEARCH_SERVER_PAGE, page_token=server_token
                )
            matches = [rm for rm in result if needle in rm.name.lower()][skip:]
            room = page_size - len(found)
            found += matches[:room]
            if len(matches) > room:
                return Page([self._model(rm) for rm in found], _uc_token_encode(server_token, skip + room))
            server_token, skip = result.token or None, 0
            if not server_token or len(found) == page_size:
                break
        next_token = _uc_token_encode(server_token, 0) if server_token else None
        return Page(items=[self._model(rm) for rm in found], next_token=next_token)

    def get_models(self, names: list[str]) -> dict[str, ModelSummary | None]:
        """Several models at once, fetched concurrently (Unity Catalog's search leaves out aliases and tags,
        so a models page gets them here). A model that is gone maps to None."""
        return self._fan_out(self.get_model, names, "registry")

    def get_model(self, name: str) -> ModelSummary:
        with self._errors(f"Model {name!r}"):
            return self._model(self.client.get_registered_model(name))

    def _model(self, rm: RegisteredModel) -> ModelSummary:
        latest = rm.latest_versions or []
        versions = [int(v.version) for v in latest]
        # Unity Catalog search results raise when asked for aliases or tags (they are methods there).
        raw_aliases = rm.aliases if not callable(rm.aliases) else {}
        raw_tags = dict(rm.tags) if not callable(rm.tags) and rm.tags else {}
        aliases = raw_aliases if isinstance(raw_aliases, dict) else {a.alias: a.version for a in raw_aliases or []}
        if self.is_workspace_registry:
            aliases = {k[len(ALIAS_TAG_PREFIX) :]: v for k, v in raw_tags.items() if k.startswith(ALIAS_TAG_PREFIX)}
            raw_tags = {k: v for k, v in raw_tags.items() if not k.startswith(ALIAS_TAG_PREFIX)}
        if self.is_unity_catalog:
            versions = []  # Unity Catalog has no "latest": the highest aliased version stands in for it
        if aliases:
            versions += [int(v) for v in aliases.values()]
        return ModelSummary(
            name=rm.name,
            description=rm.description or "",
            created_at=_time(rm.creation_timestamp),
            updated_at=_time(rm.last_updated_timestamp),
            aliases={k: str(v) for k, v in sorted(aliases.items())},
            tags=raw_tags,
            latest_version=str(max(versions)) if versions else None,
            stages={v.current_stage: str(v.version) for v in latest if v.current_stage not in (None, "", "None")},
        )

    # ------------------------------------------------------------------ versions
    def search_versions(self, name: str, *, page_size: int = 25, page_token: str | None = None) -> Page[VersionInfo]:
        # Unity Catalog refuses order_by: its pages come in its own order, each page is sorted here.
        order_by = None if self.is_unity_catalog else ["version_number DESC"]
        with self._errors(f"Versions of {name!r}"), _page_token_checked(page_token):
            result = self.client.search_model_versions(
                filter_string=f"name = {_quote(name)}",
                max_results=page_size,
                order_by=order_by,
                page_token=page_token or None,
            )
        items = sorted((self._version(mv) for mv in result), key=lambda v: -int(v.version))
        return Page(items=items, next_token=result.token or None)

    def get_version(self, name: str, version: str) -> VersionInfo:
        version_number_check(name, version)  # 404 for what no registry can hold, before asking
        with self._errors(f"Version {version} of model {name!r}"):
            return self._version(self.client.get_model_version(name, version))

    def get_versions(self, name: str, versions: list[str]) -> dict[str, VersionInfo | None]:
        """Several versions of one model, fetched concurrently; one that does not exist maps to None."""
        return self._fan_out(lambda version: self.get_version(name, version), versions, "registry")

    def _version(self, mv: ModelVersion) -> VersionInfo:
        stage = mv.current_stage if mv.current_stage not in (None, "", "None") else None
        return VersionInfo(
            name=mv.name,
            version=str(mv.version),
            description=mv.description or "",
            created_at=_time(mv.creation_timestamp),
            updated_at=_time(mv.last_updated_timestamp),
            stage=stage,
            status=str(mv.status or ""),
            aliases=sorted(mv.aliases or []) if not callable(mv.aliases) else [],
            tags=dict(mv.tags or {}) if not callable(mv.tags) else {},
            run_id=mv.run_id or None,
            source=mv.source or "",
            user=mv.user_id or "",
        )

    # ------------------------------------------------------------------ runs and signatures
    def get_run(self, run_id: str) -> RunInfo:
        where = " (a Unity Catalog version may point to a run tracked in another workspace)" * self.is_unity_catalog
        with self._errors(f"Run {run_id!r}{where}"):
            run = self.client.get_run(run_id)
        info, data = run.info, run.data
        return RunInfo(
            run_id=info.run_id,
            experiment_id=str(info.experiment_id),
            name=info.run_name or "",
            status=str(info.status),
            started_at=_time(info.start_time),
            ended_at=_time(info.end_time),
            metrics=dict(sorted(data.metrics.items())),
            params=dict(sorted(data.params.items())),
            tags={k: v for k, v in sorted(data.tags.items()) if not k.startswith("mlflow.")},
            ui_url=self.run_ui_url(str(info.experiment_id), info.run_id),
        )

    def run_ui_url(self, experiment_id: str, run_id: str) -> str | None:
        """Where a run opens in MLflow's own UI: Databricks serves it at ``/ml/experiments/...``."""
        if not self.ui_url:
            return None
        if self.tracking_uri.split(":")[0] == "databricks":
            return f"{self.ui_url}/ml/experiments/{experiment_id}/runs/{run_id}"
        return f"{self.ui_url}/#/experiments/{experiment_id}/runs/{run_id}"

    def get_runs(self, run_ids: list[str]) -> dict[str, RunInfo | None]:
        """Several runs at once, fetched concurrently. A run that is gone or unreadable maps to None."""
        return self._fan_out(self.get_run, run_ids, "tracking")

    def _fan_out(self, read, keys: list[str], store: str) -> dict:
        """``read`` each key concurrently, a missing one as None. A store's first call runs alone: MLflow
        creates its Databricks SDK client (and OAuth token) lazily and unlocked, so concurrent first calls
        would each make one."""

        def fetch(key: str):
            try:
                return read(key)
            except NotFoundError:
                return None

        unique = list(dict.fromkeys(keys))
        found = {}
        if unique and store not in self._warm:
            found[unique[0]] = fetch(unique[0])
            self._warm.add(store)
        rest = [key for key in unique if key not in found]
        if len(rest) <= 1:
            return found | {key: fetch(key) for key in rest}
        with ThreadPoolExecutor(max_workers=min(RUN_FETCH_THREADS, len(rest))) as pool:
            return found | dict(zip(rest, pool.map(fetch, rest), strict=False))

    def get_signature(self, name: str, version: str) -> Signature | None:
        with self._errors(f"The signature of {name!r} version {version}"):
            info = mlflow.models.get_model_info(f"models:/{name}/{version}")
        signature = info.signature
        if signature is None:
            return None

        def columns(schema) -> list[ColumnSpec]:
            if schema is None:
                return []
            return [
                ColumnSpec(name=item.get("name"), type=_type_label(item), required=item.get("required", True))
                for item in schema.to_dict()
            ]

        return Signature(
            inputs=columns(signature.inputs), outputs=columns(signature.outputs), params=columns(signature.params)
        )

    # ------------------------------------------------------------------ writes (promotions only)
    def set_alias(self, name: str, version: str, *, alias: str, tags: dict[str, str] | None = None) -> None:
        """Point ``alias`` at ``version`` (moving it from wherever it was) and set ``tags`` on that version.

        The version is read first, so an unknown one fails before anything is written; the alias moves last,
        so a failure part-way leaves the old alias in place (a retry writes the same tags again). On the
        workspace registry, which has no aliases, the alias is the model tag ``modelplane.alias.<alias>``.
        Safe to run twice: setting an alias or a tag to the value it has changes nothing.
        """
        self.get_version(name, version)  # checks the number (404 for what no registry can hold), then that it exists
        with self._errors(f"Version {version} of model {name!r}"):
            for key, value in (tags or {}).items():
                self.client.set_model_version_tag(name, version, key, str(value))
            if self.is_workspace_registry:
                self.client.set_registered_model_tag(name, ALIAS_TAG_PREFIX + alias, version)
            else:
                self.client.set_registered_model_alias(name, alias, version)

    def download_model(self, name: str, version: str, dest: str) -> str:
        """Download the model directory of a version (with its MLmodel file) into ``dest``."""
        with self._errors(f"The files of {name!r} version {version}"):
            return mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}", dst_path=dest, tracking_uri=self.tracking_uri
            )

    def download_run_artifact(self, run_id: str, path: str, dest: str) -> str:
        """Download one artifact (a file or a directory) of a run into ``dest``; returns its local path."""
        # MLflow turns every failure of a run's artifact download (an outage too) into "does not exist": the run
        # is read first, so an outage or refused credentials surface as such, and a run tracked in another
        # workspace as "not found".
        self.get_run(run_id)
        with self._errors(f"The artifact {path!r} of run {run_id!r}"):
            return mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=path, dst_path=dest, tracking_uri=self.tracking_uri
            )


def _uc_token_encode(server_token: str | None, skip: int) -> str:
    raw = json.dumps({"t": server_token or "", "s": skip}).encode()
    return "uc." + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _uc_token_decode(token: str | None) -> tuple[str | None, int]:
    if not token:
        return None, 0
    try:
        if not token.startswith("uc."):
            raise ValueError(token)
        body = token[3:]
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        return (data["t"] or None), int(data["s"])
    except (ValueError, KeyError, TypeError):
        raise ApplicationError(
            "page_token is not a token this registry gave out: follow the `next` link, or start from the first page.",
            code="invalid_page_token",
        ) from None


_role = {"worker": False}


def use_worker_budget() -> None:
    """Called when a Celery worker starts: registry calls there may wait longer than a page would."""
    _role["worker"] = True


@functools.cache
def _client_for(tracking_uri: str, registry_uri: str, ui_url: str) -> RegistryClient:
    return RegistryClient(tracking_uri=tracking_uri, registry_uri=registry_uri, ui_url=ui_url)


def get_client() -> RegistryClient:
    """The client for the configured registry (one per URI, reused across requests)."""
    from django.conf import settings

    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(settings.MLFLOW_HTTP_TIMEOUT)
    # A page makes one try (a person waits, and a hanging registry would hold the web thread twice as long).
    retries = settings.MLFLOW_HTTP_RETRIES if _role["worker"] else settings.MLFLOW_HTTP_PAGE_RETRIES
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(retries)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    # Unity Catalog model files in customer storage (ADLS, S3, GCS) need that cloud's storage SDK unless they are
    # read through the workspace's Files API; the Files API needs nothing more, so it is the default here.
    os.environ.setdefault("MLFLOW_USE_DATABRICKS_SDK_MODEL_ARTIFACTS_REPO_FOR_UC", "true")
    # The Databricks SDK retries (honouring Retry-After) for MLFLOW_DATABRICKS_ENDPOINT_HTTP_RETRY_TIMEOUT
    # seconds, 500 by default: a page gets a short budget, a Celery worker a longer one.
    workload_identity_apply()
    budget = settings.DATABRICKS_WORKER_RETRY_SECONDS if _role["worker"] else settings.DATABRICKS_RETRY_SECONDS
    os.environ["MLFLOW_DATABRICKS_ENDPOINT_HTTP_RETRY_TIMEOUT"] = str(budget)
    mlflow.set_tracking_uri(settings.MLFLOW_TRACKING_URI)
    mlflow.set_registry_uri(settings.MLFLOW_REGISTRY_URI)
    return _client_for(settings.MLFLOW_TRACKING_URI, settings.MLFLOW_REGISTRY_URI, settings.MLFLOW_UI_URL)
