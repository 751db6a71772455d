"""Assemble an image build context for one model directory and compute its content digest.

Plain Python (no Django), used by the deploy pipeline::

    ctx = assemble_build_context(model_dir, dest_dir, base_image="python:3.11-slim-bookworm",
                                 model_name="credit-default", model_version="3")
    # build dest_dir with its Dockerfile and ctx.build_args; tag the image with ctx.tag

The digest covers the *content* of everything that goes into the image and nothing else: the model
files, the requirements (the model's, as installed, and the server's), the server code, the
Dockerfile, and the build arguments (base image, model name/version, source run). File times,
permissions, the location of ``model_dir`` and the order files were written in do not count.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BuildContext",
    "assemble_build_context",
    "compile_context",
    "context_digest",
    "DEFAULT_BASE_IMAGE",
    "SERVER_ROOT",
]

DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"
# scoring-image/: holds the Dockerfile, requirements.txt and the scoring package.
SERVER_ROOT = Path(__file__).resolve().parent.parent
_IGNORED_DIRS = {"__pycache__", ".ipynb_checkpoints", ".git"}
_IGNORED_SUFFIXES = (".pyc", ".pyo")
# The compiled model (compile_context) is derived from what the digest covers, and its choice of runtime is
# measured, so it stays out of the digest: the same model and server give the same tag.
COMPILED_DIR = "compiled"
COMPILE_TIMEOUT_S = 900
_MLFLOW_PIN = re.compile(r"^mlflow(\[[^\]]*\])?(?=\s*(==|>=|<=|~=|!=|<|>|$|;))", re.IGNORECASE)


@dataclass(frozen=True)
class BuildContext:
    path: Path
    digest: str  # "sha256:<64 hex>"
    build_args: dict[str, str] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        """A deterministic image tag: the first 32 hex digits of the digest."""
        return self.digest.split(":", 1)[1][:32]


def assemble_build_context(
    model_dir: str | os.PathLike[str],
    dest_dir: str | os.PathLike[str],
    *,
    base_image: str = DEFAULT_BASE_IMAGE,
    model_name: str = "",
    model_version: str = "",
    source_run: str = "",
    lean_mlflow: bool = True,
    server_root: str | os.PathLike[str] = SERVER_ROOT,
    compile: bool = False,
    reference_data: str | os.PathLike[str] | None = None,
) -> BuildContext:
    """Write ``dest_dir`` (must be missing or empty) and return its path, digest and build arguments.

    Layout: ``Dockerfile``, ``model/`` (a copy of ``model_dir``), ``requirements/model.txt`` (the
    model's ``requirements.txt``; with ``lean_mlflow`` an ``mlflow`` pin becomes the same
    ``mlflow-skinny`` pin, which is all that loading a pyfunc model needs), ``requirements/server.txt``
    and ``server/scoring/`` (the server package, from ``server_root``: this checkout's ``scoring-image/``),
    and ``compiled/`` (``compile_context``: with ``compile``, the model compiled and verified now; else a
    decision to serve the original, which a later ``compile_context`` call may replace).
    """
    model_dir = Path(model_dir)
    dest = Path(dest_dir)
    if not (model_dir / "MLmodel").is_file():
        raise FileNotFoundError(f"{model_dir} is not an MLflow model directory (no MLmodel file)")
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"build context directory {dest} is not empty")
    dest.mkdir(parents=True, exist_ok=True)

    _copy_tree(model_dir, dest / "model")
    server_root = Path(server_root)
    _copy_tree(server_root / "scoring", dest / "server" / "scoring")
    shutil.copyfile(server_root / "Dockerfile", dest / "Dockerfile")
    (dest / "requirements").mkdir()
    (dest / "requirements" / "model.txt").write_text(_model_requirements(model_dir, lean_mlflow=lean_mlflow))
    shutil.copyfile(server_root / "requirements.txt", dest / "requirements" / "server.txt")

    build_args = {
        "BASE_IMAGE": base_image,
        "MODEL_NAME": model_name or "unknown",
        "MODEL_VERSION": model_version or "unknown",
        "SOURCE_RUN": source_run or _mlmodel_run_id(model_dir) or "unknown",
    }
    digest = context_digest(dest, build_args)
    build_args["CONTEXT_DIGEST"] = digest
    context = BuildContext(path=dest, digest=digest, build_args=build_args)
    if compile:
        compile_context(context, reference_data=reference_data, server_root=server_root)
    else:
        _write_decision(dest / COMPILED_DIR, {"runtime": "original", "reason": "compilation not attempted"})
        _set_compiled_args(context, {"runtime": "original"})
    return context


def compile_context(
    context: BuildContext,
    *,
    reference_data: str | os.PathLike[str] | None = None,
    server_root: str | os.PathLike[str] = SERVER_ROOT,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Compile the context's model into ``compiled/`` (``python -m scoring compile`` in a child process, so a
    model's pickled code never runs in the caller) and set the ``COMPILED_*`` build arguments; returns the
    decision. A failure of any kind gives a decision to serve the original model, never an exception."""
    out = context.path / COMPILED_DIR
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "scoring", "compile", str(context.path / "model"), str(out)]
    if reference_data:
        cmd += ["--reference", str(reference_data)]
    env = dict(os.environ, MLFLOW_ALLOW_PICKLE_DESERIALIZATION="true")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(server_root)), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S, env=env)
        decision = json.loads((out / "decision.json").read_text()) if (out / "decision.json").is_file() else None
        if decision is None:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            decision = {"runtime": "original", "reason": f"compiler exited with {result.returncode}: {tail[0]}"}
    except (subprocess.TimeoutExpired, OSError, ValueError) as exc:
        decision = {"runtime": "original", "reason": f"compiler failed: {type(exc).__name__}: {exc}"}
    if decision["runtime"] == "original":
        _write_decision(out, decision)
    _set_compiled_args(context, decision)
    if log is not None:
        for line in decision_lines(decision):
            log(line)
    return decision


