"""A strict local emulator of the Databricks REST endpoints MLflow's ``databricks``, ``databricks-uc`` and
workspace-registry stores call, served over real HTTP on loopback.

Shapes follow MLflow's protobufs (``databricks_uc_registry_messages.proto``, ``model_registry.proto``,
``service.proto``, ``databricks_filesystem_service.proto``) and the Databricks SDK's auth flows
(``/.well-known/databricks-config``, OIDC discovery, ``/oidc/v1/token`` for OAuth M2M and token federation).
It refuses what Databricks refuses: ``order_by`` and ``filter`` on Unity Catalog model search, anything but
``name=``/``run_id=`` on UC version search, aliases on the workspace registry, stages on Unity Catalog, unknown
or missing credentials, page tokens it never gave out. Faults are injected per path: ``fail(prefix, 429,
retry_after=2)`` or a permission error per model (``deny``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["DatabricksEmulator", "Fault"]

UC = "/api/2.0/mlflow/unity-catalog"
WS = "/api/2.0/mlflow"
# What Unity Catalog accepts as an alias: letters, digits and underscores, not a version-like "v1" (documented
# limits of ``CREATE ALIAS``/``set_registered_model_alias``); up to 255 characters.
UC_ALIAS = re.compile(r"^(?![vV]\d+$)[A-Za-z0-9_]{1,255}$")
MAX_RESULTS = {"registered-models/search": 1000, "model-versions/search": 10000}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


@dataclass
class Fault:
    prefix: str
    status: int
    times: int
    retry_after: int | None = None
    code: str = ""


@dataclass
class Version:
    number: int
    run_id: str = ""
    experiment_id: str = ""
    tracking_server_id: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    stage: str = "None"
    files: dict[str, bytes] = field(default_factory=dict)
    storage: str = "DEFAULT_STORAGE"  # or "AZURE": answered with a user-delegation SAS for ADLS
    created: int = 0


@dataclass
class Model:
    name: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    versions: dict[int, Version] = field(default_factory=dict)
    created: int = 0
    updated: int = 0


@dataclass
class Run:
    run_id: str
    experiment_id: str
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    status: str = "FINISHED"
    artifacts: dict[str, bytes] = field(default_factory=dict)


class DatabricksEmulator:
    """One workspace. ``unity_catalog`` chooses which registry answers (the other answers ``ENDPOINT_NOT_FOUND``
    for its model endpoints, as a workspace with the legacy registry disabled would)."""

    def __init__(
        self,
        *,
        unity_catalog: bool = True,
        token: str = "dapi-emulator-token",
        client_id: str = "sp-app-id",
        client_secret: str = "sp-secret",
        federation_issuer: str = "https://oidc.prod-aks.azure.com/tenant/",
        federation_subject: str = "system:serviceaccount:modelplane:controlplane",
        workspace_id: str = "1234567890",
    ) -> None:
        self.unity_catalog = unity_catalog
        self.sdk_models_artifact_repository = False  # what the workspace answers when MLflow asks
        self.pat = token
        self.client_id, self.client_secret = client_id, client_secret
        self.federation_issuer, self.federation_subject = federation_issuer, federation_subject
        self.workspace_id = workspace_id
        self.models: dict[str, Model] = {}
        self.runs: dict[str, Run] = {}
        self.issued_tokens: set[str] = set()
        self.denied: set[str] = set()  # model names (canonical) that answer PERMISSION_DENIED
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self.grants: list[str] = []  # grant_type of every token request
        self._lock = threading.Lock()
        self._secret = secrets.token_bytes(16)
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> str:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _serve(self) -> None:
                emulator._handle(self)

            do_GET = do_POST = do_PATCH = do_DELETE = do_HEAD = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    # ------------------------------------------------------------------ seeding and inspection
    def canonical(self, name: str) -> str:
        return name.lower() if self.unity_catalog else name

    def add_model(self, name: str, *, description: str = "", tags: dict[str, str] | None = None) -> Model:
        now = int(time.time() * 1000)
        model = Model(name=self.canonical(name), description=description, tags=dict(tags or {}), created=now)
        model.updated = now
        self.models[model.name] = model
        return model

    def add_version(self, name: str, *, files: dict[str, bytes], run: Run | None = None, **kwargs) -> Version:
        model = self.models[self.canonical(name)]
        number = max(model.versions, default=0) + 1
        version = Version(
            number=number,
            run_id=run.run_id if run else "",
            experiment_id=run.experiment_id if run else "",
            files=files,
            created=int(time.time() * 1000) + number,
            **kwargs,
        )
        model.versions[number] = version
        model.updated = version.created
        return version

    def add_run(self, run_id: str, *, experiment_id: str = "7", **kwargs) -> Run:
        run = Run(run_id=run_id, experiment_id=experiment_id, **kwargs)
        self.runs[run_id] = run
        return run

    def fail(self, prefix: str, status: int, *, times: int = 1_000_000, retry_after: int | None = None) -> None:
        self.faults.append(Fault(prefix=prefix, status=status, times=times, retry_after=retry_after))

    def count(self, prefix: str = "") -> int:
        with self._lock:
            return sum(1 for _, path in self.requests if path.startswith(prefix))

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.grants.clear()

    # ------------------------------------------------------------------ HTTP
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        path = unquote(parts.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        with self._lock:
            self.requests.append((h.command, path))
        try:
            self._fault(path)
            status, body, ctype = self._route(h, path, parse_qs(parts.query), raw)
            headers: dict[str, str] = {}
        except ApiError as exc:
            status, ctype, headers = exc.status, "application/json", exc.headers
            body = json.dumps({"error_code": exc.code, "message": exc.message}).encode()
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            h.send_header(key, value)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def _fault(self, path: str) -> None:
        with self._lock:
            for fault in self.faults:
                if path.startswith(fault.prefix) and fault.times > 0:
                    fault.times -= 1
                    code = {429: "REQUEST_LIMIT_EXCEEDED", 403: "PERMISSION_DENIED", 503: "TEMPORARILY_UNAVAILABLE"}
                    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                    raise ApiError(fault.status, code.get(fault.status, "INTERNAL_ERROR"), "injected fault", headers)

    def _route(self, h, path: str, query: dict[str, list[str]], raw: bytes) -> tuple[int, bytes, str]:
        if path == "/.well-known/databricks-config":
            return self._json({"oidc_endpoint": f"{self.url}/oidc", "workspace_id": self.workspace_id})
        if path == "/oidc/.well-known/oauth-authorization-server":
            return self._json(
                {
                    "issuer": f"{self.url}/oidc",
                    "authorization_endpoint": f"{self.url}/oidc/v1/authorize",
                    "token_endpoint": f"{self.url}/oidc/v1/token",
                }
            )
        if path == "/oidc/v1/token":
            return self._token(h, raw)
        if path.startswith("/presigned/"):
            return self._presigned(path, query)
        self._authenticate(h)
        body = json.loads(raw) if raw and raw[:1] == b"{" else {}
        args = {k: v[-1] for k, v in query.items()}
        args.update({k: v for k, v in body.items() if not isinstance(v, list)})
        lists = {k: v for k, v in query.items()}
        lists.update({k: v for k, v in body.items() if isinstance(v, list)})
        if path.startswith("/api/2.0/fs/"):
            return self._fs(h, path, args)
        if path.startswith(UC + "/"):
            if not self.unity_catalog:
                raise ApiError(404, "ENDPOINT_NOT_FOUND", "Unity Catalog is not enabled for this workspace.")
            return self._json(self._uc(h.command, path[len(UC) + 1 :], args, lists))
        if path.startswith(WS + "/registered-models") or path.startswith(WS + "/model-versions"):
            if self.unity_catalog:
                raise ApiError(404, "ENDPOINT_NOT_FOUND", "The workspace model registry is disabled here.")
            return self._json(self._workspace(h.command, path[len(WS) + 1 :], args, lists))
        if path == WS + "/runs/get":
            return self._json({"run": self._run(args.get("run_id") or args.get("run_uuid", ""))})
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{h.command} {path}'")

    @staticmethod
    def _json(data: dict) -> tuple[int, bytes, str]:
        return 200, json.dumps(data).encode(), "application/json"

    # ------------------------------------------------------------------ auth
    def _authenticate(self, h) -> None:
        auth = h.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            raise ApiError(401, "UNAUTHENTICATED", "Credential was not sent or was of an unsupported type.")
        token = auth[len("Bearer ") :]
        if token != self.pat and token not in self.issued_tokens:
            raise ApiError(401, "UNAUTHENTICATED", "Invalid access token.")

    def _issue(self) -> tuple[int, bytes, str]:
        token = "oauth-" + secrets.token_hex(12)
        self.issued_tokens.add(token)
        return self._json({"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": "all-apis"})

    def _token(self, h, raw: bytes) -> tuple[int, bytes, str]:
        form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
        grant = form.get("grant_type", "")
        with self._lock:
            self.grants.append(grant)
        if grant == "client_credentials":
            auth = h.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            else:
                client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
            if client_id != self.client_id or not hmac.compare_digest(secret, self.client_secret):
                raise ApiError(401, "invalid_client", "Client authentication failed.")
            return self._issue()
        if grant == "urn:ietf:params:oauth:grant-type:token-exchange":
            claims = _jwt_claims(form.get("subject_token", ""))
            if form.get("client_id") != self.client_id:
                raise ApiError(400, "invalid_request", "No federation policy for this client_id.")
            if claims.get("iss") != self.federation_issuer or claims.get("sub") != self.federation_subject:
                raise ApiError(400, "invalid_grant", "The subject token does not match the federation policy.")
            if claims.get("exp", 0) < time.time():
                raise ApiError(400, "invalid_grant", "The subject token has expired.")
            return self._issue()
        raise ApiError(400, "unsupported_grant_type", f"grant_type {grant!r} is not supported.")

    # ------------------------------------------------------------------ paging
    def _page(self, items: list, args: dict, kind: str, default: int) -> tuple[list, str]:
        try:
            size = int(args.get("max_results") or default)
        except ValueError:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "max_results must be an integer.") from None
        if not 1 <= size <= MAX_RESULTS[kind]:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"max_results must be 1-{MAX_RESULTS[kind]}.")
        offset = self._offset(args.get("page_token") or "")
        end = offset + size
        return items[offset:end], self._token_for(end) if end < len(items) else ""

    def _token_for(self, offset: int) -> str:
        mac = hmac.new(self._secret, str(offset).encode(), hashlib.sha256).hexdigest()[:16]
        return base64.urlsafe_b64encode(f"{offset}:{mac}".encode()).decode()

    def _offset(self, token: str) -> int:
        if not token:
            return 0
        try:
            offset = int(base64.urlsafe_b64decode(token.encode()).decode().split(":")[0])
        except (ValueError, UnicodeDecodeError):
            offset = -1
        if offset < 0 or self._token_for(offset) != token:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "Invalid page token.")
        return offset

    # ------------------------------------------------------------------ registry
    def _model(self, name: str) -> Model:
        model = self.models.get(self.canonical(name or ""))
        if model is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Registered model '{name}' does not exist.")
        if model.name in self.denied:
            raise ApiError(403, "PERMISSION_DENIED", f"User does not have EXECUTE on Routine or Model '{name}'.")
        return model

    def _version(self, args: dict) -> tuple[Model, Version]:
        model = self._model(args.get("name", ""))
        raw = str(args.get("version", ""))
        version = model.versions.get(int(raw)) if raw.isdigit() else None
        if version is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Model version {args.get('name')}/{raw} does not exist.")
        return model, version

    def _model_json(self, model: Model, *, full: bool) -> dict:
        data = {
            "name": model.name,
            "creation_timestamp": model.created,
            "last_updated_timestamp": model.updated,
            "user_id": "trainer@example.com",
            "description": model.description,
        }
        if full:
            data["aliases"] = [{"alias": a, "version": str(v)} for a, v in sorted(model.aliases.items())]
            data["tags"] = [{"key": k, "value": v} for k, v in sorted(model.tags.items())]
        if not self.unity_catalog:
            latest: dict[str, Version] = {}
            for version in model.versions.values():
                if latest.get(version.stage) is None or version.number > latest[version.stage].number:
                    latest[version.stage] = version
            data["latest_versions"] = [self._version_json(model, v, full=False) for v in latest.values()]
            data["tags"] = [{"key": k, "value": v} for k, v in sorted(model.tags.items())]
        return data

    def _version_json(self, model: Model, version: Version, *, full: bool) -> dict:
        data = {
            "name": model.name,
            "version": str(version.number),
            "creation_timestamp": version.created,
            "last_updated_timestamp": version.created,
            "user_id": "trainer@example.com",
            "description": "",
            "source": f"dbfs:/databricks/mlflow-tracking/{version.experiment_id}/{version.run_id}/artifacts/model",
            "run_id": version.run_id,
            "status": "READY",
        }
        if self.unity_catalog:
            data["storage_location"] = f"abfss://models@store.dfs.core.windows.net/{model.name}/{version.number}"
            if version.tracking_server_id:
                data["run_tracking_server_id"] = version.tracking_server_id
            if full:
                data["aliases"] = [
                    {"alias": a, "version": str(v)} for a, v in model.aliases.items() if v == version.number
                ]
                data["tags"] = [{"key": k, "value": v} for k, v in sorted(version.tags.items())]
        else:
            data["current_stage"] = version.stage
            data["tags"] = [{"key": k, "value": v} for k, v in sorted(version.tags.items())]
        return data

    def _uc(self, method: str, op: str, args: dict, lists: dict) -> dict:
        if op == "registered-models/search" and method == "GET":
            for refused in ("order_by", "filter"):
                if lists.get(refused):
                    raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Unsupported argument '{refused}'.")
            names = sorted(self.models)
            page, token = self._page(names, args, "registered-models/search", 100)
            return {
                "registered_models": [self._model_json(self.models[n], full=False) for n in page],
                "next_page_token": token,
            }
        if op == "registered-models/get" and method == "GET":
            return {
                "registered_model": self._model_json(self._model(args.get("full_name") or args.get("name")), full=True)
            }
        if op == "model-versions/search" and method == "GET":
            if lists.get("order_by"):
                raise ApiError(400, "INVALID_PARAMETER_VALUE", "Unsupported argument 'order_by'.")
            match = re.fullmatch(r"\s*(name|run_id)\s*=\s*(['\"])(.*)\2\s*", args.get("filter") or "")
            if not match:
                raise ApiError(400, "INVALID_PARAMETER_VALUE", "Filter must be name='...' or run_id='...'.")
            if match.group(1) == "name":
                model = self._model(match.group(3))
                found = [(model, v) for v in sorted(model.versions.values(), key=lambda v: v.number)]
            else:
                found = [
                    (m, v) for m in self.models.values() for v in m.versions.values() if v.run_id == match.group(3)
                ]
            page, token = self._page(found, args, "model-versions/search", 10000)
            return {"model_versions": [self._version_json(m, v, full=False) for m, v in page], "next_page_token": token}
        if op == "model-versions/get" and method == "GET":
            model, version = self._version(args)
            return {"model_version": self._version_json(model, version, full=True)}
        if op == "model-versions/set-tag" and method == "POST":
            model, version = self._version(args)
            _check_tag(args.get("key", ""), args.get("value", ""))
            version.tags[args["key"]] = args.get("value", "")
            return {}
        if op == "registered-models/alias":
            model = self._model(args.get("name", ""))
            alias = args.get("alias", "")
            if method == "POST":
                if not UC_ALIAS.match(alias):
                    raise ApiError(
                        400,
                        "INVALID_PARAMETER_VALUE",
                        f"Invalid alias name '{alias}': aliases may "
                        "contain only alphanumeric characters and underscores and may not look like a "
                        "version (v1).",
                    )
                _, version = self._version(args)
                model.aliases[alias.lower()] = version.number
                return {}
            if method == "GET":
                if alias.lower() not in model.aliases:
                    raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Alias {alias} does not exist.")
                number = model.aliases[alias.lower()]
                return {"model_version": self._version_json(model, model.versions[number], full=True)}
        if op == "model-versions/generate-temporary-credentials" and method == "POST":
            model, version = self._version(args)
            if args.get("operation") not in ("MODEL_VERSION_OPERATION_READ", "MODEL_VERSION_OPERATION_READ_WRITE"):
                raise ApiError(400, "INVALID_PARAMETER_VALUE", "operation is required.")
            if version.storage == "AZURE":
                return {
                    "credentials": {
                        "azure_user_delegation_sas": {"sas_token": "sv=2024&sig=emulated"},
                        "storage_mode": "CUSTOMER_HOSTED",
                    }
                }
            return {"credentials": {"storage_mode": "DEFAULT_STORAGE"}}
        if op == "model-versions/get-download-uri" and method == "GET":
            model, version = self._version(args)
            return {"artifact_uri": self._version_json(model, version, full=False)["storage_location"]}
        if op == "registered-models:is-databricks-sdk-models-artifact-repository-enabled":
            return {"is_databricks_sdk_models_artifact_repository_enabled": self.sdk_models_artifact_repository}
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {UC}/{op}'")

    def _workspace(self, method: str, op: str, args: dict, lists: dict) -> dict:
        if op == "registered-models/alias":
            raise ApiError(
                400,
                "INVALID_PARAMETER_VALUE",
                "Model aliases are not supported in the Workspace Model Registry; use Models in Unity Catalog.",
            )
        if op == "registered-models/search" and method == "GET":
            names = sorted(self.models)
            flt = args.get("filter") or ""
            match = re.fullmatch(r"\s*name\s+(I?LIKE)\s*(['\"])(.*)\2\s*", flt, re.IGNORECASE) if flt else None
            if flt and not match:
                raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Unsupported filter '{flt}'.")
            if match:
                needle = match.group(3).strip("%")
                fold = match.group(1).upper() == "ILIKE"
                names = [n for n in names if (needle.lower() in n.lower()) if fold or needle in n]
            order = lists.get("order_by") or []
            for clause in reversed(order):
                column, _, direction = clause.partition(" ")
                if column not in ("name", "last_updated_timestamp", "timestamp"):
                    raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid order_by '{clause}'.")
                key = (lambda n: n) if column == "name" else (lambda n: self.models[n].updated)
                names.sort(key=key, reverse=direction.strip().upper() == "DESC")
            page, token = self._page(names, args, "registered-models/search", 100)
            return {
                "registered_models": [self._model_json(self.models[n], full=False) for n in page],
                "next_page_token": token,
            }
        if op == "registered-models/get" and method == "GET":
            return {"registered_model": self._model_json(self._model(args.get("name")), full=False)}
        if op == "model-versions/search" and method == "GET":
            match = re.fullmatch(r"\s*name\s*=\s*(['\"])(.*)\1\s*", args.get("filter") or "")
            if not match:
                raise ApiError(400, "INVALID_PARAMETER_VALUE", "Filter must be name='...'.")
            model = self._model(match.group(2))
            found = sorted(
                model.versions.values(),
                key=lambda v: v.number,
                reverse="version_number DESC" in (lists.get("order_by") or []),
            )
            page, token = self._page(found, args, "model-versions/search", 10000)
            return {"model_versions": [self._version_json(model, v, full=True) for v in page], "next_page_token": token}
        if op == "model-versions/get" and method == "GET":
            model, version = self._version(args)
            return {"model_version": self._version_json(model, version, full=True)}
        if op == "model-versions/set-tag" and method == "POST":
            model, version = self._version(args)
            _check_tag(args.get("key", ""), args.get("value", ""))
            version.tags[args["key"]] = args.get("value", "")
            return {}
        if op == "registered-models/set-tag" and method == "POST":
            model = self._model(args.get("name", ""))
            _check_tag(args.get("key", ""), args.get("value", ""))
            model.tags[args["key"]] = args.get("value", "")
            return {}
        if op == "model-versions/transition-stage" and method == "POST":
            model, version = self._version(args)
            stage = args.get("stage", "")
            if stage.lower() not in ("none", "staging", "production", "archived"):
                raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid stage '{stage}'.")
            stage = stage.capitalize()
            if str(args.get("archive_existing_versions")).lower() == "true" and stage in ("Staging", "Production"):
                for other in model.versions.values():
                    if other.stage == stage and other is not version:
                        other.stage = "Archived"
            version.stage = stage
            return {"model_version": self._version_json(model, version, full=True)}
        if op == "model-versions/get-download-uri" and method == "GET":
            model, version = self._version(args)
            return {"artifact_uri": f"dbfs:/databricks/mlflow-registry/{abs(hash(model.name))}/models/model"}
        if op == "model-versions/list-artifacts" and method == "GET":
            model, version = self._version(args)
            return {"files": _listing(version.files, args.get("path", "")), "next_page_token": ""}
        if op == "model-versions/get-signed-download-uri" and method == "GET":
            model, version = self._version(args)
            key = f"ws/{model.name}/{version.number}/{args.get('path', '')}"
            return {"signed_uri": self._sign(key), "headers": []}
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {WS}/{op}'")

    # ------------------------------------------------------------------ runs and files
    def _run(self, run_id: str) -> dict:
        run = self.runs.get(run_id)
        if run is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Run '{run_id}' not found.")
        return {
            "info": {
                "run_id": run.run_id,
                "run_uuid": run.run_id,
                "experiment_id": run.experiment_id,
                "run_name": f"train-{run.run_id[:6]}",
                "status": run.status,
                "start_time": 1_700_000_000_000,
                "end_time": 1_700_000_060_000,
                "artifact_uri": f"dbfs:/databricks/mlflow-tracking/{run.experiment_id}/{run.run_id}/artifacts",
                "lifecycle_stage": "active",
            },
            "data": {
                "metrics": [{"key": k, "value": v, "timestamp": 1, "step": 0} for k, v in run.metrics.items()],
                "params": [{"key": k, "value": v} for k, v in run.params.items()],
                "tags": [{"key": "mlflow.user", "value": "trainer@example.com"}],
            },
        }

    def _files_at(self, path: str) -> tuple[dict[str, bytes], str] | None:
        """The file map and the relative path for an ``/api/2.0/fs`` path: UC model versions live under
        ``/Models/<catalog>/<schema>/<model>/<version>``, run artifacts under
        ``/WorkspaceInternal/Mlflow/Artifacts/<experiment>/Runs/<run>``."""
        match = re.match(r"^/Models/([^/]+)/([^/]+)/([^/]+)/(\d+)(?:/(.*))?$", path)
        if match:
            # The Files API serves a version wherever it is stored (default or customer storage).
            model, version = self._version({"name": ".".join(match.group(1, 2, 3)), "version": match.group(4)})
            return version.files, (match.group(5) or "").strip("/")
        match = re.match(r"^/WorkspaceInternal/Mlflow/Artifacts/[^/]+/Runs/([^/]+)/artifacts(?:/(.*))?$", path)
        if match:
            run = self.runs.get(match.group(1))
            if run is None:
                raise ApiError(404, "NOT_FOUND", "No such run.")
            return run.artifacts, (match.group(2) or "").strip("/")
        return None

    def _fs(self, h, path: str, args: dict) -> tuple[int, bytes, str]:
        if path == "/api/2.0/fs/create-download-url" and h.command == "POST":
            found = self._files_at(args.get("path", ""))
            if not found or found[1] not in found[0]:
                raise ApiError(404, "NOT_FOUND", f"No file at {args.get('path')}.")
            return self._json({"url": self._sign("fs" + args["path"]), "headers": []})
        for prefix, is_dir in (("/api/2.0/fs/directories", True), ("/api/2.0/fs/files", False)):
            if path.startswith(prefix + "/"):
                found = self._files_at(path[len(prefix) :].rstrip("/"))
                if found is None:
                    raise ApiError(404, "NOT_FOUND", "No such path.")
                files, rel = found
                if is_dir:
                    listing = _listing(files, rel)
                    if not listing:
                        raise ApiError(404, "NOT_FOUND", f"Directory {path} does not exist.")
                    if h.command == "HEAD":
                        return 200, b"", "application/json"
                    base = path[len(prefix) :].rstrip("/")
                    contents = [
                        {
                            "path": f"{base}/{e['path'].rsplit('/', 1)[-1]}",
                            "is_directory": e["is_dir"],
                            "file_size": e.get("file_size", 0),
                            "name": e["path"].rsplit("/", 1)[-1],
                        }
                        for e in listing
                    ]
                    return self._json({"contents": contents})
                if rel not in files:
                    raise ApiError(404, "NOT_FOUND", f"File {path} does not exist.")
                return 200, files[rel], "application/octet-stream"
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{h.command} {path}'")

    def _sign(self, key: str) -> str:
        mac = hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()
        return f"{self.url}/presigned/{base64.urlsafe_b64encode(key.encode()).decode()}?sig={mac}"

    def _presigned(self, path: str, query: dict) -> tuple[int, bytes, str]:
        key = base64.urlsafe_b64decode(path[len("/presigned/") :].encode()).decode()
        mac = hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(mac, (query.get("sig") or [""])[0]):
            raise ApiError(403, "AuthenticationFailed", "Signature mismatch.")
        if key.startswith("ws/"):
            _, name, number, rel = key.split("/", 3)
            files = self.models[name].versions[int(number)].files
        else:
            files, rel = self._files_at(key[2:]) or ({}, "")
        if rel not in files:
            raise ApiError(404, "BlobNotFound", "The specified blob does not exist.")
        return 200, files[rel], "application/octet-stream"


def _listing(files: dict[str, bytes], rel: str) -> list[dict]:
    """Direct children of ``rel`` (``{"path", "is_dir", "file_size"}``), as the list-artifacts APIs answer."""
    prefix = f"{rel.strip('/')}/" if rel.strip("/") else ""
    seen: dict[str, dict] = {}
    for name, data in files.items():
        if not name.startswith(prefix):
            continue
        head, _, rest = name[len(prefix) :].partition("/")
        child = prefix + head
        seen[child] = (
            {"path": child, "is_dir": True} if rest else {"path": child, "is_dir": False, "file_size": len(data)}
        )
    return [seen[k] for k in sorted(seen)]


def _check_tag(key: str, value: str) -> None:
    if not key or len(key) > 250:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "Tag keys must be 1-250 characters.")
    if len(value) > 5000:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "Tag values must be at most 5000 characters.")


def _jwt_claims(token: str) -> dict:
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        raise ApiError(400, "invalid_grant", "The subject token is not a JWT.") from None


def make_jwt(claims: dict) -> str:
    """An unsigned-looking JWT for the federation tests (the emulator checks claims, not signatures)."""

    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2ln"


def iter_requests(emulator: DatabricksEmulator) -> Iterator[tuple[str, str]]:
    with emulator._lock:
        yield from list(emulator.requests)
