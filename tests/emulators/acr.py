"""A local HTTPS endpoint that answers like the parts of Azure the ACR image builder talks to:

- ARM (``/subscriptions/.../registries/<name>/...``): ``listBuildSourceUploadUrl``, ``scheduleRun``,
  ``runs/<id>`` (the status advances one step per GET: Queued -> Running -> the outcome) and
  ``runs/<id>/listLogSasUrl``;
- blob storage behind the SAS URLs: the context upload (PUT, ``x-ms-blob-type: BlockBlob``) and the run log (GET,
  growing as the run advances);
- the registry data plane (``/acr/v1/<repo>/_tags/<tag>`` and the distribution API's
  ``/v2/<repo>/manifests/<reference>``) with ACR's token dance (401 challenge, ``/oauth2/exchange`` of an Entra
  token for a refresh token, ``/oauth2/token`` by POST or, as ``docker login`` does with the refresh token as
  password, by GET with basic auth);
- Microsoft Entra's token endpoint for workload identity (``/<tenant>/oauth2/v2.0/token``, client credentials with
  a federated ``client_assertion``): ``federated_token`` buys ``aad-token``.

Served over TLS with a self-signed certificate for ``IP:127.0.0.1`` made at start-up, so the real SDK clients
(bearer tokens need HTTPS) run unchanged with ``connection_verify=<ca file>``. Every request is recorded.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import io
import ipaddress
import json
import re
import ssl
import tarfile
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from azure.core.credentials import AccessToken
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["AcrEmulator", "FakeCredential", "make_certificate"]

ARM = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.ContainerRegistry"
    r"/registries/(?P<name>[^/]+)/(?P<rest>.+)$"
)


class FakeCredential:
    """An azure-core ``TokenCredential`` that hands out a fixed token and remembers the scopes asked for."""

    def __init__(self, token: str = "aad-token") -> None:
        self.token, self.scopes = token, []

    def get_token(self, *scopes: str, **kwargs) -> AccessToken:
        self.scopes.extend(scopes)
        return AccessToken(self.token, int(datetime.datetime.now().timestamp()) + 3600)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for ``IP:127.0.0.1``; returns (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@dataclass
class Run:
    run_id: str
    request: dict
    outcome: str
    statuses: list[str]
    log_steps: list[list[str]]
    digest: str = ""
    gets: int = 0

    @property
    def status(self) -> str:
        return self.statuses[min(self.gets, len(self.statuses) - 1)]

    def log(self) -> str:
        shown = self.log_steps[: min(self.gets, len(self.log_steps) - 1) + 1]
        return "".join(line + "\n" for step in shown for line in step)


@dataclass
class AcrEmulator:
    """Start with ``start()``; ``url`` is ``https://127.0.0.1:<port>`` and ``ca`` the certificate to trust.

    ``outcome`` is what the next run ends in (``Succeeded``/``Failed``, or ``Running`` for ever); ``faults`` maps
    a path fragment to status codes to answer (one per matching request, in order) before answering normally.
    """

    directory: Path
    outcome: str = "Succeeded"
    faults: dict[str, list[int]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict]] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    runs: dict[str, Run] = field(default_factory=dict)
    tags: dict[tuple[str, str], str] = field(default_factory=dict)
    federated_token: str = "projected-sa-token"  # the service-account token Entra accepts as client_assertion

    def start(self) -> AcrEmulator:
        cert, key = make_certificate(self.directory)
        self.ca = str(cert)
        emulator = self

        class Handler(_Handler):
            pass

        Handler.emulator = emulator
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.host = f"127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def paths(self, method: str = "") -> list[str]:
        return [path for m, path, _ in self.requests if not method or m == method]

    # ------------------------------------------------------------------ behaviour
    def schedule(self, body: dict) -> Run:
        run_id = f"cb{len(self.runs) + 1}"
        props = body
        source = props.get("sourceLocation", "")
        archive = self.uploads.get(source.rsplit("/", 1)[-1], b"")
        names = _tar_names(archive)
        ok = self.outcome in ("Succeeded", "Running") and "Dockerfile" in names
        outcome = self.outcome if ok else "Failed"  # "Running": a run that never ends
        image = props["imageNames"][0]
        log = [
            [f"Sending context ({len(archive)} bytes) to registry: {self.host}..."],
            ["Step 1/9 : ARG BASE_IMAGE", "Step 2/9 : FROM ${BASE_IMAGE}", "Successfully built 0123456789ab"]
            if ok
            else ["Step 5/9 : RUN python3 -m venv /opt/venv && pip install ...", "ERROR: No matching distribution"],
            [f"Successfully tagged {self.host}/{image}", f"Run ID: {run_id} was successful after 42s"]
            if ok
            else [f"Run ID: {run_id} failed after 17s. Error: failed during run, err: exit status 1"],
        ]
        run = Run(run_id, body, outcome, ["Queued", "Running", outcome], log)
        if ok:
            run.digest = "sha256:" + hashlib.sha256(archive).hexdigest()
        self.runs[run_id] = run
        return run

    def run_json(self, run: Run, path: str) -> dict:
        done = run.status == "Succeeded"
        repository, _, tag = run.request["imageNames"][0].rpartition(":")
        if done:
            self.tags[(repository, tag)] = run.digest
        return {
            "id": path,
            "name": run.run_id,
            "type": "Microsoft.ContainerRegistry/registries/runs",
            "properties": {
                "runId": run.run_id,
                "status": run.status,
                "runType": "QuickRun",
                "platform": {"os": "linux", "architecture": "amd64"},
                "outputImages": [{"registry": self.host, "repository": repository, "tag": tag, "digest": run.digest}]
                if done
                else [],
                "runErrorMessage": "failed during run, err: exit status 1" if run.status == "Failed" else None,
                "provisioningState": "Succeeded",
            },
        }


class _Handler(BaseHTTPRequestHandler):
    emulator: AcrEmulator
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: object = None, headers: dict | None = None) -> None:
        data = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if not isinstance(body, bytes) else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":  # a HEAD answer has headers only (a body would be read as the next answer)
            self.wfile.write(data)

    def _handle(self, method: str) -> None:
        em = self.emulator
        body = self._body()
        url = urlsplit(self.path)
        with em.lock:
            em.requests.append((method, url.path, dict(self.headers)))
            for fragment, codes in em.faults.items():
                if fragment in url.path and codes:
                    code = codes.pop(0)
                    return self._send(code, {"error": {"code": "Throttled", "message": f"injected {code}"}},
                                      {"Retry-After": "0"})  # fmt: skip
        try:
            self._route(method, unquote(url.path), parse_qs(url.query), body)
        except Exception as exc:  # noqa: BLE001 - a bug in the emulator shows as a 500 with the reason
            self._send(500, {"error": {"code": "EmulatorError", "message": repr(exc)}})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def _route(self, method: str, path: str, query: dict, body: bytes) -> None:
        if path.startswith("/subscriptions/"):
            if self.headers.get("Authorization") != "Bearer aad-token":
                return self._send(401, {"error": {"code": "InvalidAuthenticationToken", "message": "no token"}})
            match = ARM.match(path)
            if not match:
                return self._send(404, {"error": {"code": "ResourceNotFound", "message": path}})
            return self._arm(method, match.group("rest"), path, body)
        if path.startswith("/blob/"):
            return self._blob(method, path, body)
        if path.startswith("/oauth2/"):
            return self._oauth(path, body, query)
        if path.endswith("/oauth2/v2.0/token"):
            return self._entra(body)
        if path.startswith("/acr/v1/"):
            return self._data_plane(path)
        if path.startswith("/v2/"):
            return self._distribution(method, path)
        return self._send(404, {"error": {"code": "NotFound", "message": path}})

    def _arm(self, method: str, rest: str, path: str, body: bytes) -> None:
        em = self.emulator
        if rest == "listBuildSourceUploadUrl" and method == "POST":
            blob = f"{uuid.uuid4().hex}.tar.gz"
            day = datetime.date.today().strftime("%Y%m%d")
            return self._send(
                200,
                {
                    "uploadUrl": f"{em.url}/blob/source/{blob}?sv=2023-01-03&sig=x",
                    "relativePath": f"source/{day}/{blob}",
                },
            )
        if rest == "scheduleRun" and method == "POST":
            run = em.schedule(json.loads(body))
            return self._send(200, em.run_json(run, path.replace("scheduleRun", f"runs/{run.run_id}")))
        parts = rest.split("/")
        if parts[0] == "runs" and len(parts) >= 2 and parts[1] in em.runs:
            run = em.runs[parts[1]]
            if len(parts) == 2 and method == "GET":
                answer = em.run_json(run, path)
                run.gets += 1
                return self._send(200, answer)
            if len(parts) == 3 and parts[2] == "cancel" and method == "POST":
                run.statuses = [*run.statuses[: run.gets], "Canceled"]
                return self._send(200, b"")
            if len(parts) == 3 and parts[2] == "listLogSasUrl":
                return self._send(200, {"logLink": f"{em.url}/blob/logs/{run.run_id}/rawtext.log?sv=2023-01-03&sig=x"})
        return self._send(404, {"error": {"code": "ResourceNotFound", "message": f"no {rest}"}})

    def _blob(self, method: str, path: str, body: bytes) -> None:
        em = self.emulator
        if path.startswith("/blob/source/") and method == "PUT":
            if self.headers.get("x-ms-blob-type") != "BlockBlob":
                return self._send(400, b"MissingRequiredHeader x-ms-blob-type")
            em.uploads[path.rsplit("/", 1)[-1]] = body
            return self._send(201, b"")
        if path.startswith("/blob/logs/") and method == "GET":
            run = em.runs.get(path.split("/")[3])
            return self._send(200, run.log().encode()) if run else self._send(404, b"BlobNotFound")
        return self._send(404, b"BlobNotFound")

    def _oauth(self, path: str, body: bytes, query: dict) -> None:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if path == "/oauth2/exchange" and form.get("access_token") == "aad-token":
            if form.get("grant_type") != "access_token" or form.get("service") != self.emulator.host:
                return self._send(400, {"errors": [{"code": "BAD_REQUEST", "message": "grant_type or service"}]})
            return self._send(200, {"refresh_token": "acr-refresh"})
        if path == "/oauth2/token" and form.get("refresh_token") == "acr-refresh":
            return self._send(200, {"access_token": "acr-access"})
        basic = self.headers.get("Authorization", "")
        if path == "/oauth2/token" and basic.startswith("Basic ") and query.get("service"):
            user, _, password = base64.b64decode(basic[6:]).decode().partition(":")
            if user == "00000000-0000-0000-0000-000000000000" and password == "acr-refresh":
                return self._send(200, {"access_token": "acr-access"})
        return self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad token"}]})

    def _entra(self, body: bytes) -> None:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        assertion_type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        if (
            form.get("grant_type") == "client_credentials"
            and form.get("client_assertion_type") == assertion_type
            and form.get("client_assertion") == self.emulator.federated_token
            and form.get("client_id")
            and form.get("scope", "").endswith("/.default")
        ):
            return self._send(200, {"token_type": "Bearer", "expires_in": 3599, "access_token": "aad-token"})
        return self._send(401, {"error": "invalid_client", "error_description": "AADSTS700213: no matching federated"
                                " identity record found for presented assertion subject"})  # fmt: skip

    def _distribution(self, method: str, path: str) -> None:
        em = self.emulator
        match = re.match(r"^/v2/(?P<repo>.+)/manifests/(?P<ref>[^/]+)$", path)
        if self.headers.get("Authorization") != "Bearer acr-access":
            repo = match["repo"] if match else "x"
            challenge = f'Bearer realm="{em.url}/oauth2/token",service="{em.host}",scope="repository:{repo}:pull"'
            return self._send(401, {"errors": [{"code": "UNAUTHORIZED"}]}, {"WWW-Authenticate": challenge})
        if not match or (match["repo"], match["ref"]) not in em.tags:
            return self._send(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})
        return self._send(200, b"" if method == "HEAD" else b"{}", {"Docker-Content-Digest": em.tags[match["repo"],
                          match["ref"]]})  # fmt: skip

    def _data_plane(self, path: str) -> None:
        em = self.emulator
        if self.headers.get("Authorization") != "Bearer acr-access":
            challenge = f'Bearer realm="{em.url}/oauth2/token",service="{em.host}",scope="repository:x:metadata_read"'
            return self._send(401, {"errors": [{"code": "UNAUTHORIZED"}]}, {"WWW-Authenticate": challenge})
        match = re.match(r"^/acr/v1/(?P<repo>.+)/_tags/(?P<tag>[^/]+)$", path)
        if not match or (match["repo"], match["tag"]) not in em.tags:
            return self._send(404, {"errors": [{"code": "TAG_UNKNOWN", "message": "the specified tag does not exist"}]})
        now = datetime.datetime.now(datetime.UTC).isoformat()
        return self._send(
            200,
            {
                "registry": em.host,
                "imageName": match["repo"],
                "tag": {
                    "name": match["tag"],
                    "digest": em.tags[(match["repo"], match["tag"])],
                    "createdTime": now,
                    "lastUpdateTime": now,
                    "signed": False,
                    "changeableAttributes": {
                        "deleteEnabled": True,
                        "writeEnabled": True,
                        "readEnabled": True,
                        "listEnabled": True,
                    },
                },
            },
        )


def _tar_names(archive: bytes) -> list[str]:
    if not archive:
        return []
    try:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive))) as tar:
            return tar.getnames()
    except (OSError, tarfile.TarError):
        return []
