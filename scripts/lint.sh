#!/usr/bin/env bash
# `make lint`, and the first step of `make test`: ruff's checks and its formatting over all the code.
set -euo pipefail
cd "$(dirname "$0")/.."

PATHS=(apps controlplane scoring-image tests bench)
.venv/bin/ruff check "${PATHS[@]}"
.venv/bin/ruff format --check "${PATHS[@]}"
