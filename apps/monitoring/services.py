from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pandas as pd
from django.conf import settings
from django.db import IntegrityError

from apps.common.errors import ApplicationError, NotFoundError
from apps.monitoring.drift import profile_build
from apps.monitoring.models import Baseline

__all__ = ["REFERENCE_ARTIFACT", "baseline_ensure", "baseline_from_frame"]

logger = logging.getLogger(__name__)

# What the demo models (apps/registry/demo/seed.py) and any well-behaved training run log as reference data.
REFERENCE_ARTIFACT = "reference/reference.parquet"


def baseline_from_frame(*, model_name: str, model_version: str, frame: pd.DataFrame) -> Baseline:
    """Profile ``frame`` and store it as the baseline of the version (replacing an older one)."""
    profile = profile_build(
        frame,
        model_name=model_name,
        model_version=model_version,
        bins=settings.MONITORING_BASELINE_BINS,
        top_k=settings.MONITORING_BASELINE_TOP_K,
    )
    baseline, _ = Baseline.objects.update_or_create(
        model_name=model_name,
        model_version=str(model_version),
        defaults={"profile": profile.to_json(), "rows": profile.rows, "source": Baseline.Source.RUN_REFERENCE},
    )
    return baseline


def baseline_ensure(*, model_name: str, model_version: str) -> Baseline:
    """The stored baseline of a model version, built on first use from its run's reference data set."""
    existing = Baseline.objects.filter(model_name=model_name, model_version=str(model_version)).first()
    if existing is not None:
        return existing
    from apps.registry.client import get_client

    client = get_client()
    version = client.get_version(model_name, str(model_version))
    if not version.run_id:
        raise NotFoundError(f"{model_name} v{model_version} has no source run, so no reference data for drift.")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_run_artifact(version.run_id, REFERENCE_ARTIFACT, tmp)
        except ApplicationError:
            raise NotFoundError(
                f"The run of {model_name} v{model_version} has no reference data set ({REFERENCE_ARTIFACT}): "
                "log one with the run to see drift.",
                code="no_reference_data",
            ) from None
        try:
            frame = pd.read_parquet(Path(path))
        except Exception as exc:  # a corrupt or foreign file
            raise ApplicationError(
                f"The reference data of {model_name} v{model_version} cannot be read: {exc}"
            ) from None
    try:
        return baseline_from_frame(model_name=model_name, model_version=str(model_version), frame=frame)
    except IntegrityError:  # built concurrently by another request
        return Baseline.objects.get(model_name=model_name, model_version=str(model_version))
