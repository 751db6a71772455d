"""Databricks credentials from what AKS gives a pod.

The Databricks SDK reads ``DATABRICKS_TOKEN`` (a personal access token), ``DATABRICKS_CLIENT_ID`` with
``DATABRICKS_CLIENT_SECRET`` (OAuth M2M) and ``ARM_*`` (an Entra ID service principal) by itself. It does not
read what the AKS workload identity webhook injects (``AZURE_CLIENT_ID``, ``AZURE_FEDERATED_TOKEN_FILE``), so
that case is mapped here to Databricks OAuth token federation: the projected service-account token is exchanged
at the workspace's ``/oidc/v1/token`` for a Databricks token (the SDK's ``file-oidc`` auth type), which needs a
federation policy on the Databricks service principal whose application id is ``DATABRICKS_CLIENT_ID`` (or,
when unset, ``AZURE_CLIENT_ID``).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

__all__ = ["workload_identity_apply"]

EXPLICIT = ("DATABRICKS_TOKEN", "DATABRICKS_CLIENT_SECRET", "DATABRICKS_AUTH_TYPE", "ARM_CLIENT_SECRET")


def workload_identity_apply(environ: MutableMapping[str, str] = os.environ) -> str | None:
    """Turn an AKS workload identity into the SDK's ``file-oidc`` settings, unless other credentials are set.
    Returns the auth type chosen here (``"file-oidc"``), or None when nothing was changed."""
    token_file = environ.get("AZURE_FEDERATED_TOKEN_FILE", "")
    if not token_file or not environ.get("DATABRICKS_HOST") or any(environ.get(name) for name in EXPLICIT):
        return None
    client_id = environ.get("DATABRICKS_CLIENT_ID") or environ.get("AZURE_CLIENT_ID", "")
    if not client_id:
        return None
    environ["DATABRICKS_AUTH_TYPE"] = "file-oidc"
    environ["DATABRICKS_OIDC_TOKEN_FILEPATH"] = token_file
    environ["DATABRICKS_CLIENT_ID"] = client_id
    return "file-oidc"
