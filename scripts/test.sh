#!/usr/bin/env bash
# `make test`: start PostgreSQL and Redis, prepare the image-build tools, run the whole suite against them.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services_up.sh
if [ -f scoring-image/tools/setup_build_env.sh ]; then
  bash scoring-image/tools/setup_build_env.sh
fi

export DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/modelplane}
export REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
export CELERY_BROKER_URL=$REDIS_URL
export MODELPLANE_VAR_DIR=${MODELPLANE_VAR_DIR:-$PWD/var/test}

.venv/bin/pytest "$@"
