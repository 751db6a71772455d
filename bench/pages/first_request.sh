#!/usr/bin/env bash
# Time the first and later loads of the login page and the API docs (page + schema) on a freshly started
# gunicorn worker, as `make run` serves them. Uses DATABASE_URL/REDIS_URL from the environment and a user
# BENCH_USER/BENCH_PASSWORD (created by: manage.py shell -c "..."; see README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=${PORT:-18713}
USER_NAME=${BENCH_USER:-viewer}
PASSWORD=${BENCH_PASSWORD:?set BENCH_PASSWORD}
JAR=$(mktemp)
.venv/bin/gunicorn controlplane.wsgi --bind "127.0.0.1:$PORT" --workers 1 --threads 2 --log-level warning &
PID=$!
trap 'kill $PID; rm -f $JAR' EXIT
until (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do sleep 0.2; done
sleep "${BOOT_WAIT:-25}"  # the master listens before its worker has booted; give the worker time to boot
t() { curl -s -o /dev/null -b "$JAR" -c "$JAR" -w "$1 %{http_code} %{time_total}s\n" "http://127.0.0.1:$PORT$1"; }
t /accounts/login/; t /accounts/login/; t /accounts/login/
CSRF=$(awk '/csrftoken/ {print $7}' "$JAR")
curl -s -o /dev/null -b "$JAR" -c "$JAR" -H "Referer: http://127.0.0.1:$PORT/accounts/login/" \
  -d "csrfmiddlewaretoken=$CSRF&username=$USER_NAME&password=$PASSWORD" "http://127.0.0.1:$PORT/accounts/login/"
t /docs/api/; t /api/schema/; t /docs/api/; t /api/schema/; t /deployments/; t /deployments/
