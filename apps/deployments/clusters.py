"""Which Kubernetes cluster an environment deploys to, and how the worker authenticates there.

An environment names a cluster (``Environment.cluster``); the definitions live in the settings
(``KUBERNETES_CLUSTERS``, a YAML or JSON mapping, inline or from ``KUBERNETES_CLUSTERS_FILE``), never in the
database or on a page: they point at credentials (files, the pod's identity), and a few may hold a token. A blank
``cluster`` is the *default* cluster, configured as before by ``KUBERNETES_API_URL``/``KUBERNETES_TOKEN``/
``KUBERNETES_CA_CERT``, else ``KUBECONFIG`` (+ ``KUBERNETES_CONTEXT``), else the in-cluster service account
(``DEPLOY_TARGET_OPTIONS["kubernetes"]``).

Authentication modes (``auth``):

``in_cluster``         the pod's service account: ``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``,
                       the projected token (re-read whenever the kubelet rotates it) and the cluster CA.
``kubeconfig``         a kubeconfig file (``kubeconfig``) and context (``context``, else its current context): server,
                       CA (a file or inline data), TLS verification, and the user's token, token file, client
                       certificate or exec plugin (``kubelogin``). A credential that cannot be loaded is an error,
                       never an anonymous request.
``token``              ``server`` with a bearer token from ``token_file`` (re-read when it changes) or ``token``.
``workload_identity``  ``server``; the federated service-account token (``AZURE_FEDERATED_TOKEN_FILE``) is exchanged
                       by azure-identity for a Microsoft Entra token for the AKS API (``scope``), renewed before it
                       expires. ``tenant_id``/``client_id``/``federated_token_file``/``authority_host`` default to the
                       ``AZURE_*`` variables the workload identity webhook injects.

``server`` modes take ``ca_file`` or ``ca_data`` (base64 PEM, as kubeconfig's ``certificate-authority-data``) and
``verify_ssl`` (default true). This module only reads and checks definitions; ``kube.py`` connects.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from django.conf import settings

from apps.deployments.backends import truthy

__all__ = [
    "AKS_SCOPE",
    "AUTH_MODES",
    "DEFAULT_CLUSTER",
    "Cluster",
    "cluster_get",
    "cluster_names",
    "cluster_refusal",
    "clusters_problems",
    "default_cluster",
    "legacy_cluster",
]

# The well-known application id of the AKS AAD server (the "Azure Kubernetes Service AAD Server" app): the audience
# of every Entra token AKS accepts.
AKS_SCOPE = "6dae42f8-4368-4678-94ff-3960e28e3630/.default"
AUTH_MODES = ("in_cluster", "kubeconfig", "token", "workload_identity")
DEFAULT_CLUSTER = "default"  # how messages name the cluster of an environment whose ``cluster`` is blank
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass(frozen=True)
class Cluster:
    """One cluster and how to reach it. Secrets (``token``, ``ca_data``) never appear in its repr."""

    name: str
    auth: str
    server: str = ""
    token: str = field(default="", repr=False)
    token_file: str = ""
    ca_file: str = ""
    ca_data: str = field(default="", repr=False)
    verify_ssl: bool = True
    kubeconfig: str = ""
    context: str = ""
    tenant_id: str = ""
    client_id: str = ""
    federated_token_file: str = ""
    authority_host: str = ""
    scope: str = AKS_SCOPE

    @property
    def label(self) -> str:
        """How messages name it: ``production-aks (https://...)``; never a credential."""
        where = self.server or (f"kubeconfig {self.kubeconfig}" + (f", context {self.context}" if self.context else ""))
        if self.auth == "in_cluster" and not self.server:
            where = "in-cluster"
        return f"{self.name} ({where})" if where else self.name

    def ca_pem(self) -> str:
        """The inline CA as PEM text ("" when none)."""
        if not self.ca_data:
            return ""
        if "-----BEGIN" in self.ca_data:
            return self.ca_data
        return base64.b64decode(self.ca_data).decode("ascii")


_KEYS = {f.name for f in fields(Cluster)} - {"name"}


def _problems(name: str, raw: Any) -> list[str]:
    if not isinstance(raw, Mapping):
        return [f"cluster {name!r} must be a mapping of settings"]
    problems = [f"cluster {name!r}: unknown setting {key!r}" for key in raw if key not in _KEYS]
    auth = raw.get("auth")
    if auth not in AUTH_MODES:
        problems.append(f"cluster {name!r}: auth must be one of {', '.join(AUTH_MODES)} (got {auth!r})")
    if auth == "kubeconfig" and not raw.get("kubeconfig"):
        problems.append(f"cluster {name!r}: auth kubeconfig needs the kubeconfig file's path")
    if auth in ("token", "workload_identity") and not raw.get("server"):
        problems.append(f"cluster {name!r}: auth {auth} needs the API server's URL (server)")
    if auth == "token" and not (raw.get("token") or raw.get("token_file")):
        problems.append(f"cluster {name!r}: auth token needs token_file (or token)")
    if raw.get("ca_file") and raw.get("ca_data"):
        problems.append(f"cluster {name!r}: give ca_file or ca_data, not both")
    if raw.get("ca_data") and "-----BEGIN" not in str(raw["ca_data"]):
        try:
            base64.b64decode(str(raw["ca_data"]), validate=True)
        except (binascii.Error, ValueError):
            problems.append(f"cluster {name!r}: ca_data is neither PEM nor base64")
    return problems


def clusters_problems(raw: Any = None) -> list[str]:
    """What is wrong with the ``KUBERNETES_CLUSTERS`` setting (empty: nothing)."""
    raw = settings.KUBERNETES_CLUSTERS if raw is None else raw
    if not isinstance(raw, Mapping):
        return ["KUBERNETES_CLUSTERS must map cluster names to their settings"]
    return [problem for name, entry in raw.items() for problem in _problems(str(name), entry)]


def cluster_names() -> list[str]:
    """The clusters an environment may name, in the order the settings list them."""
    raw = settings.KUBERNETES_CLUSTERS
    return [str(name) for name in raw] if isinstance(raw, Mapping) else []


def cluster_refusal(name: str) -> str | None:
    """Why an environment cannot name ``name`` (None: it can; blank is the default cluster)."""
    if not name:
        return None
    known = cluster_names()
    if name not in known:
        listed = ", ".join(known) if known else "none (KUBERNETES_CLUSTERS is empty)"
        return f"Unknown cluster {name!r}. The settings define: {listed}."
    problems = _problems(name, settings.KUBERNETES_CLUSTERS[name])
    return f"Cluster {name!r} is misconfigured in KUBERNETES_CLUSTERS: {'; '.join(problems)}." if problems else None


def cluster_get(name: str) -> Cluster:
    """The cluster ``name`` from the settings; ``ValueError`` (with a message for people) when there is none."""
    if refusal := cluster_refusal(name):
        raise ValueError(refusal)
    raw = dict(settings.KUBERNETES_CLUSTERS[name])
    if "verify_ssl" in raw:
        raw["verify_ssl"] = truthy(raw["verify_ssl"])
    return Cluster(name=name, **{key: value if key == "verify_ssl" else str(value) for key, value in raw.items()})


def legacy_cluster(options: Mapping[str, Any], name: str = DEFAULT_CLUSTER) -> Cluster:
    """The default cluster from a backend's connection options (``api_url`` + ``token``, ``token_file``,
    ``verify_ssl``, ``ca_cert``; else ``kubeconfig`` + ``context``; else in-cluster)."""
    if options.get("api_url"):
        return Cluster(
            name=name,
            auth="token",
            server=str(options["api_url"]).rstrip("/"),
            token=str(options.get("token") or ""),
            token_file=str(options.get("token_file") or ""),
            ca_file=str(options.get("ca_cert") or ""),
            verify_ssl=truthy(options.get("verify_ssl", True)),
        )
    if options.get("kubeconfig"):
        context = str(options.get("context") or "")
        return Cluster(name=name, auth="kubeconfig", kubeconfig=str(options["kubeconfig"]), context=context)
    return Cluster(name=name, auth="in_cluster")


def default_cluster() -> Cluster:
    """The cluster of environments with a blank ``cluster``: the ``kubernetes`` target's connection options."""
    return legacy_cluster(getattr(settings, "DEPLOY_TARGET_OPTIONS", {}).get("kubernetes", {}))
