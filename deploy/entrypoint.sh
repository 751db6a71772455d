#!/bin/sh
# The image's entrypoint: the first argument picks the role.
#   web       gunicorn on 0.0.0.0:${PORT:-8000} (GUNICORN_WORKERS, GUNICORN_THREADS, GUNICORN_TIMEOUT)
#   worker    a Celery worker on CELERY_WORKER_QUEUES (default "celery"; add CELERY_DEPLOY_QUEUE's queue)
#   beat      the Celery beat scheduler (run exactly one)
#   migrate   apply database migrations, then exit
#   manage    any manage.py command, e.g. `manage createsuperuser`
#   anything else is executed as is.
set -eu
role="${1:-web}"
[ "$#" -gt 0 ] && shift
mkdir -p "${MODELPLANE_VAR_DIR:-/var/lib/modelplane}"

case "$role" in
  web)
    exec gunicorn controlplane.wsgi \
      --bind "0.0.0.0:${PORT:-8000}" \
      --workers "${GUNICORN_WORKERS:-2}" --threads "${GUNICORN_THREADS:-4}" \
      --timeout "${GUNICORN_TIMEOUT:-60}" --graceful-timeout 30 \
      --worker-tmp-dir "${GUNICORN_WORKER_TMP_DIR:-/tmp}" \
      --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-*}" \
      --access-logfile - --log-level "${GUNICORN_LOG_LEVEL:-warning}" "$@"
    ;;
  worker)
    exec celery -A controlplane worker \
      --loglevel "${LOG_LEVEL:-INFO}" \
      --queues "${CELERY_WORKER_QUEUES:-celery}" \
      --concurrency "${CELERY_WORKER_CONCURRENCY:-2}" \
      --hostname "worker@%h" "$@"
    ;;
  beat)
    exec celery -A controlplane beat \
      --loglevel "${LOG_LEVEL:-INFO}" \
      --schedule "${MODELPLANE_VAR_DIR:-/var/lib/modelplane}/celerybeat-schedule" "$@"
    ;;
  migrate)
    exec python manage.py migrate --noinput "$@"
    ;;
  manage)
    exec python manage.py "$@"
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
