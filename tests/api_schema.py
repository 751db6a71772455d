"""Every ``/api/`` answer the suite sees is checked against the OpenAPI schema the app generates.

``tests/conftest.py`` wraps Django's test client (and so DRF's ``APIClient``) with :func:`check`: the status code
must be documented for the operation, the body must be JSON and match the documented schema (schemathesis does
the JSON Schema part, OpenAPI's ``nullable`` included). A test that gets an undocumented answer fails, naming it.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any

import requests
import schemathesis
from schemathesis.core.transport import Response

__all__ = ["check", "raw_schema", "schema"]

API_PREFIX = "/api/v1/"


@functools.cache
def raw_schema() -> dict[str, Any]:
    """The schema ``/api/schema/`` serves, as plain JSON."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(generated))


@functools.cache
def schema() -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_dict(raw_schema())


@dataclass(frozen=True)
class _Template:
    path: str
    pattern: re.Pattern[str]
    literal: int  # characters outside {params}: the most literal match is the most specific

    @classmethod
    def of(cls, path: str) -> _Template:
        parts = re.split(r"(\{[^}]+\})", path)
        regex = "".join(".+" if part.startswith("{") else re.escape(part) for part in parts)
        return cls(path, re.compile(f"^{regex}$"), sum(len(p) for p in parts if not p.startswith("{")))


@functools.cache
def _templates() -> tuple[_Template, ...]:
    return tuple(_Template.of(path) for path in raw_schema()["paths"])


def template_for(path: str) -> str | None:
    matches = [t for t in _templates() if t.pattern.match(path)]
    return max(matches, key=lambda t: t.literal).path if matches else None


def _is_error_body(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("detail"), str) and isinstance(body.get("code"), str)


def check(request: dict[str, Any], response: Any) -> None:
    """Fail (AssertionError) when ``response`` to the WSGI ``request`` is not what the schema documents."""
    path, method = request.get("PATH_INFO", ""), request.get("REQUEST_METHOD", "GET").upper()
    if not path.startswith(API_PREFIX) or getattr(response, "streaming", False):
        return
    where = f"{method} {path} -> {response.status_code}"
    content_type = response.headers.get("Content-Type", "")
    body = json.loads(response.content) if response.content and content_type.startswith("application/json") else None
    template = template_for(path)
    if template is None or method.lower() not in raw_schema()["paths"][template]:
        # DRF authenticates before it looks for the method's handler, so an anonymous wrong method is a 401.
        assert response.status_code in (401, 403, 404, 405), f"{where}: no operation in the OpenAPI schema answers it"
        assert _is_error_body(body), f"{where}: an error must be {{detail, code}}, got {response.content[:300]!r}"
        return
    operation = schema()[template][method]
    documented = sorted(operation.definition.raw.get("responses", {}))
    assert operation.responses.find_by_status_code(response.status_code) is not None, (
        f"{where}: status {response.status_code} is not documented for {operation.label} (documented: {documented})"
    )
    media_types = set(operation.definition.raw["responses"].get(str(response.status_code), {}).get("content", {}))
    if response.content:
        media_type = content_type.split(";")[0].strip()
        assert media_type in media_types, f"{where}: content type {media_type!r}, documented: {sorted(media_types)}"
    if not content_type.startswith("application/json"):
        return
    prepared = requests.Request(method, "http://testserver" + path).prepare()
    headers = {key.lower(): [value] for key, value in response.headers.items()}
    answer = Response(response.status_code, headers, bytes(response.content), prepared, 0.0, False)
    try:
        operation.validate_response(answer)
    except Exception as exc:  # schemathesis raises a FailureGroup naming every mismatch
        raise AssertionError(
            f"{where}: the body does not match the OpenAPI schema of {operation.label}: {exc}"
        ) from exc
