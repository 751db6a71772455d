"""MLflow's own scoring-server cases (tests/pyfunc/test_scoring_server.py) plus the request kinds of
issue 13, each sent to a real ``mlflow models serve --env-manager local`` and to ours on the same model.

``same``: a request MLflow serves; ours must answer the same status and the same JSON.
``refused``: a request MLflow refuses; ours refuses it too, with MLflow's ``error_code`` (our status
may differ deliberately: 422 for schema errors, 500 for model failures; see docs/scoring.md).
Every server is started once per session, all at the same time.
"""

from __future__ import annotations

import base64
import io
import json
import math
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from .helpers import MlflowServer, ServerProcess
from .parity_models import PARITY_MODELS, all_types_frame, iris_xy

JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"
TIMEOUT_S = "2"  # MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT for both servers of the "shapes" model


@pytest.fixture(scope="session")
def parity(tmp_path_factory):
    """{model name: (ours, mlflow)}, all fourteen servers started at once."""
    root = tmp_path_factory.mktemp("parity")
    logs = tmp_path_factory.mktemp("parity-logs")
    dirs = {name: save(root / name) for name, save in PARITY_MODELS.items()}
    servers = {}
    for name, path in dirs.items():
        env = {"MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT": TIMEOUT_S} if name == "shapes" else {}
        servers[name] = (ServerProcess(path, logs, env=env), MlflowServer(path, logs, extra_env=env))
    try:
        with ThreadPoolExecutor(len(servers) * 2) as pool:
            list(pool.map(lambda s: s.wait_ready(180), [s for pair in servers.values() for s in pair]))
        yield servers
    finally:
        for ours, theirs in servers.values():
            ours.stop()
            theirs.stop()


def _dumps(value) -> str:
    return json.dumps(value, sort_keys=True)  # NaN -> "NaN" on both sides, so equal outputs compare equal


def _body(response: requests.Response):
    try:
        return json.loads(response.text)
    except ValueError:
        return response.text


def _json(payload) -> bytes:
    from mlflow.utils.proto_json_utils import NumpyEncoder

    return json.dumps(payload, cls=NumpyEncoder).encode()


def _iris_frame():
    import pandas as pd

    return pd.DataFrame(iris_xy()[0][:6])


def _named_iris():
    return _iris_frame().set_axis(["a", "b"], axis=1)


def _parquet(frame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf)
    return buf.getvalue()


def _records(*rows):
    return _json({"dataframe_records": list(rows)})


def _kind(kind: str, **extra):
    return _records({"kind": kind, **extra})


