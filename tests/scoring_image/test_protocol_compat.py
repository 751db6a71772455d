"""Same requests to ``mlflow models serve`` and to our server: same answers."""

from __future__ import annotations

import orjson
import pytest
import requests

from .models import credit_rows

pytestmark = pytest.mark.slow

ROWS = credit_rows(6, seed=21)
RECORDS = ROWS.to_dict(orient="records")
COLUMNS = list(ROWS.columns)
JSON = {"Content-Type": "application/json"}


def _dump(obj) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)


PAYLOADS = {
    "dataframe_split": {"dataframe_split": {"columns": COLUMNS, "data": ROWS.values.tolist()}},
    "dataframe_split_with_index": {
        "dataframe_split": {"index": list(range(10, 16)), "columns": COLUMNS, "data": ROWS.values.tolist()}
    },
    "dataframe_records": {"dataframe_records": RECORDS},
    "dataframe_records_one_row": {"dataframe_records": RECORDS[:1]},
    "dataframe_records_reordered_keys": {"dataframe_records": [dict(reversed(list(r.items()))) for r in RECORDS]},
    "instances_records": {"instances": RECORDS},
    "inputs_columns": {"inputs": {c: ROWS[c].tolist() for c in COLUMNS}},
    "inputs_records": {"inputs": RECORDS},
}


def _both(ours, mlflow_server, path, body, headers):
    a = requests.post(mlflow_server.url + "/invocations", data=body, headers=headers, timeout=30)
    b = requests.post(ours.url + path, data=body, headers=headers, timeout=30)
    return a, b


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_json_formats_answer_like_mlflow(ours, mlflow_server, name):
    theirs, mine = _both(ours, mlflow_server, "/invocations", _dump(PAYLOADS[name]), JSON)
    assert theirs.status_code == 200, theirs.text
    assert mine.status_code == 200, mine.text
    assert mine.json() == theirs.json()
    assert mine.headers["content-type"].startswith("application/json")
    assert len(mine.json()["predictions"]) == len(PAYLOADS[name].get("dataframe_records", RECORDS))


def test_csv_answers_like_mlflow(ours, mlflow_server):
    body = ROWS.to_csv(index=False).encode()
    theirs, mine = _both(ours, mlflow_server, "/invocations", body, {"Content-Type": "text/csv"})
    assert theirs.status_code == mine.status_code == 200, (theirs.text, mine.text)
    assert mine.json() == theirs.json()


def test_charset_parameter_is_accepted_like_mlflow(ours, mlflow_server):
    headers = {"Content-Type": "application/json; charset=utf-8"}
    theirs, mine = _both(ours, mlflow_server, "/invocations", _dump(PAYLOADS["dataframe_records"]), headers)
    assert theirs.status_code == mine.status_code == 200
    assert mine.json() == theirs.json()


def test_the_models_own_serving_example_answers_like_mlflow(ours, mlflow_server, model_dir):
    body = (model_dir / "serving_input_example.json").read_bytes()
    theirs, mine = _both(ours, mlflow_server, "/invocations", body, JSON)
    assert theirs.status_code == mine.status_code == 200
    assert mine.json() == theirs.json()


def test_predict_list_form_matches_mlflow_records(ours, mlflow_server):
    theirs = requests.post(mlflow_server.url + "/invocations", data=_dump({"dataframe_records": RECORDS}), headers=JSON)
    mine = requests.post(ours.url + "/predict", data=_dump(RECORDS), headers=JSON)
    assert mine.status_code == 200, mine.text
    assert mine.json() == theirs.json()


def test_reference_sample_request_scores(ours, mlflow_server):
    from .helpers import REPO_ROOT

    sample = REPO_ROOT.parent / "shared" / "data" / "credit-default-sample-request.json"
    assert sample.exists(), f"the reference sample request should be beside this checkout at {sample}"
    records = orjson.loads(sample.read_bytes())
    theirs = requests.post(mlflow_server.url + "/invocations", data=_dump({"dataframe_records": records}), headers=JSON)
    mine = requests.post(ours.url + "/predict", data=sample.read_bytes(), headers=JSON)
    assert mine.status_code == 200, mine.text
    assert mine.json() == theirs.json()


def test_mlflow_health_routes_exist_on_ours(ours, mlflow_server):
    for path in ("/ping", "/health"):
        assert requests.get(mlflow_server.url + path).status_code == 200
        assert requests.get(ours.url + path).status_code == 200
