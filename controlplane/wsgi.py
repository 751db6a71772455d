import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
application = get_wsgi_application()

# Import the URLconf (and with it every view module: MLflow, scipy, plotly) now, while the worker boots, not in
# the first request it serves: otherwise the first page a person opens (the login page) waits ~2-3 s for it.
from controlplane.warmup import warm_up  # noqa: E402

warm_up()
