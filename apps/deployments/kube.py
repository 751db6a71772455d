"""The Kubernetes API client shared by the ``kubernetes`` target and the ``buildah`` builder.

One place says how the worker reaches a cluster and proves who it is (``clusters.py`` defines the clusters; here
they are connected: a token file re-read when it rotates, a kubeconfig with its context, CA and exec plugin, an
Entra token for AKS from workload identity, renewed before it expires), how a typed API method is called (plain
JSON back, no model deserialisation) and how the API's refusals become backend errors a person can act on. A
credential that cannot be obtained is an error naming the cluster, never an anonymous request; a 401 or 403 is a
permanent failure naming the cluster, never a retry. The ``kubernetes`` package is imported only here and by the
two backends that use this module (STYLE.md 2.4). Credentials are never logged or put in a message.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes.client
import urllib3
import yaml
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.exec_provider import ExecProvider
from kubernetes.config.kube_config import ConfigNode, KubeConfigLoader

from apps.deployments.backends import BackendError, PermanentBackendError, TransientBackendError
from apps.deployments.clusters import DEFAULT_CLUSTER, SERVICE_ACCOUNT_DIR, Cluster, cluster_get, legacy_cluster

__all__ = ["CONNECTION_OPTIONS", "ClusterAccessError", "KubernetesClient", "api_error", "status_of", "access_refused"]

# The backend options that say which cluster and how to authenticate; the rest belong to the backend. ``cluster``
# (a name in KUBERNETES_CLUSTERS, or a ``Cluster``) wins over the others, which describe the default cluster.
CONNECTION_OPTIONS = ("cluster", "api_url", "token", "token_file", "verify_ssl", "ca_cert", "kubeconfig", "context")


class ClusterAccessError(PermanentBackendError):
    """The cluster refused who we are (401) or what we asked (403), or no credential could be obtained for it:
    permanent (a person must fix the credentials or the Role), and the message names the cluster."""


# Renew a token this long before it expires (kubectl and the client library use the same margin for exec plugins).
EXPIRY_MARGIN_SECONDS = 300


class KubernetesClient:
    """Options: ``cluster`` (a ``clusters.Cluster`` or the name of one), else the default cluster's connection
    options (``clusters.legacy_cluster``). Every call times out after ``request_timeout`` seconds."""

    def __init__(self, options: Mapping[str, Any], *, request_timeout: float = 30.0) -> None:
        self.options = {key: options[key] for key in CONNECTION_OPTIONS if key in options}
        self.request_timeout = request_timeout
        self._api_client: kubernetes.client.ApiClient | None = None
        self._cluster: Cluster | None = None

    # ------------------------------------------------------------------ configuration
    @property
    def cluster(self) -> Cluster:
        """The cluster this client talks to. Resolved on first use, so an unknown name fails inside a step."""
        if self._cluster is None:
            chosen = self.options.get("cluster")
            if isinstance(chosen, Cluster):
                self._cluster = chosen
            elif chosen:
                try:
                    self._cluster = cluster_get(str(chosen))
                except ValueError as exc:
                    raise ClusterAccessError(str(exc)) from None
            else:
                self._cluster = legacy_cluster(self.options)
        return self._cluster

    def _configuration(self) -> kubernetes.client.Configuration:
        cluster = self.cluster
        cfg = kubernetes.client.Configuration()
        try:
            if cluster.auth == "kubeconfig":
                source = _load_kubeconfig(cluster, cfg)
            else:
                source = _server_access(cluster, cfg)
        except (ConfigException, OSError, ValueError, yaml.YAMLError) as exc:
            message = f"cannot configure the Kubernetes client for cluster {cluster.label}: {exc}"
            raise ClusterAccessError(message) from None
        if source is not None:
            # Asked before every request (the client calls the hook while building the headers), so a rotated
            # token file or a renewed Entra token is used at once and an expired one never is.
            cfg.api_key = {"BearerToken": ""}
            cfg.api_key_prefix = {"BearerToken": "Bearer"}
            cfg.refresh_api_key_hook = lambda c: c.api_key.__setitem__("BearerToken", source())
        cfg.retries = 1  # the task layer retries transient failures with backoff
        return cfg

    @property
    def api_client(self) -> kubernetes.client.ApiClient:
        if self._api_client is None:
            self._api_client = kubernetes.client.ApiClient(self._configuration())
        return self._api_client

    @property
    def configuration(self) -> kubernetes.client.Configuration:
        return self.api_client.configuration

    # ------------------------------------------------------------------ typed APIs
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api_client)

    def apps(self) -> kubernetes.client.AppsV1Api:
        return kubernetes.client.AppsV1Api(self.api_client)

    def batch(self) -> kubernetes.client.BatchV1Api:
        return kubernetes.client.BatchV1Api(self.api_client)

    def policy(self) -> kubernetes.client.PolicyV1Api:
        return kubernetes.client.PolicyV1Api(self.api_client)

    def autoscaling(self) -> kubernetes.client.AutoscalingV2Api:
        return kubernetes.client.AutoscalingV2Api(self.api_client)

    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api_client)

    # ------------------------------------------------------------------ calls
    def call(self, what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a typed API method and return the JSON answer as plain dicts (or text for logs).

        ``what`` completes "cannot ..." in error messages. Raw answers avoid deserialising into the client's
        models, which would reject partial objects. Refusals raise ``PermanentBackendError`` (with ``status``),
        an unreachable or overloaded API ``TransientBackendError``."""
        try:
            response = method(*args, _preload_content=False, _request_timeout=self.request_timeout, **kwargs)
        except ApiException as exc:
            raise api_error(what, exc, self.cluster) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransientBackendError(f"cannot reach the Kubernetes API to {what}: {exc}") from exc
        data = response.data
        if "json" not in (response.headers.get("content-type") or "json"):
            return data.decode("utf-8", "replace")
        try:
            return json.loads(data) if data else {}
        except ValueError as exc:
            raise TransientBackendError(f"the Kubernetes API answered garbage to {what}: {data[:200]!r}") from exc

    def read(self, what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any | None:
        """``call`` for a read that may find nothing: None when the object does not exist (404)."""
        try:
            return self.call(what, method, *args, **kwargs)
        except PermanentBackendError as exc:
            if status_of(exc) == 404:
                return None
            raise


def status_of(error: Exception) -> int | None:
    """The HTTP status the Kubernetes API answered with, for errors raised by ``KubernetesClient.call``."""
    return getattr(error, "status", None)


def api_error(what: str, exc: ApiException, cluster: Cluster | None = None) -> BackendError:
    status = int(exc.status or 0)
    message = exc.reason or ""
    try:
        message = json.loads(exc.body or "{}").get("message") or message
    except (ValueError, AttributeError):
        pass
    error: BackendError
    if cluster is not None and (status == 401 or (status == 403 and _RBAC_REFUSAL.search(message))):
        error = ClusterAccessError(_refusal_text(what, status, message, cluster))
    elif status == 0 or status == 429 or status >= 500:
        error = TransientBackendError(f"cannot {what}: Kubernetes API answered {status or 'nothing'}: {message}")
    else:
        error = PermanentBackendError(f"Kubernetes API refused to {what} ({status}): {message}")
    error.status = status  # type: ignore[attr-defined]
    return error


# The authorizer's wording (`User "x" cannot create resource ...`); other 403s are admission refusals (Pod
# Security, quotas, webhooks), which name their own cause.
_RBAC_REFUSAL = re.compile(r'(User|Group) "[^"]*" cannot ')


def access_refused(error: Exception) -> bool:
    """Whether ``error`` is the cluster refusing who we are (401) or what we asked (403): no retry helps."""
    return status_of(error) in (401, 403)


_AUTH_NAMES = {
    "in_cluster": "the pod's service account token",
    "kubeconfig": "the kubeconfig's user",
    "token": "a bearer token",
    "workload_identity": "an Entra token from workload identity",
}


def _refusal_text(what: str, status: int, message: str, cluster: Cluster) -> str:
    if status == 401:
        hint = {
            "token": f"the token{' in ' + cluster.token_file if cluster.token_file else ''} is wrong or expired",
            "in_cluster": "the service account token is wrong or expired",
            "kubeconfig": "the kubeconfig's credentials are wrong or expired",
            "workload_identity": "the cluster does not accept this identity's Entra tokens (is Entra ID integration "
            "on, and the token for this tenant?)",
        }.get(cluster.auth, "")
        return (
            f"Kubernetes cluster {cluster.label} did not accept {_AUTH_NAMES.get(cluster.auth, 'the credentials')} "
            f"(401 Unauthorized) when trying to {what}: {hint}. Fix the cluster's credentials ({_where(cluster)}); "
            "retrying will not help."
        )
    return (
        f"Kubernetes cluster {cluster.label} refused to {what} (403 Forbidden): {message}. The worker's Role in that "
        "namespace lacks this permission (docs/deploy-aks.md, RBAC)."
    )


def _where(cluster: Cluster) -> str:
    if cluster.name == DEFAULT_CLUSTER:
        return "the KUBERNETES_API_URL/KUBERNETES_TOKEN/KUBECONFIG settings of the default cluster"
    return f"cluster {cluster.name!r} in KUBERNETES_CLUSTERS"


# ---------------------------------------------------------------------------------------------- credentials
def _tls(cluster: Cluster, cfg: kubernetes.client.Configuration, ca_file: str = "") -> None:
    cfg.verify_ssl = cluster.verify_ssl
    if ca_file:
        cfg.ssl_ca_cert = ca_file
    elif cluster.ca_data:
        cfg.ca_cert_data = cluster.ca_pem()


def _server_access(cluster: Cluster, cfg: kubernetes.client.Configuration) -> Callable[[], str] | None:
    """Configure ``cfg`` for a cluster reached at a URL; returns where each request's bearer token comes from."""
    if cluster.auth == "in_cluster":
        server = cluster.server
        if not server:
            host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
            if not host or not port:
                raise ValueError("the worker does not run in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set)")
            server = f"https://{'[' + host + ']' if ':' in host else host}:{port}"
        cfg.host = server.rstrip("/")
        _tls(cluster, cfg, cluster.ca_file or (f"{SERVICE_ACCOUNT_DIR}/ca.crt" if not cluster.ca_data else ""))
        return TokenFile(cluster.token_file or f"{SERVICE_ACCOUNT_DIR}/token", cluster)
    cfg.host = cluster.server.rstrip("/")
    _tls(cluster, cfg, cluster.ca_file)
    if cluster.auth == "workload_identity":
        return EntraToken(cluster)
    if cluster.token_file:
        return TokenFile(cluster.token_file, cluster)
    if cluster.token:
        token = cluster.token
        return lambda: token
    return None  # a URL without credentials: only for a cluster that allows anonymous requests (tests)


class TokenFile:
    """A bearer token in a file, read again whenever the file changes: projected service account tokens are
    rotated by the kubelet (an atomic swap of the file), and a token read once would expire within the hour."""

    def __init__(self, path: str, cluster: Cluster) -> None:
        self.path, self.cluster = path, cluster
        self._stamp: tuple[int, int, int] | None = None
        self._token = ""
        self._lock = threading.Lock()

    def __call__(self) -> str:
        try:
            stat = os.stat(self.path)
            stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            with self._lock:
                if stamp != self._stamp:
                    self._token, self._stamp = Path(self.path).read_text().strip(), stamp
                token = self._token
        except OSError as exc:
            raise ClusterAccessError(
                f"cannot read the token for Kubernetes cluster {self.cluster.label} from {self.path}: {exc.strerror}"
            ) from None
        if not token:
            message = f"the token file {self.path} of Kubernetes cluster {self.cluster.label} is empty"
            raise ClusterAccessError(message)
        return token


@functools.cache
def _workload_identity_credential(tenant_id: str, client_id: str, token_file: str, authority_host: str) -> Any:
    """One credential per identity and process, so its token cache outlives a step (azure-identity renews the
    token shortly before it expires; Entra tokens last about an hour)."""
    from azure.identity import WorkloadIdentityCredential

    options = {"authority": authority_host} if authority_host else {}
    return WorkloadIdentityCredential(
        tenant_id=tenant_id or None, client_id=client_id or None, token_file_path=token_file or None, **options
    )


class EntraToken:
    """A Microsoft Entra access token for the AKS API, from workload identity: the federated service account token
    is exchanged for one (azure-identity), which is renewed before it expires; each request asks again."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def __call__(self) -> str:
        from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

        cluster = self.cluster
        try:
            credential = _workload_identity_credential(
                cluster.tenant_id, cluster.client_id, cluster.federated_token_file, cluster.authority_host
            )
            return credential.get_token(cluster.scope).token
        except ValueError as exc:  # not configured: the AZURE_* variables of the webhook are missing
            raise ClusterAccessError(
                f"Kubernetes cluster {cluster.label} uses workload identity, which is not configured here: {exc}"
            ) from None
        except ServiceRequestError as exc:
            raise TransientBackendError(
                f"cannot reach Microsoft Entra ID for a token for Kubernetes cluster {cluster.label}: {exc.message}"
            ) from None
        except ClientAuthenticationError as exc:
            first_line = (exc.message or str(exc)).strip().splitlines()[0] if (exc.message or str(exc)) else ""
            raise ClusterAccessError(
                f"Microsoft Entra ID refused a token for Kubernetes cluster {cluster.label} "
                f"(workload identity, scope {cluster.scope}): {first_line}"
            ) from None


# ---------------------------------------------------------------------------------------------- kubeconfig
_CREDENTIAL_KEYS = ("token", "tokenFile", "exec", "auth-provider", "client-certificate", "client-certificate-data")


def _load_kubeconfig(cluster: Cluster, cfg: kubernetes.client.Configuration) -> Callable[[], str] | None:
    """Configure ``cfg`` from the kubeconfig's context: server, CA (file or inline data), TLS verification, client
    certificate; returns the token source for a token file or an exec plugin (run here, not by the library, which
    logs a failing plugin and carries on without credentials)."""
    path = Path(cluster.kubeconfig).expanduser()
    config = yaml.safe_load(path.read_text()) or {}
    contexts = {c.get("name"): c.get("context") or {} for c in config.get("contexts") or []}
    context = cluster.context or config.get("current-context") or ""
    if context not in contexts:
        known = ", ".join(sorted(str(name) for name in contexts)) or "none"
        raise ValueError(f"kubeconfig {path} has no context {context!r} (it has: {known})")
    user_name = contexts[context].get("user")
    users = {u.get("name"): u.get("user") or {} for u in config.get("users") or []}
    user = users.get(user_name) or {}
    base = str(path.resolve().parent)
    editable = copy.deepcopy(config)
    for entry in editable.get("users") or []:
        if entry.get("name") == user_name and isinstance(entry.get("user"), dict):
            entry["user"].pop("exec", None)  # run below, loudly
    KubeConfigLoader(config_dict=editable, active_context=context, config_base_path=base).load_and_set(cfg)
    source: Callable[[], str] | None = None
    if user.get("exec"):
        source = ExecPlugin(user["exec"], base, cluster, str(user_name))
    elif user.get("tokenFile"):
        source = TokenFile(os.path.join(base, user["tokenFile"]), cluster)
    if source is None and any(key in user for key in _CREDENTIAL_KEYS):
        if not cfg.api_key.get("BearerToken") and not cfg.cert_file:
            kinds = ", ".join(key for key in _CREDENTIAL_KEYS if key in user)
            raise ValueError(f"the credentials of kubeconfig user {user_name!r} ({kinds}) could not be loaded")
    if source is not None:
        source()  # fail now, loudly, rather than with an anonymous request
    return source


class ExecPlugin:
    """A kubeconfig exec credential plugin (``kubelogin`` for Entra-only AKS clusters), run when its token is
    about to expire. A plugin that is missing or fails is a ``PermanentBackendError`` naming it."""

    def __init__(self, exec_config: dict[str, Any], base_path: str, cluster: Cluster, user: str) -> None:
        self.config, self.base_path, self.cluster, self.user = exec_config, base_path, cluster, user
        self.command = str(exec_config.get("command") or "")
        self._token = ""
        self._expiry: datetime | None = None
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            fresh = self._expiry is None or (self._expiry - datetime.now(UTC)).total_seconds() > EXPIRY_MARGIN_SECONDS
            if not self._token or not fresh:
                self._run()
            return self._token

    def _run(self) -> None:
        who = f"kubeconfig user {self.user!r} of Kubernetes cluster {self.cluster.label}"
        try:
            status = ExecProvider(ConfigNode("exec", self.config), self.base_path).run()
        except FileNotFoundError:
            raise ClusterAccessError(
                f"{who} signs in with the exec plugin {self.command!r}, which is not installed where the worker runs "
                "(not found on PATH). Install it in the worker image (for AKS: kubelogin), or give the cluster "
                "auth: workload_identity in KUBERNETES_CLUSTERS."
            ) from None
        except (ConfigException, OSError) as exc:
            raise ClusterAccessError(f"the exec plugin {self.command!r} of {who} failed: {exc}") from None
        token = status.get("token")
        if not token:
            raise ClusterAccessError(
                f"the exec plugin {self.command!r} of {who} returned no token (client certificates from exec plugins "
                "are not supported)"
            )
        self._token = token
        expiry = status.get("expirationTimestamp")
        self._expiry = datetime.fromisoformat(expiry.replace("Z", "+00:00")) if expiry else None
