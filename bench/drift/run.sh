#!/usr/bin/env bash
# `make bench-drift`: our drift table vs Evidently's data-drift report on the same data, in one run.
# Evidently lives in its own venv (bench/drift/.venv, git-ignored), created here on first use from PyPI.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x bench/drift/.venv/bin/python ] || ! bench/drift/.venv/bin/python -c "import evidently" 2>/dev/null; then
  python3 -m venv bench/drift/.venv
  bench/drift/.venv/bin/pip install --quiet -r bench/drift/requirements.txt
fi
exec .venv/bin/python bench/drift/bench_drift.py "$@"
