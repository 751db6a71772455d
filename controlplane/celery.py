"""The one Celery app. Settings come from Django's ``CELERY_*`` block; tasks from ``apps/*/tasks.py``."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

app = Celery("controlplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

_system_runs: dict[str, AbstractContextManager] = {}


@signals.task_prerun.connect
def _task_runs_as_system(task_id: str, **_: object) -> None:
    """Every task's writes are audited as the system's, in a worker and when run eagerly inside a request."""
    from apps.accounts.request_context import as_system

    context = as_system()
    context.__enter__()
    _system_runs[task_id] = context


@signals.task_postrun.connect
def _task_ran_as_system(task_id: str, **_: object) -> None:
    context = _system_runs.pop(task_id, None)
    if context is not None:
        context.__exit__(None, None, None)
