"""The compiled runtime: every supported kind converts and verifies, answers what the original answers (NaN and
unseen categories included), and anything that does not convert or verify is served by the original model."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading

import numpy as np
import orjson
import pytest
import requests
from scoring.build_context import assemble_build_context, compile_context
from scoring.compiled import CompiledModel
from scoring.compiler import ATOL, RTOL, compile_model
from scoring.config import Settings, SettingsError, usable_cpus
from scoring.errors import ScoringError
from scoring.model import LoadedModel

from .compiled_models import (
    INPUTS,
    KINDS,
    REGRESSORS,
    frame,
    save_boosting_flavor,
    save_kind,
    save_knn,
    save_numeric,
    save_overridden_predict,
)
from .helpers import SCORING_IMAGE, ServerProcess, compiled_dir_for, wait_for
from .models import credit_rows


@pytest.fixture(scope="module")
def kinds_root(tmp_path_factory):
    return tmp_path_factory.mktemp("kinds")


@pytest.fixture(scope="module")
def compiled_kind(kinds_root):
    """{kind: (model dir, compiled dir, decision)}, compiled lazily, once per kind."""
    done = {}

    def get(kind):
        if kind not in done:
            reference = kinds_root / f"{kind}.parquet"
            model_dir = save_kind(kinds_root / kind, kind, reference=reference)
            out = kinds_root / f"{kind}.compiled"
            # the binary-forest rewrite is ONNX Runtime's: compiled for it alone, whatever Treelite would time
            runtimes = ("onnxruntime",) if kind == "binary_forest" else ("onnxruntime", "treelite")
            done[kind] = (model_dir, out, compile_model(model_dir, out, reference=reference, runtimes=runtimes))
        return done[kind]

    return get


def _loaded(model_dir, compiled_dir, runtime="auto"):
    model = LoadedModel(model_dir, runtime=runtime, compiled_dir=compiled_dir)
    model.load()
    model.warm_up()
    return model


def _columns(data):
    """A frame's columns as the fast path hands them over: JSON values, None where missing."""
    out = []
    for name in INPUTS:
        values = [None if isinstance(v, float) and math.isnan(v) else v for v in data[name].tolist()]
        out.append(values)
    return out


def _outcome(model, parts, sizes):
    try:
        answers = [json.loads(body)["predictions"] for body, _ in model.predict_batch(parts, sizes)]
    except ScoringError as exc:
        return ("refused", exc.status, exc.message)
    return ("answered", np.round(answers, 5).tolist())


def _tricky_columns():
    """Rows with missing numbers and unseen categories (strings are never null here: a null string sends the
    whole batch to the original model, see test_a_null_string_goes_to_the_original_model)."""
    data, _, _ = frame(40, seed=5)
    columns = _columns(data)
    columns[3] = [v if v is not None else "green" for v in columns[3]]
    columns[4] = [v if v is not None else "M" for v in columns[4]]
    columns[3][:5] = ["purple", "RED", "", "red ", "tea"]  # categories never seen in training
    columns[4][5:8] = ["XL", "s", "?"]
    columns[0][8:12] = [None] * 4
    columns[2][12:14] = [None, None]  # a long column without missing values in training
    return columns