def decision_lines(decision: Mapping[str, Any]) -> list[str]:
    """What a build log shows of a compile decision."""
    runtime = decision.get("runtime", "original")
    lines = [f"model runtime: {runtime} ({decision.get('reason', '')})"]
    if runtime != "original":
        lines.append(
            f"verified on {decision.get('verified_rows')} rows: labels equal, max difference "
            f"{decision.get('max_abs_diff', 0):.3g} (tolerance {decision.get('tolerance')})"
        )
    for name, entry in (decision.get("candidates") or {}).items():
        timing = entry.get("ms")
        shown = f"{timing['1']} ms for 1 row, {timing['64']} ms for 64" if timing else entry.get("error", "")
        lines.append(f"  candidate {name}: {shown}")
    if decision.get("original_ms"):
        ms = decision["original_ms"]
        lines.append(f"  original: {ms['1']} ms for 1 row, {ms['64']} ms for 64")
    return lines


def _write_decision(out: Path, decision: Mapping[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in ("model.onnx", "model.nonan.onnx", "model.treelite", "preprocess.json"):
        (out / name).unlink(missing_ok=True)
    (out / "requirements.txt").write_text("# the original model's runtime only\n")
    (out / "decision.json").write_text(json.dumps(dict(decision), indent=2, sort_keys=True) + "\n")


def _set_compiled_args(context: BuildContext, decision: Mapping[str, Any]) -> None:
    context.build_args["COMPILED_RUNTIME"] = str(decision.get("runtime", "original"))
    diff = decision.get("max_abs_diff")
    context.build_args["COMPILED_MAX_ABS_DIFF"] = "" if diff is None else f"{diff:.3g}"


def context_digest(path: str | os.PathLike[str], build_args: Mapping[str, str]) -> str:
    """sha256 over (relative path, content hash) of every file, sorted, plus the build arguments."""
    root = Path(path)
    h = hashlib.sha256()
    for rel in sorted(_files(root)):
        if rel.startswith(COMPILED_DIR + "/"):
            continue
        file_hash = hashlib.sha256()
        with open(root / rel, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                file_hash.update(block)
        h.update(f"file {rel}\0{file_hash.hexdigest()}\n".encode())
    for key in sorted(build_args):
        if key != "CONTEXT_DIGEST" and not key.startswith("COMPILED_"):
            h.update(f"arg {key}\0{build_args[key]}\n".encode())
    return "sha256:" + h.hexdigest()


def _files(root: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if d not in _IGNORED_DIRS]
        for name in filenames:
            if name.endswith(_IGNORED_SUFFIXES):
                continue
            out.append((Path(dirpath) / name).relative_to(root).as_posix())
    return out


def _copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(
        src,
        dst,
        symlinks=False,
        ignore=lambda _d, names: [n for n in names if n in _IGNORED_DIRS or n.endswith(_IGNORED_SUFFIXES)],
    )


def _model_requirements(model_dir: Path, *, lean_mlflow: bool) -> str:
    req = model_dir / "requirements.txt"
    if req.is_file():
        lines = req.read_text().splitlines()
    else:  # an old model without requirements.txt: at least the MLflow it was saved with
        version = _mlmodel_field(model_dir, "mlflow_version")
        lines = [f"mlflow=={version}" if version else "mlflow"]
    out = []
    for line in lines:
        stripped = line.strip()
        if lean_mlflow and _MLFLOW_PIN.match(stripped):
            stripped = _MLFLOW_PIN.sub("mlflow-skinny", stripped, count=1)
        out.append(stripped)
    return "\n".join(out).strip() + "\n"


def _mlmodel_field(model_dir: Path, key: str) -> str | None:
    # Top-level scalar keys of the MLmodel YAML; avoids importing yaml/mlflow here.
    for line in (model_dir / "MLmodel").read_text().splitlines():
        if line.startswith(f"{key}:"):
            value = line.split(":", 1)[1].strip().strip("'\"")
            return value if value and value != "null" else None
    return None


def _mlmodel_run_id(model_dir: Path) -> str | None:
    return _mlmodel_field(model_dir, "run_id")
