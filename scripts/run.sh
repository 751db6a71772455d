#!/usr/bin/env bash
# `make run`: migrate, create the demo data, start a Celery worker (with beat) and the web server.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
mkdir -p var/log
# The demo: a live dev deployment of credit-default and ~20 minutes of labelled demo requests with a drift
# episode, sampled at half the requests so drift has rows to judge. DEMO_TRAFFIC=false make run turns it off.
export DEMO_TRAFFIC=${DEMO_TRAFFIC:-true}
export SCORING_TELEMETRY_SAMPLE_RATE=${SCORING_TELEMETRY_SAMPLE_RATE:-0.5}

$BIN/python manage.py migrate --noinput -v0
$BIN/python manage.py collectstatic --noinput -v0
$BIN/python manage.py demo_setup

$BIN/celery -A controlplane worker --beat --loglevel INFO --concurrency 2 \
  --schedule var/celerybeat-schedule >var/log/worker.log 2>&1 &
WORKER=$!
TRAFFIC=
if [ "$DEMO_TRAFFIC" = true ]; then
  $BIN/python manage.py demo_traffic >var/log/demo-traffic.log 2>&1 &
  TRAFFIC=$!
fi
trap 'kill $WORKER $TRAFFIC 2>/dev/null; wait $WORKER $TRAFFIC 2>/dev/null' EXIT INT TERM

echo
echo "Modelplane is running at http://$HOST:$PORT/  (worker log: var/log/worker.log; Ctrl-C stops everything)"
if [ -n "$TRAFFIC" ]; then
  echo "Demo traffic: credit-default in dev gets ~20 min of demo requests with a drift episode (var/log/demo-traffic.log);"
  echo "  Deployments > credit-default in dev > Monitoring shows it. DEMO_TRAFFIC=false make run turns it off."
fi
echo
$BIN/gunicorn controlplane.wsgi --bind "$HOST:$PORT" --workers 2 --threads 4 --access-logfile - --log-level warning
