#!/usr/bin/env bash
# `make test`: the style checks, then start PostgreSQL and Redis, prepare the image-build tools, and run the whole
# suite against them on pytest-xdist workers (PYTEST_WORKERS, default 3: many tests wait on processes they start,
# and two workers left ~45% of the two cores idle; each worker has its own test database, Redis database and var
# dir: tests/settings.py). Tests sharing an expensive session fixture run on one worker (its scheduler:
# tests/conftest.py). Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/lint.sh

bash scripts/services_up.sh
if [ -f scoring-image/tools/setup_build_env.sh ]; then
  bash scoring-image/tools/setup_build_env.sh
fi

export DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/modelplane}
# Worker gwN uses Redis database 1 + N.
export REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/1}
export CELERY_BROKER_URL=$REDIS_URL
export MODELPLANE_VAR_DIR=${MODELPLANE_VAR_DIR:-$PWD/var/test}

.venv/bin/pytest -n "${PYTEST_WORKERS:-3}" --dist load --durations=40 "$@"
