"""The project's settings for the test run, with one Redis database and one var dir per pytest-xdist worker.

``scripts/test.sh`` runs the suite on several xdist workers (gw0, gw1, ...). pytest-django already gives each its
own PostgreSQL test database; this gives each its own Redis database (the base database + the worker's number:
Celery broker and cache, so no worker consumes another's tasks or clears another's cache) and its own var dir
(static files, the embedded broker, local targets). Processes the tests start (Celery workers, ``manage.py``)
inherit the adjusted environment, which ``MODELPLANE_TEST_WORKER`` marks as done.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and os.environ.get("MODELPLANE_TEST_WORKER") != _worker:
    _number = int(_worker.removeprefix("gw"))
    _redis = os.environ.get("REDIS_URL", "")
    if _redis:
        _parts = urlsplit(_redis)
        _database = int(_parts.path.strip("/") or 0) + _number
        _own = urlunsplit(_parts._replace(path=f"/{_database}"))
        for _name in ("REDIS_URL", "CELERY_BROKER_URL"):
            if os.environ.get(_name, _redis) == _redis:
                os.environ[_name] = _own
    if os.environ.get("MODELPLANE_VAR_DIR"):
        os.environ["MODELPLANE_VAR_DIR"] = os.path.join(os.environ["MODELPLANE_VAR_DIR"], _worker)
    os.environ["MODELPLANE_TEST_WORKER"] = _worker

from controlplane.settings import *  # noqa: E402, F403