# (id, model, content type, body, expectation)
CASES = [
    # --- MLflow's test_scoring_server.py, on its sklearn KNN model (no signature)
    ("malformed_json", "sklearn_skops", JSON, b"this is,,,, not valid json", "refused"),
    ("json_number", "sklearn_skops", JSON, b"1", "refused"),
    ("json_string", "sklearn_skops", JSON, b'"1"', "refused"),
    ("json_list", "sklearn_skops", JSON, b"[1]", "refused"),
    ("no_format_key", "sklearn_skops", JSON, b'{"not": "a serialized dataframe"}', "refused"),
    (
        "two_format_keys",
        "sklearn_skops",
        JSON,
        b'{"dataframe_records": [], "dataframe_split": {"data": []}}',
        "refused",
    ),
    (
        "split_given_records",
        "sklearn_skops",
        JSON,
        lambda: _json({"dataframe_split": _iris_frame().to_dict("records")}),
        "refused",
    ),
    (
        "records_given_split",
        "sklearn_skops",
        JSON,
        lambda: _json({"dataframe_records": _iris_frame().to_dict("split")}),
        "refused",
    ),
    (
        "split_bad_index",
        "sklearn_skops",
        JSON,
        b'{"dataframe_split": {"index": [1, 2], "data": [[1], [2], [3]]}}',
        "refused",
    ),
    (
        "incompatible_frame",
        "sklearn_skops",
        JSON,
        lambda: _json({"dataframe_split": {"data": [[v] for v in range(10)]}}),
        "refused",
    ),
    ("empty_csv", "sklearn_skops", CSV, b"", "refused"),
    ("records", "sklearn_skops", JSON, lambda: _json({"dataframe_records": _iris_frame().to_dict("records")}), "same"),
    (
        "records_charset",
        "sklearn_skops",
        JSON + "; charset=UTF-8",
        lambda: _json({"dataframe_records": _iris_frame().to_dict("records")}),
        "same",
    ),
    ("split", "sklearn_skops", JSON, lambda: _json({"dataframe_split": _iris_frame().to_dict("split")}), "same"),
    (
        "split_charset",
        "sklearn_skops",
        JSON + "; charset=UTF-8",
        lambda: _json({"dataframe_split": _iris_frame().to_dict("split")}),
        "same",
    ),
    (
        "unsupported_content_type",
        "sklearn_skops",
        "not_a_supported_content_type",
        lambda: _iris_frame().to_json(orient="split").encode(),
        "refused",
    ),
    (
        "unknown_content_param",
        "sklearn_skops",
        JSON + "; something=something",
        lambda: _iris_frame().to_json(orient="split").encode(),
        "refused",
    ),
    ("instances", "sklearn_skops", JSON, lambda: _json({"instances": iris_xy()[0][:6].tolist()}), "same"),
    ("inputs_tensor", "sklearn_skops", JSON, lambda: _json({"inputs": iris_xy()[0][:6].tolist()}), "same"),
    ("csv", "sklearn_skops", CSV, lambda: _iris_frame().to_csv(index=False).encode(), "same"),
    ("parquet", "sklearn_skops", PARQUET, lambda: _parquet(_iris_frame().set_axis(["0", "1"], axis=1)), "same"),
    # --- column signature (fast path) and a params schema (test_serving_model_with_param_schema)
    (
        "sig_split",
        "sklearn_pickle_params",
        JSON,
        lambda: _json({"dataframe_split": _named_iris().to_dict("split")}),
        "same",
    ),
    (
        "sig_records",
        "sklearn_pickle_params",
        JSON,
        lambda: _json({"dataframe_records": _named_iris().to_dict("records")}),
        "same",
    ),
    (
        "sig_bad_param",
        "sklearn_pickle_params",
        JSON,
        lambda: _json({"dataframe_split": _named_iris().to_dict("split"), "params": {"param1": "invalid_value1"}}),
        "refused",
    ),
    (
        "sig_unknown_param",
        "sklearn_pickle_params",
        JSON,
        lambda: _json({"dataframe_split": _named_iris().to_dict("split"), "params": {"invalid_param": "value"}}),
        "same",
    ),
    (
        "sig_good_param",
        "sklearn_pickle_params",
        JSON,
        lambda: _json({"dataframe_split": _named_iris().to_dict("split"), "params": {"param1": "2024-01-01"}}),
        "same",
    ),
    ("sig_strings_for_doubles", "sklearn_pickle_params", JSON, _records({"a": "1.5", "b": "3.0"}), "same"),
    ("sig_ints_for_doubles", "sklearn_pickle_params", JSON, _records({"a": 5, "b": 3}), "same"),
    (
        "sig_unknown_column_dropped",
        "sklearn_pickle_params",
        JSON,
        _records({"a": 5.1, "b": 3.5, "zodiac": "leo"}),
        "same",
    ),
    ("sig_missing_column", "sklearn_pickle_params", JSON, _records({"a": 5.1}), "refused"),
    ("sig_word_for_double", "sklearn_pickle_params", JSON, _records({"a": "tall", "b": 3.5}), "refused"),
    ("sig_nan_token", "sklearn_pickle_params", JSON, b'{"dataframe_records": [{"a": NaN, "b": 3.5}]}', "refused"),
    ("sig_split_no_columns", "sklearn_pickle_params", JSON, b'{"dataframe_split": {"data": [[5.1, 3.5]]}}', "refused"),
    ("sig_inputs_columns", "sklearn_pickle_params", JSON, b'{"inputs": {"a": [5.1, 4.9], "b": [3.5, 3.0]}}', "same"),
    ("sig_instances_records", "sklearn_pickle_params", JSON, b'{"instances": [{"a": 5.1, "b": 3.5}]}', "same"),
    ("sig_csv", "sklearn_pickle_params", CSV, lambda: _named_iris().to_csv(index=False).encode(), "same"),
    ("sig_empty_records", "sklearn_pickle_params", JSON, b'{"dataframe_records": []}', "refused"),
    # --- every column type, binary (base64) and datetime included (test_serving_model_with_schema)
    (
        "all_types_split",
        "all_types",
        JSON,
        lambda: _json({"dataframe_split": all_types_frame().to_dict("split")}),
        "same",
    ),
    (
        "all_types_records",
        "all_types",
        JSON,
        lambda: _json({"dataframe_records": all_types_frame().to_dict("records")}),
        "same",
    ),
    ("all_types_inputs", "all_types", JSON, lambda: _json({"inputs": all_types_frame().to_dict("list")}), "same"),
    (
        "all_types_base64",
        "all_types",
        JSON,
        lambda: _json(
            {
                "dataframe_records": [
                    {**all_types_frame().iloc[0].to_dict(), "binary": base64.b64encode(b"\x01\x02").decode()}
                ]
            }
        ),
        "same",
    ),
    # --- the fast path on a PythonModel: the frame it builds must be the one MLflow builds
    (
        "fast_records",
        "simple_types",
        JSON,
        _records(*[{"n": i, "x": i + 0.5, "s": f"s{i}", "flag": i % 2 == 0, "opt": 1.5} for i in range(3)]),
        "same",
    ),
    (
        "fast_split",
        "simple_types",
        JSON,
        b'{"dataframe_split": {"columns": ["n", "x", "s", "flag", "opt"], "data": [[1, 2.5, "a", true, 0.5]]}}',
        "same",
    ),
    (
        "fast_keys_reordered",
        "simple_types",
        JSON,
        _records({"flag": False, "s": "z", "x": 1.0, "n": 7, "opt": 2.0}),
        "same",
    ),
    (
        "fast_ints_for_double",
        "simple_types",
        JSON,
        _records({"n": 1, "x": 3, "s": "a", "flag": True, "opt": 4}),
        "same",
    ),
    ("optional_missing", "simple_types", JSON, _records({"n": 1, "x": 2.0, "s": "a", "flag": True}), "same"),
    ("null_in_string", "simple_types", JSON, _records({"n": 1, "x": 2.0, "s": None, "flag": True, "opt": 1.0}), "same"),
    (
        "null_in_long",
        "simple_types",
        JSON,
        _records({"n": None, "x": 2.0, "s": "a", "flag": True, "opt": 1.0}),
        "refused",
    ),
    (
        "integral_float_for_long",
        "simple_types",
        JSON,
        _records({"n": 3.0, "x": 2.0, "s": "a", "flag": True, "opt": 1.0}),
        "same",
    ),
    (
        "fraction_for_long",
        "simple_types",
        JSON,
        _records({"n": 3.5, "x": 2.0, "s": "a", "flag": True, "opt": 1.0}),
        "same",
    ),
    ("number_for_string", "simple_types", JSON, _records({"n": 1, "x": 2.0, "s": 5, "flag": True, "opt": 1.0}), "same"),
    (
        "extra_column",
        "simple_types",
        JSON,
        _records({"n": 1, "x": 2.0, "s": "a", "flag": True, "opt": 1.0, "zz": 1}),
        "same",
    ),
    ("fast_csv", "simple_types", CSV, b"n,x,s,flag,opt\n1,2.5,a,true,0.5\n2,3.5,b,false,\n", "same"),
    (
        "fast_inputs_columns",
        "simple_types",
        JSON,
        b'{"inputs": {"n": [1], "x": [2.5], "s": ["a"], "flag": [true], "opt": [1.0]}}',
        "same",
    ),
    # --- every output shape (no signature)
    *[
        (f"output_{k}", "shapes", JSON, _kind(k), "same")
        for k in (
            "dict",
            "string",
            "list",
            "scalar",
            "ndarray",
            "nan",
            "series",
            "unnamed_series",
            "frame",
            "datetime_frame",
            "echo",
            "dtypes",
        )
    ],
    (
        "output_echo_many_rows",
        "shapes",
        JSON,
        _records(*[{"kind": "echo", "x": i, "y": f"s{i}"} for i in range(5)]),
        "same",
    ),
    ("model_raises", "shapes", JSON, _kind("no-such-kind"), "refused"),
    ("inputs_dict_of_columns", "shapes", JSON, b'{"inputs": {"a": [1, 2], "b": ["x", "y"]}}', "same"),
    ("inputs_scalars", "shapes", JSON, b'{"inputs": [1, 2, 3]}', "same"),
    ("instances_nested", "shapes", JSON, b'{"instances": [[1, 2], [3, 4]]}', "same"),
    (
        "nan_token_records",
        "shapes",
        JSON,
        b'{"dataframe_records": [{"kind": "echo", "x": NaN}, {"kind": "echo", "x": 1.5}]}',
        "same",
    ),
    ("chat_messages", "shapes", JSON, b'{"messages": [{"role": "user", "content": "hi"}], "temperature": 0.5}', "same"),
    ("csv_strings_dtype", "shapes", CSV, b"kind,zip,cost\ndtypes,95120,10.45\ndtypes,95128,23.0\n", "same"),
    (
        "records_zip_dtype",
        "shapes",
        JSON,
        _records({"kind": "dtypes", "zip": "95120", "cost": 10.45, "score": 8}),
        "same",
    ),
    (
        "url_strings",
        "shapes",
        JSON,
        _records({"kind": "echo", "url": "http://foo.com", "bad_protocol": "aaa://bbb"}),
        "same",
    ),
    ("parquet_frame", "shapes", PARQUET, lambda: _parquet(__import__("pandas").DataFrame({"kind": ["frame"]})), "same"),
    ("request_timeout", "shapes", JSON, _kind("sleep", seconds=float(TIMEOUT_S) + 1.5), "refused"),
    # --- tensor signature, float32
    ("tensor_inputs", "tensor_f32", JSON, b'{"inputs": [[1, 2, 3], [4, 5, 6.5]]}', "same"),
    ("tensor_instances", "tensor_f32", JSON, b'{"instances": [[1.5, 2, 3]]}', "same"),
    ("tensor_wrong_shape", "tensor_f32", JSON, b'{"inputs": [[1, 2]]}', "refused"),
    # --- MLflow 3 type hints, model from code
    ("type_hint_inputs", "type_hints", JSON, b'{"inputs": ["a", "b"]}', "same"),
    ("type_hint_records", "type_hints", JSON, b'{"dataframe_records": [{"x": "a"}]}', "refused"),
    ("type_hint_wrong_type", "type_hints", JSON, b'{"inputs": [1, 2]}', "refused"),
    # --- custom loader_module
    ("loader_records", "custom_loader", JSON, _records({"a": 1, "b": 2.5, "c": "x"}), "same"),
    ("loader_csv", "custom_loader", CSV, b"a,b\n1,2.5\n3,4\n", "same"),
]


