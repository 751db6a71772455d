"""The MLflow registry's row on the status page (composed in ``controlplane/status.py``)."""

from __future__ import annotations

from django.conf import settings

from apps.common.errors import ApplicationError
from apps.common.status import StatusCheck
from apps.common.uris import mask_uri
from apps.registry.selectors import registered_model_list

__all__ = ["registry_status"]


def registry_status() -> StatusCheck:
    """Reachable when one page of one registered model comes back."""
    try:
        registered_model_list(page_size=1)
        error = ""
    except ApplicationError as exc:
        error = exc.message
    return StatusCheck(
        name="MLflow registry",
        ok=not error,
        state="unreachable" if error else "reachable",
        target=mask_uri(settings.MLFLOW_REGISTRY_URI),
        error=error,
    )
