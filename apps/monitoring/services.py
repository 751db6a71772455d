"""Writes of the monitoring app: baselines (built from the run's reference data, or uploaded) and per-deployment
drift thresholds. Each user write checks the role and records an audit event in its own transaction."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pandas as pd
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.permissions import CHANGE_DRIFT_THRESHOLDS, SET_DRIFT_BASELINE, require
from apps.accounts.services import audit_changes, audit_record
from apps.common.api import if_match_check
from apps.common.errors import ApplicationError, NotFoundError, UnavailableError
from apps.monitoring.drift import profile_build
from apps.monitoring.models import Baseline, BaselineUpload, DriftThresholds, EarlierBaseline
from apps.monitoring.uploads import columns_check, table_read, upload_kind

__all__ = [
    "BASELINES_KEPT",
    "REFERENCE_ARTIFACT",
    "baseline_ensure",
    "baseline_from_frame",
    "baseline_restore",
    "baseline_store",
    "baseline_upload",
    "baseline_upload_process",
    "drift_thresholds_set",
    "read_table",
]

logger = logging.getLogger(__name__)

# What the demo models (apps/demo/registry/seed.py) and any well-behaved training run log as reference data.
REFERENCE_ARTIFACT = "reference/reference.parquet"


def read_table(data: bytes, *, filename: str = "") -> pd.DataFrame:
    """A Parquet file or a CSV file with a header row, told apart by their bytes (``uploads.upload_kind``: size,
    type and a name that matches the content are checked first)."""
    kind = upload_kind(data, filename=filename)
    try:
        frame = table_read(data, kind, filename=filename)  # within the row and memory limits
    except ApplicationError:
        raise
    except Exception as exc:  # pandas raises many kinds of parse errors
        raise ApplicationError(
            f"{filename or 'The file'} is neither a Parquet file nor a CSV file with a header: {exc}",
            code="invalid_file",
        ) from None
    if frame.empty or len(frame.columns) == 0:
        raise ApplicationError(f"{filename or 'The file'} has no rows.", code="invalid_file")
    return frame


def baseline_from_frame(
    *, model_name: str, model_version: str, frame: pd.DataFrame, source: str = Baseline.Source.RUN_REFERENCE
) -> Baseline:
    """Profile ``frame`` (a random sample of ``MONITORING_BASELINE_SAMPLE_ROWS`` rows when it has more: plenty for
    deciles and top-k shares) and store it as the baseline of the version (replacing an older one)."""
    sample_rows = settings.MONITORING_BASELINE_SAMPLE_ROWS
    if len(frame) > sample_rows:
        frame = frame.sample(n=sample_rows, random_state=0)
    profile = profile_build(
        frame,
        model_name=model_name,
        model_version=model_version,
        bins=settings.MONITORING_BASELINE_BINS,
        top_k=settings.MONITORING_BASELINE_TOP_K,
    )
    return baseline_store(
        model_name=model_name,
        model_version=str(model_version),
        source=source,
        profile=profile.to_json(),
        rows=profile.rows,
    )


BASELINES_KEPT = 10  # earlier baselines kept per model version, restorable


@transaction.atomic
def baseline_store(*, model_name: str, model_version: str, source: str, profile: dict, rows: int) -> Baseline:
    """Make ``profile`` the baseline of the version. The one it replaces is kept as an ``EarlierBaseline`` (the
    newest ``BASELINES_KEPT`` are), so it can be restored. Every way of setting a baseline writes through here."""
    current = Baseline.objects.select_for_update().filter(model_name=model_name, model_version=model_version).first()
    if current is None:
        return Baseline.objects.create(
            model_name=model_name, model_version=model_version, source=source, profile=profile, rows=rows
        )
    EarlierBaseline.objects.create(
        model_name=model_name,
        model_version=model_version,
        source=current.source,
        rows=current.rows,
        profile=current.profile,
        made_at=current.updated_at,
    )
    kept = EarlierBaseline.objects.filter(model_name=model_name, model_version=model_version)
    stale = list(kept.values_list("pk", flat=True)[BASELINES_KEPT:])
    EarlierBaseline.objects.filter(pk__in=stale).delete()
    current.source, current.profile, current.rows = source, profile, rows
    current.save(update_fields=["source", "profile", "rows", "updated_at"])
    return current


def baseline_restore(*, actor, model_name: str, model_version: str, earlier_id: int) -> Baseline:
    """Make an earlier baseline of the version its baseline again (ML leads; audited). The baseline it replaces
    becomes an earlier one in turn, so a restore can itself be undone."""
    require(actor, SET_DRIFT_BASELINE)
    with transaction.atomic():
        earlier = (
            EarlierBaseline.objects.select_for_update()
            .filter(pk=earlier_id, model_name=model_name, model_version=str(model_version))
            .first()
        )
        if earlier is None:
            raise NotFoundError(f"{model_name} v{model_version} has no earlier baseline {earlier_id}.")
        baseline = baseline_store(
            model_name=model_name,
            model_version=str(model_version),
            source=earlier.source,
            profile=earlier.profile,
            rows=earlier.rows,
        )
        audit_record(
            actor=actor,
            action="monitoring.baseline_restore",
            target_type="model_version",
            target_id=f"{model_name}/{model_version}",
            data={"source": earlier.source, "rows": earlier.rows, "made_at": earlier.made_at.isoformat()},
        )
        earlier.delete()
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
        except NotFoundError as exc:  # the file, or the run in this workspace, is missing
            raise NotFoundError(
                f"The run of {model_name} v{model_version} has no reference data set ({REFERENCE_ARTIFACT}): "
                f"{exc.message} Log one with the run, or upload one on the monitoring page, to see drift.",
                code="no_reference_data",
            ) from None
        except UnavailableError as exc:  # an outage or refused credentials: say which, never "no data"
            raise UnavailableError(
                f"The reference data of {model_name} v{model_version} cannot be read now: {exc.message}",
                code=exc.code,
            ) from None
        frame = read_table(Path(path).read_bytes(), filename=REFERENCE_ARTIFACT)
    try:
        return baseline_from_frame(model_name=model_name, model_version=str(model_version), frame=frame)
    except IntegrityError:  # built concurrently by another request
        return Baseline.objects.get(model_name=model_name, model_version=str(model_version))


def baseline_upload(
    *, actor, model_name: str, model_version: str, data: bytes, filename: str = ""
) -> Baseline | BaselineUpload:
    """Replace the baseline of a model version with the profile of an uploaded CSV or Parquet file whose columns
    match the version's signature (when it has one). The previous baseline stays until the new one is valid: every
    check and the profile come before the one write.

    A file up to ``MONITORING_BASELINE_INLINE_BYTES`` is parsed now (the new ``Baseline``). A larger one, which
    can take seconds, passes the cheap checks now (size, file type, that the version exists) and is stored and
    parsed by the ``monitoring.baseline_upload_process`` task: the answer is its ``BaselineUpload`` (queued), whose
    status says how it ended (done, or failed with the same refusal an inline upload gives)."""
    require(actor, SET_DRIFT_BASELINE)
    from apps.registry.client import get_client

    get_client().get_version(model_name, str(model_version))  # the version exists
    if len(data) <= settings.MONITORING_BASELINE_INLINE_BYTES:
        return _baseline_from_upload(
            actor=actor, model_name=model_name, model_version=str(model_version), data=data, filename=filename
        )
    upload_kind(data, filename=filename)  # too large, or not CSV or Parquet: refused now
    directory = Path(settings.VAR_DIR) / "baseline-uploads"
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".upload", delete=False) as stored:
        stored.write(data)
    with transaction.atomic():
        upload = BaselineUpload.objects.create(
            model_name=model_name,
            model_version=str(model_version),
            filename=filename[:200],
            path=stored.name,
            size=len(data),
            requested_by=actor,
        )
        audit_record(
            actor=actor,
            action="monitoring.baseline_upload_queued",
            target_type="model_version",
            target_id=f"{model_name}/{model_version}",
            data={"filename": filename[:200], "bytes": len(data), "upload": upload.pk},
        )
        upload_id = upload.pk
        transaction.on_commit(lambda: _publish_upload(upload_id), robust=True)
    return upload


def _publish_upload(upload_id: int) -> None:
    from apps.monitoring.tasks import baseline_upload_process as baseline_upload_process_task

    baseline_upload_process_task.apply_async(kwargs={"upload_id": upload_id})


def baseline_upload_process(*, upload_id: int) -> str:
    """Parse a stored upload and make it the baseline, or record why not on the upload. Safe to run twice: only a
    queued upload is taken (a conditional update), and the stored file is removed once it is parsed."""
    taken = BaselineUpload.objects.filter(pk=upload_id, status=BaselineUpload.Status.QUEUED).update(
        status=BaselineUpload.Status.PROCESSING, updated_at=timezone.now()
    )
    if not taken:
        return "not queued"
    upload = BaselineUpload.objects.select_related("requested_by").get(pk=upload_id)
    path = Path(upload.path)
    try:
        baseline = _baseline_from_upload(
            actor=upload.requested_by,
            model_name=upload.model_name,
            model_version=upload.model_version,
            data=path.read_bytes(),
            filename=upload.filename,
        )
    except ApplicationError as exc:
        fields = {"status": BaselineUpload.Status.FAILED, "code": exc.code, "error": exc.message[:5000]}
    except OSError as exc:
        error = f"The stored file cannot be read: {exc}"
        fields = {"status": BaselineUpload.Status.FAILED, "code": "file_lost", "error": error}
    else:
        fields = {"status": BaselineUpload.Status.DONE, "rows": baseline.rows}
    BaselineUpload.objects.filter(pk=upload_id).update(**fields, finished_at=timezone.now(), updated_at=timezone.now())
    path.unlink(missing_ok=True)
    return fields["status"]


def _baseline_from_upload(*, actor, model_name: str, model_version: str, data: bytes, filename: str) -> Baseline:
    from apps.registry.selectors import signature_or_reason

    frame = read_table(data, filename=filename)
    signature, unreadable = signature_or_reason(name=model_name, version=str(model_version))
    if unreadable:
        logger.warning("baseline columns of %s v%s not checked: %s", model_name, model_version, unreadable)
    columns_check(list(frame.columns), signature, filename=filename)
    with transaction.atomic():
        baseline = baseline_from_frame(
            model_name=model_name, model_version=str(model_version), frame=frame, source=Baseline.Source.UPLOAD
        )
        audit_record(
            actor=actor,
            action="monitoring.baseline_upload",
            target_type="model_version",
            target_id=f"{model_name}/{model_version}",
            data={
                "filename": filename[:200],
                "rows": baseline.rows,
                "rows_in_file": len(frame),
                "columns": len(frame.columns),
                "columns_checked": signature is not None,
            },
        )
    return baseline


def drift_thresholds_set(
    *, actor, deployment, psi_warn: float, psi_alert: float, if_match: str | None = None
) -> DriftThresholds:
    """Set the deployment's PSI thresholds. ``if_match`` (an ``If-Match`` value): only if they are still the ones
    of that ``ETag`` (412 otherwise); checked and written under a lock of the deployment, so of two concurrent
    editors of the same version one wins and the other is refused."""
    from apps.deployments.models import Deployment
    from apps.monitoring.selectors import drift_thresholds_etag

    require(actor, CHANGE_DRIFT_THRESHOLDS, environment=deployment.environment)
    with transaction.atomic():
        Deployment.objects.select_for_update().filter(pk=deployment.pk).first()
        if_match_check(if_match, drift_thresholds_etag(deployment=deployment))
        thresholds = DriftThresholds.objects.filter(deployment=deployment).first() or DriftThresholds(
            deployment=deployment
        )
        before = {"psi_warn": thresholds.psi_warn, "psi_alert": thresholds.psi_alert} if thresholds.pk else {}
        thresholds.psi_warn, thresholds.psi_alert = float(psi_warn), float(psi_alert)
        try:
            thresholds.full_clean()
        except ValidationError as exc:
            raise ApplicationError(
                " ".join(m for messages in exc.message_dict.values() for m in messages), code="invalid_thresholds"
            ) from None
        thresholds.save()
        audit_record(
            actor=actor,
            action="monitoring.thresholds_set",
            target_type="deployment",
            target_id=deployment.pk,
            data=audit_changes(
                before,
                {"psi_warn": thresholds.psi_warn, "psi_alert": thresholds.psi_alert},
                psi_warn=thresholds.psi_warn,
                psi_alert=thresholds.psi_alert,
            ),
        )
    return thresholds
