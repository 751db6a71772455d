"""The API docs' schema is generated once per process (``CachedSchemaView``) and the web process imports its
URLconf while it boots (``controlplane.warmup``), so neither the login page nor the docs wait for them.
How long they took before and after is in bench/pages/."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_the_cached_schema_is_the_generated_one(client, carol):
    from io import StringIO

    client.force_login(carol)
    first = client.get("/api/schema/?format=json")
    again = client.get("/api/schema/?format=json")
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    out = StringIO()
    call_command("spectacular", "--format", "openapi-json", stdout=out)
    assert json.loads(first.content) == json.loads(out.getvalue())
    assert first["Content-Disposition"].startswith("inline; filename=")


def test_the_wsgi_module_imports_the_urlconf_and_renders_the_schema_at_start_up():
    """In a fresh interpreter: loading the WSGI application leaves nothing lazy for the first request."""
    code = (
        "import sys; import controlplane.wsgi; "
        "from apps.common.schema_view import CachedSchemaView as V; "
        "print('controlplane.urls' in sys.modules, 'apps.monitoring.drift' in sys.modules, len(V._rendered))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    urls, views, rendered = out.stdout.split()
    assert (urls, views) == ("True", "True")
    assert int(rendered) >= 2
