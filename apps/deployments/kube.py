"""The Kubernetes API client shared by the ``kubernetes`` target and the ``buildah`` builder.

One place says how the worker reaches a cluster (an API URL and token, else a kubeconfig and context, else the
in-cluster service account), how a typed API method is called (plain JSON back, no model deserialisation) and
how the API's refusals become backend errors a person can act on. The ``kubernetes`` package is imported only
here and by the two backends that use this module (STYLE.md 2.4).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import kubernetes.client
import kubernetes.config
import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from apps.deployments.backends import PermanentBackendError, TransientBackendError, truthy

__all__ = ["CONNECTION_OPTIONS", "KubernetesClient", "api_error", "status_of"]

# The backend options that say which cluster and how to authenticate; the rest belong to the backend.
CONNECTION_OPTIONS = ("api_url", "token", "verify_ssl", "ca_cert", "kubeconfig", "context")


class KubernetesClient:
    """Options: ``api_url`` (+ ``token``, ``verify_ssl``, ``ca_cert``), else ``kubeconfig`` (+ ``context``),
    else the in-cluster service account. Every call times out after ``request_timeout`` seconds."""

    def __init__(self, options: Mapping[str, Any], *, request_timeout: float = 30.0) -> None:
        self.options = {key: options[key] for key in CONNECTION_OPTIONS if key in options}
        self.request_timeout = request_timeout
        self._api_client: kubernetes.client.ApiClient | None = None

    # ------------------------------------------------------------------ configuration
    def _configuration(self) -> kubernetes.client.Configuration:
        cfg = kubernetes.client.Configuration()
        try:
            if self.options.get("api_url"):
                cfg.host = str(self.options["api_url"]).rstrip("/")
                if self.options.get("token"):
                    cfg.api_key = {"BearerToken": self.options["token"]}
                    cfg.api_key_prefix = {"BearerToken": "Bearer"}
                cfg.verify_ssl = truthy(self.options.get("verify_ssl", True))
                if self.options.get("ca_cert"):
                    cfg.ssl_ca_cert = self.options["ca_cert"]
            elif self.options.get("kubeconfig"):
                kubernetes.config.load_kube_config(
                    config_file=self.options["kubeconfig"],
                    context=self.options.get("context") or None,
                    client_configuration=cfg,
                    persist_config=False,
                )
            else:
                kubernetes.config.load_incluster_config(client_configuration=cfg)
        except (ConfigException, OSError) as exc:
            raise PermanentBackendError(f"cannot configure the Kubernetes client: {exc}") from exc
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

    # ------------------------------------------------------------------ calls
    def call(self, what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a typed API method and return the JSON answer as plain dicts (or text for logs).

        ``what`` completes "cannot ..." in error messages. Raw answers avoid deserialising into the client's
        models, which would reject partial objects. Refusals raise ``PermanentBackendError`` (with ``status``),
        an unreachable or overloaded API ``TransientBackendError``."""
        try:
            response = method(*args, _preload_content=False, _request_timeout=self.request_timeout, **kwargs)
        except ApiException as exc:
            raise api_error(what, exc) from exc
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


def api_error(what: str, exc: ApiException) -> PermanentBackendError | TransientBackendError:
    status = int(exc.status or 0)
    message = exc.reason or ""
    try:
        message = json.loads(exc.body or "{}").get("message") or message
    except (ValueError, AttributeError):
        pass
    text = f"Kubernetes API refused to {what} ({status}): {message}"
    error: PermanentBackendError | TransientBackendError
    if status == 0 or status == 429 or status >= 500:
        error = TransientBackendError(f"cannot {what}: Kubernetes API answered {status or 'nothing'}: {message}")
    else:
        error = PermanentBackendError(text)
    error.status = status  # type: ignore[attr-defined]
    return error