@pytest.mark.parametrize("kind", KINDS)
def test_each_supported_kind_compiles_verifies_and_answers_like_the_original(compiled_kind, kind):
    model_dir, out, decision = compiled_kind(kind)
    assert decision["runtime"] in ("onnxruntime", "treelite"), decision["reason"]
    assert decision["verified_rows"] > 300  # the example, 300 reference rows and the edge rows
    assert decision["max_abs_diff"] <= ATOL
    assert (out / "decision.json").is_file() and (out / "preprocess.json").is_file()
    package = {"onnxruntime": "onnxruntime==", "treelite": "treelite=="}[decision["runtime"]]
    assert (out / "requirements.txt").read_text().startswith(package)

    compiled, original = _loaded(model_dir, out), _loaded(model_dir, out, runtime="original")
    assert compiled.runtime_info["active"] == decision["runtime"]
    assert compiled.runtime_info["startup_check"].startswith("equal on 3")
    assert original.runtime_info["active"] == "original"
    columns = _tricky_columns()
    # A missing value the estimator itself must take (not imputed): refused by both, or answered by both.
    assert _outcome(compiled, [columns], [40]) == _outcome(original, [columns], [40])
    columns[2][12:14] = [1, 2]
    parts, sizes = [[c[:20] for c in columns], [c[20:] for c in columns]], [20, 20]
    mine = [json.loads(body)["predictions"] for body, _ in compiled.predict_batch(parts, sizes)]
    theirs = [json.loads(body)["predictions"] for body, _ in original.predict_batch(parts, sizes)]
    if kind in REGRESSORS:
        assert np.allclose(mine, theirs, rtol=RTOL, atol=ATOL)
        assert all(isinstance(v, float) for part in mine for v in part)
    else:
        assert mine == theirs  # labels: equal, and of the same JSON type
        assert all(type(v) is int for part in mine for v in part)


def test_a_binary_forest_runs_as_one_score_and_without_nan_tests_when_no_value_is_missing(compiled_kind):
    model_dir, out, decision = compiled_kind("binary_forest")
    spec = json.loads((out / "preprocess.json").read_text())
    assert decision["runtime"] == "onnxruntime", decision["reason"]
    assert spec["onnx_output"] == "p1" and spec["onnx_nonan"] == "model.nonan.onnx"
    assert (out / "model.onnx").is_file() and (out / "model.nonan.onnx").is_file()
    compiled, original = _loaded(model_dir, out), _loaded(model_dir, out, runtime="original")
    proba = original._pyfunc.get_raw_model().predict_proba
    columns = _tricky_columns()  # rows 12-13: a null count, i.e. NaN reaches the trees; the others: no NaN
    for rows in (range(0, 12), range(12, 14), range(0, 40)):
        part = [[c[i] for i in rows] for c in columns]
        expected = proba(original.frame([part], [len(rows)]))
        got = compiled.compiled.raw(part, len(rows))
        assert got.shape == expected.shape == (len(rows), 2)
        assert np.allclose(got, expected, rtol=RTOL, atol=ATOL)
        assert compiled.predict_batch([part], [len(rows)]) == original.predict_batch([part], [len(rows)])


def test_more_compiled_threads_give_the_same_answers(compiled_kind):
    """SCORING_COMPILED_THREADS splits a batch's tree walk between threads (ONNX Runtime does from ~100 rows on):
    the answers must not change."""
    model_dir, out, _ = compiled_kind("binary_forest")
    one = _loaded(model_dir, out)
    two = LoadedModel(model_dir, compiled_dir=out, compiled_threads=2)
    two.load()
    two.warm_up()
    assert two.compiled.threads == 2 and one.compiled.threads == 1
    columns = _tricky_columns()
    part = [c * 8 for c in columns]  # 320 rows, NaN in some
    assert np.allclose(two.compiled.raw(part, 320), one.compiled.raw(part, 320), rtol=1e-6, atol=1e-7)  # sums split
    assert two.predict_batch([part], [320]) == one.predict_batch([part], [320])


def test_compiled_threads_default_to_the_cpus_the_worker_may_use(monkeypatch):
    """SCORING_COMPILED_THREADS unset or "auto": the CPUs of the process's affinity (and cgroup quota) shared among
    the workers; a number is taken as it is; 0 or a word is refused naming the variable."""
    monkeypatch.delenv("SCORING_COMPILED_THREADS", raising=False)
    cpus = len(os.sched_getaffinity(0))
    assert Settings.from_env().compiled_threads == 0
    assert Settings.from_env().effective_compiled_threads == usable_cpus() <= cpus
    assert Settings.from_env().replace(workers=cpus + 1).effective_compiled_threads == 1
    monkeypatch.setenv("SCORING_COMPILED_THREADS", "3")
    assert Settings.from_env().replace(workers=8).effective_compiled_threads == 3
    for bad in ("0", "two"):
        monkeypatch.setenv("SCORING_COMPILED_THREADS", bad)
        with pytest.raises(SettingsError, match="SCORING_COMPILED_THREADS"):
            Settings.from_env()
    # A process pinned to one CPU (taskset, a cpuset) gets one thread.
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "from scoring.config import usable_cpus; print(usable_cpus())"
    )
    env = dict(os.environ, PYTHONPATH=str(SCORING_IMAGE))
    pinned = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert pinned.stdout.strip() == "1"


