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
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BuildContext", "assemble_build_context", "context_digest", "DEFAULT_BASE_IMAGE", "SERVER_ROOT"]

DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"
# scoring-image/: holds the Dockerfile, requirements.txt and the scoring package.
SERVER_ROOT = Path(__file__).resolve().parent.parent
_IGNORED_DIRS = {"__pycache__", ".ipynb_checkpoints", ".git"}
_IGNORED_SUFFIXES = (".pyc", ".pyo")
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
) -> BuildContext:
    """Write ``dest_dir`` (must be missing or empty) and return its path, digest and build arguments.

    Layout: ``Dockerfile``, ``model/`` (a copy of ``model_dir``), ``requirements/model.txt`` (the
    model's ``requirements.txt``; with ``lean_mlflow`` an ``mlflow`` pin becomes the same
    ``mlflow-skinny`` pin, which is all that loading a pyfunc model needs), ``requirements/server.txt``
    and ``server/scoring/`` (the server package, from ``server_root``: this checkout's ``scoring-image/``).
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
    return BuildContext(path=dest, digest=digest, build_args=build_args)


def context_digest(path: str | os.PathLike[str], build_args: Mapping[str, str]) -> str:
    """sha256 over (relative path, content hash) of every file, sorted, plus the build arguments."""
    root = Path(path)
    h = hashlib.sha256()
    for rel in sorted(_files(root)):
        file_hash = hashlib.sha256()
        with open(root / rel, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                file_hash.update(block)
        h.update(f"file {rel}\0{file_hash.hexdigest()}\n".encode())
    for key in sorted(build_args):
        if key != "CONTEXT_DIGEST":
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
