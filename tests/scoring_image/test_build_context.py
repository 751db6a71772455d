"""The build context's digest changes exactly when what goes into the image changes."""

from __future__ import annotations

import os
import shutil
import time

import pytest
from scoring.build_context import SERVER_ROOT, assemble_build_context, context_digest


@pytest.fixture
def model_copy(model_dir, tmp_path):
    dest = tmp_path / "model"
    shutil.copytree(model_dir, dest)
    return dest


@pytest.fixture
def server_copy(tmp_path):
    dest = tmp_path / "scoring-image"
    shutil.copytree(SERVER_ROOT, dest, ignore=shutil.ignore_patterns("__pycache__", "tools"))
    return dest


def digest(model, tmp_path, **kwargs) -> str:
    dest = tmp_path / f"ctx-{time.monotonic_ns()}"
    return assemble_build_context(model, dest, **kwargs).digest


def test_context_layout_and_requirements(model_dir, tmp_path):
    ctx = assemble_build_context(model_dir, tmp_path / "ctx", model_name="credit-default", model_version="3")
    names = {p.relative_to(ctx.path).as_posix() for p in ctx.path.rglob("*") if p.is_file()}
    assert {"Dockerfile", "model/MLmodel", "requirements/model.txt", "requirements/server.txt"} <= names
    assert "server/scoring/app.py" in names and "server/scoring/__main__.py" in names
    assert not any("__pycache__" in n for n in names)
    model_reqs = (ctx.path / "requirements" / "model.txt").read_text().splitlines()
    assert "mlflow-skinny==3.17.2" in model_reqs and "scikit-learn==1.9.1" in model_reqs
    assert not any(line.startswith("mlflow==") for line in model_reqs)
    assert ctx.build_args["MODEL_NAME"] == "credit-default" and ctx.build_args["MODEL_VERSION"] == "3"
    assert ctx.build_args["CONTEXT_DIGEST"] == ctx.digest and ctx.digest.startswith("sha256:")
    assert len(ctx.tag) == 32 and ctx.digest[7:].startswith(ctx.tag)
    assert context_digest(ctx.path, ctx.build_args) == ctx.digest


def test_full_mlflow_pin_is_kept_when_not_lean(model_dir, tmp_path):
    ctx = assemble_build_context(model_dir, tmp_path / "ctx", lean_mlflow=False)
    assert "mlflow==3.17.2" in (ctx.path / "requirements" / "model.txt").read_text().splitlines()


def test_same_content_same_digest_wherever_and_whenever(model_dir, model_copy, tmp_path):
    first = digest(model_dir, tmp_path)
    assert digest(model_dir, tmp_path) == first  # again
    assert digest(model_copy, tmp_path) == first  # another directory
    for path in model_copy.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))  # other file times
        path.chmod(0o600)  # and permissions
    assert digest(model_copy, tmp_path) == first
    (model_copy / "__pycache__").mkdir()
    (model_copy / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"junk")  # ignored
    assert digest(model_copy, tmp_path) == first


def test_model_file_change_changes_digest(model_dir, model_copy, tmp_path):
    first = digest(model_dir, tmp_path)
    skops = model_copy / "model.skops"
    data = bytearray(skops.read_bytes())
    data[-1] ^= 1
    skops.write_bytes(bytes(data))
    assert digest(model_copy, tmp_path) != first


def test_added_model_file_changes_digest(model_dir, model_copy, tmp_path):
    first = digest(model_dir, tmp_path)
    (model_copy / "artifacts").mkdir()
    (model_copy / "artifacts" / "vocab.txt").write_text("a\n")
    assert digest(model_copy, tmp_path) != first


def test_requirements_change_changes_digest(model_dir, model_copy, tmp_path):
    first = digest(model_dir, tmp_path)
    reqs = model_copy / "requirements.txt"
    reqs.write_text(reqs.read_text().replace("numpy==2.4.6", "numpy==2.4.5"))
    assert digest(model_copy, tmp_path) != first


def test_server_code_change_changes_digest(model_dir, server_copy, tmp_path):
    first = digest(model_dir, tmp_path)
    assert digest(model_dir, tmp_path, server_root=server_copy) == first  # same code, other place
    (server_copy / "scoring" / "__pycache__").mkdir(exist_ok=True)
    (server_copy / "scoring" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"junk")
    assert digest(model_dir, tmp_path, server_root=server_copy) == first
    app = server_copy / "scoring" / "app.py"
    app.write_text(app.read_text() + "\n# changed\n")
    assert digest(model_dir, tmp_path, server_root=server_copy) != first


def test_server_requirements_and_dockerfile_changes_change_digest(model_dir, server_copy, tmp_path):
    first = digest(model_dir, tmp_path, server_root=server_copy)
    (server_copy / "requirements.txt").write_text("orjson==3.13.0\n")
    second = digest(model_dir, tmp_path, server_root=server_copy)
    assert second != first
    (server_copy / "Dockerfile").write_text((server_copy / "Dockerfile").read_text() + "\n# changed\n")
    assert digest(model_dir, tmp_path, server_root=server_copy) != second


def test_build_arguments_count(model_dir, tmp_path):
    first = digest(model_dir, tmp_path)
    assert digest(model_dir, tmp_path, base_image="localhost/other:1") != first
    assert digest(model_dir, tmp_path, model_version="2") != first


def test_refuses_non_model_dirs_and_non_empty_destinations(model_dir, tmp_path):
    with pytest.raises(FileNotFoundError):
        assemble_build_context(tmp_path, tmp_path / "ctx")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(FileExistsError):
        assemble_build_context(model_dir, tmp_path / "busy")