def test_a_compiled_model_does_not_wait_to_merge_requests(model_dir):
    """By default a batch waits for more clients only when a one-row call costs more than the wait (the call's
    fixed cost, which merging saves): the compiled forest's one-row call costs microseconds, the original's more."""
    out = compiled_dir_for(model_dir)
    compiled, original = _loaded(model_dir, out), _loaded(model_dir, out, runtime="original")
    assert compiled.batchable and original.batchable
    assert 0 < compiled.one_row_s < original.one_row_s
    assert compiled.one_row_s * 1000 < Settings().max_batch_wait_ms


def test_a_model_whose_example_has_nulls_still_merges_requests(compiled_kind):
    """The example (three rows, NaN among them) takes MLflow's general path; its columns still show the
    forest answers row by row, so exact-typed requests are merged, on either runtime, with unchanged answers."""
    model_dir, out, _ = compiled_kind("binary_forest")
    example = json.loads((model_dir / "serving_input_example.json").read_text())
    assert any(v != v for row in example["dataframe_split"]["data"] for v in row)  # NaN
    columns = _tricky_columns()
    parts = [[c[i : i + 10] for c in columns] for i in range(0, 40, 10)]
    for runtime in ("auto", "original"):
        model = _loaded(model_dir, out, runtime=runtime)
        assert model.batchable and model.one_row_s > 0
        merged = model.predict_batch(parts, [10] * 4)
        assert merged == [model.predict_batch([part], [10])[0] for part in parts]


def test_a_string_imputer_with_nan_as_missing_is_compiled_not_refused(compiled_kind):
    """skl2onnx refuses this step; the compiled runtime replays it in numpy."""
    _, out, decision = compiled_kind("random_forest")
    steps = [c["steps"] for c in json.loads((out / "preprocess.json").read_text())["preprocess"]["columns"]]
    assert [s["op"] for s in steps[2]] == ["impute", "onehot"] and steps[2][0] == {
        "op": "impute",
        "missing": "nan",
        "fill": steps[2][0]["fill"],
    }
    assert steps[2][0]["fill"] in ("red", "green", "blue", "teal")
    assert decision["model_kind"].startswith("Pipeline(ColumnTransformer(")


def test_a_null_string_goes_to_the_original_model(compiled_kind):
    model_dir, out, _ = compiled_kind("logistic")
    compiled = _loaded(model_dir, out)
    columns = [[10.0, 11.0], [3.5, 4.5], [2, 3], [None, "red"], ["S", None]]
    called = []

    def original(index):
        called.append(list(index))
        return compiled._original_rows(columns)(index)

    got = compiled.compiled.predict(columns, 2, original)
    assert called == [[0, 1]]
    assert got.tolist() == compiled._predict_frame(compiled.frame([columns], [2])).tolist()


def test_treelite_serves_when_it_is_the_runtime(compiled_kind, tmp_path):
    model_dir, _, _ = compiled_kind("random_forest")
    decision = compile_model(model_dir, tmp_path / "tl", runtimes=("treelite",))
    assert decision["runtime"] == "treelite", decision["reason"]
    assert (tmp_path / "tl" / "model.treelite").is_file() and not (tmp_path / "tl" / "model.onnx").exists()
    assert "treelite==" in (tmp_path / "tl" / "requirements.txt").read_text()
    compiled, original = _loaded(model_dir, tmp_path / "tl"), _loaded(model_dir, None)
    columns = _tricky_columns()
    assert compiled.predict_batch([columns], [40]) == original.predict_batch([columns], [40])