def _post(server, content_type: str, body: bytes) -> requests.Response:
    return requests.post(server.url + "/invocations", data=body, headers={"Content-Type": content_type}, timeout=30)


@pytest.mark.parametrize(("model", "content_type", "body", "expect"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_answers_like_mlflow_models_serve(parity, model, content_type, body, expect):
    ours, theirs = parity[model]
    payload = body() if callable(body) else body
    with ThreadPoolExecutor(2) as pool:
        mine_future = pool.submit(_post, ours, content_type, payload)
        reference = _post(theirs, content_type, payload)
        mine = mine_future.result()
    ref_body, my_body = _body(reference), _body(mine)
    if expect == "same":
        assert reference.status_code == 200, f"MLflow itself refused it: {reference.text[:500]}"
        assert mine.status_code == 200, mine.text[:1000]
        assert _dumps(my_body) == _dumps(ref_body)
        assert mine.headers["content-type"].startswith(JSON)
        return
    code = my_body.get("error_code", "") if isinstance(my_body, dict) else ""
    print(f"refused {model}: mlflow {reference.status_code}, ours {mine.status_code} {code}")
    assert reference.status_code >= 400, f"MLflow served it: {reference.text[:500]}"
    assert mine.status_code >= 400, mine.text[:500]
    assert isinstance(my_body, dict) and my_body["message"], mine.text
    if reference.status_code in (415, 504):
        assert mine.status_code == reference.status_code
    if isinstance(ref_body, dict) and "error_code" in ref_body:
        assert my_body["error_code"] == ref_body["error_code"], (mine.text[:500], reference.text[:500])


def test_every_listed_model_kind_is_served_by_both(parity):
    """The parity cases cover every model (no model was built for nothing)."""
    assert {c[1] for c in CASES} == set(PARITY_MODELS)
    assert math.isclose(float(TIMEOUT_S), 2.0)


def test_predict_route_on_a_model_without_signature_answers_as_mlflow_records(parity):
    ours, theirs = parity["shapes"]
    rows = [{"kind": "series", "x": 1}, {"kind": "series", "x": 2}]
    mine = requests.post(ours.url + "/predict", json=rows, timeout=30)
    reference = requests.post(theirs.url + "/invocations", json={"dataframe_records": rows}, timeout=30)
    assert mine.status_code == reference.status_code == 200, mine.text
    assert mine.json() == reference.json() == {"predictions": [{"score": 0}, {"score": 1}]}
    one = requests.post(ours.url + "/predict", json={"kind": "list"}, timeout=30)
    assert one.json() == {"predictions": [0]}
