"""The only module that imports MLflow. Everything leaves here as the plain values of ``types.py``,
and every MLflow failure leaves as one of our domain errors, with credentials masked."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
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
from apps.registry.types import ColumnSpec, ModelSummary, Page, RunInfo, Signature, VersionInfo
from apps.registry.versions import version_number_check

__all__ = ["RegistryClient", "get_client"]

logger = logging.getLogger(__name__)

MODEL_ORDER = {
    "updated": "last_updated_timestamp DESC",
    "-updated": "last_updated_timestamp ASC",
    "name": "name ASC",
    "-name": "name DESC",
}
RUN_FETCH_THREADS = 8


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
        self._client: MlflowClient | None = None

    @property
    def display_uri(self) -> str:
        return mask_uri(self.registry_uri)

    # ------------------------------------------------------------------ errors
    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except ApplicationError:
            raise
        except RestException as exc:
            raise self._translate(exc, what) from exc
        except MlflowException as exc:
            raise self._translate(exc, what) from exc
        except (requests.RequestException, OSError) as exc:
            logger.warning("registry %s unreachable: %s", self.display_uri, type(exc).__name__)
            raise UnavailableError(
                f"The MLflow registry at {self.display_uri} cannot be reached ({type(exc).__name__}).",
                code="registry_unavailable",
            ) from exc
        except Exception as exc:  # SQLAlchemy and driver errors surface here for database-backed registries
            logger.exception("registry %s failed", self.display_uri)
            raise UnavailableError(
                f"The MLflow registry at {self.display_uri} failed: {type(exc).__name__}.", code="registry_unavailable"
            ) from exc

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
                self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
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
        filter_string = f"name ILIKE {_quote('%' + search + '%')}" if search else None
        order_by = [MODEL_ORDER.get(order, MODEL_ORDER["updated"])]
        if order_by[0].startswith("last_updated"):
            order_by.append("name ASC")  # a stable order, so page tokens never skip or repeat a model
        with self._errors("The model list"), _page_token_checked(page_token):
            result = self.client.search_registered_models(
                filter_string=filter_string, max_results=page_size, order_by=order_by, page_token=page_token or None
            )
        return Page(items=[self._model(rm) for rm in result], next_token=result.token or None)

    def get_model(self, name: str) -> ModelSummary:
        with self._errors(f"Model {name!r}"):
            return self._model(self.client.get_registered_model(name))

    def _model(self, rm: RegisteredModel) -> ModelSummary:
        latest = rm.latest_versions or []
        versions = [int(v.version) for v in latest]
        aliases = rm.aliases if isinstance(rm.aliases, dict) else {a.alias: a.version for a in rm.aliases or []}
        if aliases:
            versions += [int(v) for v in aliases.values()]
        return ModelSummary(
            name=rm.name,
            description=rm.description or "",
            created_at=_time(rm.creation_timestamp),
            updated_at=_time(rm.last_updated_timestamp),
            aliases={k: str(v) for k, v in sorted(aliases.items())},
            tags=dict(rm.tags or {}),
            latest_version=str(max(versions)) if versions else None,
            stages={v.current_stage: str(v.version) for v in latest if v.current_stage not in (None, "", "None")},
        )

    # ------------------------------------------------------------------ versions
    def search_versions(self, name: str, *, page_size: int = 25, page_token: str | None = None) -> Page[VersionInfo]:
        with self._errors(f"Versions of {name!r}"), _page_token_checked(page_token):
            result = self.client.search_model_versions(
                filter_string=f"name = {_quote(name)}",
                max_results=page_size,
                order_by=["version_number DESC"],
                page_token=page_token or None,
            )
        return Page(items=[self._version(mv) for mv in result], next_token=result.token or None)

    def get_version(self, name: str, version: str) -> VersionInfo:
        version_number_check(name, version)  # 404 for what no registry can hold, before asking
        with self._errors(f"Version {version} of model {name!r}"):
            return self._version(self.client.get_model_version(name, version))

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
            aliases=sorted(mv.aliases or []),
            tags=dict(mv.tags or {}),
            run_id=mv.run_id or None,
            source=mv.source or "",
            user=mv.user_id or "",
        )

    # ------------------------------------------------------------------ runs and signatures
    def get_run(self, run_id: str) -> RunInfo:
        with self._errors(f"Run {run_id!r}"):
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
            ui_url=f"{self.ui_url}/#/experiments/{info.experiment_id}/runs/{info.run_id}" if self.ui_url else None,
        )

    def get_runs(self, run_ids: list[str]) -> dict[str, RunInfo | None]:
        """Several runs at once, fetched concurrently. A run that is gone or unreadable maps to None."""

        def fetch(run_id: str) -> RunInfo | None:
            try:
                return self.get_run(run_id)
            except NotFoundError:
                return None

        unique = list(dict.fromkeys(run_ids))
        if len(unique) <= 1:
            return {run_id: fetch(run_id) for run_id in unique}
        with ThreadPoolExecutor(max_workers=min(RUN_FETCH_THREADS, len(unique))) as pool:
            return dict(zip(unique, pool.map(fetch, unique), strict=False))

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

        Safe to run twice: setting an alias or a tag to the value it has changes nothing.
        """
        version_number_check(name, version)  # 404 for what no registry can hold, before asking
        with self._errors(f"Version {version} of model {name!r}"):
            for key, value in (tags or {}).items():
                self.client.set_model_version_tag(name, version, key, str(value))
            self.client.set_registered_model_alias(name, alias, version)

    def download_model(self, name: str, version: str, dest: str) -> str:
        """Download the model directory of a version (with its MLmodel file) into ``dest``."""
        with self._errors(f"The files of {name!r} version {version}"):
            return mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}", dst_path=dest, tracking_uri=self.tracking_uri
            )

    def download_run_artifact(self, run_id: str, path: str, dest: str) -> str:
        """Download one artifact (a file or a directory) of a run into ``dest``; returns its local path."""
        with self._errors(f"The artifact {path!r} of run {run_id!r}"):
            return mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=path, dst_path=dest, tracking_uri=self.tracking_uri
            )


@functools.cache
def _client_for(tracking_uri: str, registry_uri: str, ui_url: str) -> RegistryClient:
    return RegistryClient(tracking_uri=tracking_uri, registry_uri=registry_uri, ui_url=ui_url)


def get_client() -> RegistryClient:
    """The client for the configured registry (one per URI, reused across requests)."""
    from django.conf import settings

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(settings.MLFLOW_HTTP_TIMEOUT))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(settings.MLFLOW_HTTP_RETRIES))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    mlflow.set_tracking_uri(settings.MLFLOW_TRACKING_URI)
    mlflow.set_registry_uri(settings.MLFLOW_REGISTRY_URI)
    return _client_for(settings.MLFLOW_TRACKING_URI, settings.MLFLOW_REGISTRY_URI, settings.MLFLOW_UI_URL)