def test_near_ties_are_decided_by_the_original_model(compiled_kind):
    model_dir, out, decision = compiled_kind("random_forest")
    model = CompiledModel(out, decision)
    columns = _columns(frame(30, seed=9)[0])
    columns[3] = [v or "red" for v in columns[3]]
    columns[4] = [v or "S" for v in columns[4]]
    model.label_band = 2.0  # every row counts as a near tie
    asked = []
    labels = model.predict(columns, 30, lambda index: asked.append(list(index)) or np.full(len(index), 7))
    assert asked == [list(range(30))] and labels.tolist() == [7] * 30


def test_a_custom_pyfunc_is_served_by_the_original(trouble_model_dir, tmp_path):
    decision = compile_model(trouble_model_dir, tmp_path / "out")
    assert decision["runtime"] == "original"
    assert "(scikit-learn, XGBoost and LightGBM models compile)" in decision["reason"]
    assert not (tmp_path / "out" / "model.onnx").exists()
    assert (tmp_path / "out" / "requirements.txt").read_text().startswith("#")


def test_an_unsupported_estimator_is_served_by_the_original(tmp_path):
    decision = compile_model(save_knn(tmp_path / "knn"), tmp_path / "out")
    assert decision == {**decision, "runtime": "original"}
    assert "KNeighborsClassifier is not a supported estimator" in decision["reason"]


def test_a_conversion_that_does_not_verify_is_not_served(tmp_path, log_dir):
    """The pipeline's predict was replaced after fitting: both conversions follow the fitted trees and differ
    from what the model answers, so verification refuses both and the server runs the original."""
    model_dir = save_overridden_predict(tmp_path / "overridden")
    decision = json.loads((compiled_dir_for(model_dir) / "decision.json").read_text())
    assert decision["runtime"] == "original"
    assert "no candidate verified" in decision["reason"] and "label(s) differ" in decision["reason"]
    assert not decision["candidates"]["onnxruntime"]["verified"]
    server = ServerProcess(model_dir, log_dir).wait_ready()
    try:
        runtime = server.version()["runtime"]
        assert runtime["active"] == "original" and runtime["build"]["runtime"] == "original"
        data = frame(5, seed=3)[0].dropna()
        body = orjson.dumps({"dataframe_records": data.to_dict(orient="records")})
        answer = requests.post(server.url + "/invocations", data=body, headers={"Content-Type": "application/json"})
        import mlflow.pyfunc

        assert answer.json()["predictions"] == mlflow.pyfunc.load_model(str(model_dir)).predict(data).tolist()
    finally:
        server.stop()


def test_a_compiled_model_that_disagrees_at_start_up_is_not_served(compiled_kind, tmp_path):
    """A compiled directory changed after verification (here: its class labels) disagrees with the original on
    the warm-up input: the original serves."""
    import shutil

    model_dir, out, _ = compiled_kind("random_forest")
    tampered = tmp_path / "tampered"
    shutil.copytree(out, tampered)
    spec = json.loads((tampered / "preprocess.json").read_text())
    spec["classes"] = [label + 10 for label in spec["classes"]]
    (tampered / "preprocess.json").write_text(json.dumps(spec))
    model = _loaded(model_dir, tampered)
    assert model.compiled is None
    assert model.runtime_info["active"] == "original"
    assert model.runtime_info["reason"] == "disagreed with the original at start-up"


