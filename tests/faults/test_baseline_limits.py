"""Issue 17 item 3 (rows and memory): a baseline file is refused by what it decodes to, checked before it is
materialised (Parquet by its metadata, CSV in bounded chunks), and the previous baseline is kept."""

from __future__ import annotations

import io
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rest_framework.test import APIClient

from apps.accounts.services import api_token_create
from apps.monitoring.models import Baseline
from tests.monitoring.frames import credit_inputs

pytestmark = pytest.mark.django_db

GOOD = credit_inputs(50)


def _post(alice, deployment, data: bytes, name: str):  # noqa: F811
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=alice, name='t').key}")
    upload = io.BytesIO(data)
    upload.name = name
    url = f"/api/v1/deployments/{deployment.pk}/monitoring/baseline/"
    return client.post(url, {"file": upload}, format="multipart")


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def test_a_small_parquet_file_of_twenty_million_rows_is_refused_from_its_metadata(alice, deployment, registry):  # noqa: F811
    data = _parquet(pa.table({"x": np.zeros(20_000_000, dtype=np.int8)}))
    assert len(data) < 2 * 2**20  # a small file ...
    started = time.monotonic()
    response = _post(alice, deployment, data, "ref.parquet")
    assert time.monotonic() - started < 5  # ... refused before it is decoded
    assert response.status_code == 413 and response.json()["code"] == "file_too_large"
    assert "20,000,000 rows" in response.json()["detail"] and "1,000,000" in response.json()["detail"]


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_the_row_limit_is_a_setting_and_the_previous_baseline_is_kept(alice, deployment, registry, settings, kind):  # noqa: F811
    assert _post(alice, deployment, GOOD.to_csv(index=False).encode(), "ref.csv").status_code == 201
    before = Baseline.objects.get(model_name="credit-default", model_version="1")
    settings.MONITORING_BASELINE_MAX_ROWS = 1000
    big = pd.DataFrame({"age": range(5000), "sex": ["male"] * 5000})
    data = big.to_csv(index=False).encode() if kind == "csv" else _parquet(pa.Table.from_pandas(big))
    response = _post(alice, deployment, data, f"ref.{kind}")
    assert response.status_code == 413, response.content[:300]
    assert "at most 1,000 rows" in response.json()["detail"]
    after = Baseline.objects.get(model_name="credit-default", model_version="1")
    assert (after.rows, after.profile, after.created_at) == (before.rows, before.profile, before.created_at)


def test_the_decoded_size_limit_is_a_setting(alice, deployment, registry, settings):  # noqa: F811
    settings.MONITORING_BASELINE_MAX_DECODED_BYTES = 100_000
    wide = pd.DataFrame({"age": range(900), "sex": ["x" * 200] * 900})
    response = _post(alice, deployment, wide.to_csv(index=False).encode(), "ref.csv")
    assert response.status_code == 413 and "decodes to more than" in response.json()["detail"]
