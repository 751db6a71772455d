"""Uploaded baseline files are checked by size and by content (CSV text or Parquet), with clear 4xx answers."""

from __future__ import annotations

import gzip
import io
import zipfile

import pytest
from django.urls import reverse

from apps.monitoring.models import Baseline
from apps.monitoring.uploads import upload_kind
from tests.monitoring.frames import credit_inputs

pytestmark = pytest.mark.django_db

FRAME = credit_inputs(50)


def _parquet() -> bytes:
    buffer = io.BytesIO()
    FRAME.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _xlsx_like() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    return buffer.getvalue()


def _post(api, deployment, data: bytes, name: str):
    upload = io.BytesIO(data)
    upload.name = name
    return api.post(f"/api/v1/deployments/{deployment.pk}/monitoring/baseline/", {"file": upload}, format="multipart")


def test_content_decides_not_the_name():
    assert upload_kind(_parquet(), filename="reference.parquet") == "parquet"
    assert upload_kind(FRAME.to_csv(index=False).encode(), filename="reference.csv") == "csv"
    assert upload_kind(FRAME.to_csv(index=False).encode(), filename="") == "csv"


@pytest.mark.parametrize(
    ("data", "name", "status", "words"),
    [
        (_xlsx_like(), "reference.csv", 415, "a ZIP archive (an Excel .xlsx workbook?)"),
        (gzip.compress(b"age\n1\n", mtime=0), "reference.csv", 415, "gzip-compressed"),
        (b"age,sex\n\x00\x01\x02", "reference.csv", 415, "is binary"),
        ("âge;sexe\n1;h\n".encode("latin-1"), "reference.csv", 415, "not UTF-8 text"),
        (_parquet()[:-8], "reference.parquet", 415, "cut short"),
        (
            FRAME.to_csv(index=False).encode(),
            "reference.parquet",
            415,
            "named like a parquet file but its content is csv",
        ),
        (FRAME.to_csv(index=False).encode(), "reference.json", 415, "only CSV (.csv) and Parquet (.parquet)"),
        (b"", "reference.csv", 400, "The submitted file is empty."),
    ],
)
def test_wrong_files_are_refused_with_what_they_are(lead_api, deployment, registry, data, name, status, words):
    response = _post(lead_api, deployment, data, name)
    assert response.status_code == status, response.content
    assert words in response.content.decode()
    assert not Baseline.objects.filter(source="upload").exists()


def test_size_limit_is_a_setting_and_a_413(lead_api, deployment, registry, settings):
    data = FRAME.to_csv(index=False).encode()
    settings.MONITORING_BASELINE_MAX_UPLOAD_BYTES = len(data) - 1
    response = _post(lead_api, deployment, data, "reference.csv")
    assert response.status_code == 413
    assert (
        response.json()["code"] == "file_too_large" and f"at most {len(data) - 1:,} bytes" in response.json()["detail"]
    )
    settings.MONITORING_BASELINE_MAX_UPLOAD_BYTES = len(data)
    assert _post(lead_api, deployment, data, "reference.csv").status_code == 201


def test_a_parquet_upload_is_accepted(lead_api, deployment, registry):
    response = _post(lead_api, deployment, _parquet(), "reference.parquet")
    assert response.status_code == 201 and response.json()["rows"] == 50


def test_the_page_shows_the_refusal(client, alice, deployment, registry):
    client.force_login(alice)
    upload = io.BytesIO(_xlsx_like())
    upload.name = "reference.xlsx"
    client.post(reverse("monitoring:baseline_upload", kwargs={"pk": deployment.pk}), {"file": upload})
    html = client.get(reverse("monitoring:deployment_monitoring", kwargs={"pk": deployment.pk})).content.decode()
    assert "Baseline not replaced: reference.xlsx: only CSV (.csv) and Parquet (.parquet)" in html