def test_the_server_reports_the_runtime_and_can_be_forced_to_the_original(ours, model_dir, log_dir):
    runtime = ours.version()["runtime"]
    assert runtime["active"] in ("onnxruntime", "treelite"), runtime
    assert runtime["build"]["runtime"] == runtime["active"], runtime
    assert runtime["build"]["model_kind"] == (
        "Pipeline(ColumnTransformer(FunctionTransformer, OneHotEncoder), RandomForestClassifier)"
    )
    assert runtime["build"]["max_abs_diff"] <= ATOL and runtime["startup_check"]
    forced = ServerProcess(model_dir, log_dir, env={"SCORING_RUNTIME": "original"}).wait_ready()
    try:
        assert forced.version()["runtime"]["active"] == "original"
        assert forced.version()["runtime"]["reason"] == "SCORING_RUNTIME=original"
        # Both merge concurrent requests; only the original forest, whose call has a fixed cost, waits for more.
        compiled_batching, original_batching = ours.version()["batching"], forced.version()["batching"]
        assert compiled_batching["merged"] and original_batching["merged"]
        assert (compiled_batching["wait_ms"], original_batching["wait_ms"]) == (0.0, 2.0)
        assert compiled_batching["one_row_ms"] < 2.0 <= original_batching["one_row_ms"]
        rows = credit_rows(50, seed=4).to_dict(orient="records")
        body = orjson.dumps(rows, option=orjson.OPT_SERIALIZE_NUMPY)
        headers = {"Content-Type": "application/json"}
        mine = requests.post(ours.url + "/predict", data=body, headers=headers).json()
        theirs = requests.post(forced.url + "/predict", data=body, headers=headers).json()
        assert mine == theirs and len(mine["predictions"]) == 50
    finally:
        forced.stop()


def test_build_context_compiles_without_changing_the_digest(model_dir, tmp_path):
    plain = assemble_build_context(model_dir, tmp_path / "plain")
    assert json.loads((plain.path / "compiled" / "decision.json").read_text())["runtime"] == "original"
    assert plain.build_args["COMPILED_RUNTIME"] == "original"
    lines = []
    decision = compile_context(plain, log=lines.append)
    chosen = decision["runtime"]  # the faster of the two here and now; both verify
    assert chosen in ("onnxruntime", "treelite")
    assert plain.build_args["COMPILED_RUNTIME"] == chosen
    assert float(plain.build_args["COMPILED_MAX_ABS_DIFF"]) <= ATOL
    artifact = {"onnxruntime": "model.onnx", "treelite": "model.treelite"}[chosen]
    assert (plain.path / "compiled" / artifact).is_file()
    assert lines[0].startswith(f"model runtime: {chosen} (verified on")
    assert any(line.startswith("  candidate treelite:") for line in lines)
    assert any(line.startswith("  candidate onnxruntime:") for line in lines)
    compiled = assemble_build_context(model_dir, tmp_path / "compiled", compile=True)
    assert compiled.digest == plain.digest
    assert compiled.build_args["COMPILED_RUNTIME"] in ("onnxruntime", "treelite")


def test_probes_answer_while_a_long_predict_blocks_the_event_loop(trouble_model_dir, log_dir):
    """The trouble model's "slow" rows sleep inside predict, on the event loop thread: the main port cannot
    answer until it returns; the health port still does."""
    from tests.registries import free_port

    health_port = free_port()
    server = ServerProcess(
        trouble_model_dir,
        log_dir,
        env={"SCORING_HEALTH_PORT": str(health_port), "SCORING_BATCHING": "row-aligned"},
    ).wait_ready()
    health = f"http://127.0.0.1:{health_port}"
    try:
        wait_for(health + "/health/ready", timeout=10)
        slow = {}
        body = orjson.dumps({"dataframe_records": [{"x": 6.0, "tag": "slow"}]})

        def score():
            slow["answer"] = requests.post(
                server.url + "/invocations", data=body, headers={"Content-Type": "application/json"}, timeout=60
            )

        thread = threading.Thread(target=score)
        thread.start()
        wait_for_busy = requests.Session()
        with pytest.raises(requests.Timeout):  # the main port is stuck behind the predict call
            for _ in range(20):
                wait_for_busy.get(server.url + "/health/live", timeout=0.5)
        assert "answer" not in slow
        live = requests.get(health + "/health/live", timeout=2)
        ready = requests.get(health + "/health/ready", timeout=2)
        assert (live.status_code, live.json()) == (200, {"status": "alive"})
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        assert "answer" not in slow  # still scoring while the probes answered
        thread.join(60)
        assert slow["answer"].status_code == 200
        assert requests.get(health + "/nope", timeout=2).status_code == 404
    finally:
        server.stop()


@pytest.mark.parametrize("kind", ["bare_forest", "scaled_logistic"])
def test_models_without_a_column_transformer_compile(kind, tmp_path):
    model_dir = save_numeric(tmp_path / kind, kind)
    decision = compile_model(model_dir, tmp_path / "out")
    assert decision["runtime"] in ("onnxruntime", "treelite"), decision["reason"]
    assert (
        decision["model_kind"]
        == {
            "bare_forest": "RandomForestRegressor",
            "scaled_logistic": "Pipeline(StandardScaler, LogisticRegression)",
        }[kind]
    )
    compiled, original = _loaded(model_dir, tmp_path / "out"), _loaded(model_dir, None)
    columns = [[1.5, 20.25, 300.0, 7.0], [0, 3, 19, 40]]
    mine, theirs = compiled.predict_batch([columns], [4]), original.predict_batch([columns], [4])
    assert np.allclose(json.loads(mine[0][0])["predictions"], json.loads(theirs[0][0])["predictions"], atol=ATOL)
    columns[0][3] = None  # the forest takes NaN, the logistic regression refuses it: compiled or not
    assert _outcome(compiled, [columns], [4]) == _outcome(original, [columns], [4])


@pytest.mark.parametrize(
    "flavor,runtime",
    [
        ("xgboost", "onnxruntime"),
        ("xgboost", "treelite"),
        ("xgboost_booster", "onnxruntime"),
        ("xgboost_booster", "treelite"),
        ("lightgbm", "treelite"),
    ],
)
def test_xgboost_and_lightgbm_flavors_compile_and_answer_like_the_original(flavor, runtime, tmp_path):
    model_dir = save_boosting_flavor(tmp_path / flavor, flavor)
    decision = compile_model(model_dir, tmp_path / "out", runtimes=(runtime,))
    assert decision["runtime"] == runtime, decision["reason"]
    assert decision["output"] == ("label" if flavor == "xgboost" else "value")
    compiled, original = _loaded(model_dir, tmp_path / "out"), _loaded(model_dir, None)
    assert compiled.runtime_info["active"] == runtime and compiled.runtime_info["startup_check"].startswith("equal")
    data, _, _ = frame(60, seed=9)
    columns = [_columns(data)[i] for i in (0, 1, 2)]  # num1 (with missing values), num2, count
    columns[1][:3] = [None, 0.0, 1e9]
    mine = json.loads(compiled.predict_batch([columns], [60])[0][0])["predictions"]
    theirs = json.loads(original.predict_batch([columns], [60])[0][0])["predictions"]
    if flavor == "xgboost":
        assert mine == theirs and all(type(v) is int for v in mine)
    else:
        assert np.allclose(mine, theirs, rtol=RTOL, atol=ATOL) and 0 < min(mine) <= max(mine) < 1


def test_xgboost_after_a_sparse_column_transformer_takes_zeros_as_missing(compiled_kind):
    model_dir, out, decision = compiled_kind("xgboost_sparse")
    assert json.loads((out / "preprocess.json").read_text())["preprocess"]["zero_is_missing"] is True
    _, dense_out, _ = compiled_kind("xgboost")
    assert json.loads((dense_out / "preprocess.json").read_text())["preprocess"]["zero_is_missing"] is False
    compiled, original = _loaded(model_dir, out), _loaded(model_dir, None)
    columns = _tricky_columns()
    columns[0] = [0.0 if v is None else v for v in columns[0]]
    columns[2] = [0] * 20 + [1] * 20  # zeros: missing to XGBoost in a sparse matrix
    assert _outcome(compiled, [columns], [40]) == _outcome(original, [columns], [40])


def test_lightgbm_is_not_converted_to_onnx_whose_trees_compare_in_float32(compiled_kind):
    _, _, decision = compiled_kind("lightgbm")
    assert decision["runtime"] == "treelite"
    assert "float64 thresholds" in decision["candidates"]["onnxruntime"]["error"]
