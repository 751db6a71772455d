"""What every API answer has in common.

- Errors are ``{"detail", "code"}``; invalid input adds ``errors``: field name -> messages
  (``non_field_errors`` for the request as a whole, ``Idempotency-Key`` for that header).
- Lists are ``{"count", "next", "previous", "results"}`` (``paging.Pagination``; the registry's lists wrap
  MLflow page tokens and answer ``count: null``).
- POSTs that start work take an ``Idempotency-Key`` header (:func:`idempotency_key`): the same key with
  the same request answers what the first call answered and starts nothing new; the same key with another
  request is refused with 409 ``idempotency_key_reused``. Keys are remembered per person.
- Settings that two people can edit carry an ``ETag``; a write with ``If-Match`` that no longer matches is
  refused with 412 ``precondition_failed`` (:func:`check_if_match`). ``If-Match`` is optional: a client that
  sends none overwrites, as a form post does.
- The schema documents all of this per operation (:class:`AutoSchema`), so every answer can be validated.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.common.errors import ApplicationError, database_unavailable

logger = logging.getLogger(__name__)

__all__ = [
    "AutoSchema",
    "ErrorSerializer",
    "IDEMPOTENCY_KEY",
    "IF_MATCH",
    "PreconditionFailed",
    "ValidationErrorSerializer",
    "check_if_match",
    "etag_of",
    "exception_handler",
    "idempotency_key",
    "if_match_check",
]


# ---------------------------------------------------------------------------- errors
class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, written for a person.")
    code = serializers.CharField(help_text="Stable machine-readable reason, e.g. not_found, rollout_in_progress.")

    class Meta:
        ref_name = "Error"


class ValidationErrorSerializer(ErrorSerializer):
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Invalid input only: field name -> messages; non_field_errors for the request as a whole.",
    )

    class Meta:
        ref_name = "ValidationError"


class PreconditionFailed(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The resource changed since you read it."
    default_code = "precondition_failed"


def _field_errors(data: Any) -> dict[str, Any]:
    if isinstance(data, dict):
        return {key: value if isinstance(value, list | dict) else [value] for key, value in data.items()}
    return {"non_field_errors": data if isinstance(data, list) else [data]}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, (OperationalError, InterfaceError)):  # the database connection dropped under the request
        logger.warning("database unavailable during %s: %s", context["request"].path, exc)
        exc = database_unavailable(exc)
    if isinstance(exc, ApplicationError):
        return Response({"detail": exc.message, "code": exc.code, **exc.extra}, status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"detail": "Invalid input.", "code": "invalid", "errors": _field_errors(response.data)}
    elif isinstance(response.data, dict) and "detail" in response.data:
        detail = response.data["detail"]
        response.data = {"detail": str(detail), "code": getattr(detail, "code", "error")}
    if response.status_code == status.HTTP_401_UNAUTHORIZED:
        response.data["detail"] = response.data.get("detail") or "Authentication required."
    return response


# ---------------------------------------------------------------------------- Idempotency-Key
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    description=(
        "Up to 200 printable characters chosen by the client, e.g. a UUID. A retry with the same key and the same "
        "request answers what the first call answered and starts nothing new; the same key with a different request "
        "is refused with 409 `idempotency_key_reused`. Keys are remembered per person."
    ),
)
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


def idempotency_key(request: Request) -> str:
    """The request's ``Idempotency-Key`` ("" when absent); 400 naming the header when it is malformed."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return ""
    if not _KEY.match(key):
        raise exceptions.ValidationError(
            {"Idempotency-Key": ["Use 1 to 200 printable ASCII characters without spaces, e.g. a UUID."]}
        )
    return key


# ---------------------------------------------------------------------------- optimistic concurrency
IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    description=(
        "The `ETag` of the GET you based this change on. If someone changed the resource since, the answer is "
        "412 `precondition_failed` and nothing is written. Optional: without it the write overwrites."
    ),
)


def etag_of(*parts: object) -> str:
    """A strong ETag over the given representation parts."""
    digest = hashlib.sha256(repr(parts).encode()).hexdigest()[:32]
    return f'"{digest}"'


def check_if_match(request: Request, current: str) -> None:
    """Refuse (412) a write whose ``If-Match`` names another version than ``current``."""
    if_match_check(request.headers.get("If-Match"), current)


def if_match_check(wanted: str | None, current: str) -> None:
    """Refuse (412) a write based on ``wanted`` (an ``If-Match`` value; None: no precondition) unless it names
    ``current``. For services that check under their own lock."""
    if wanted is None:
        return
    tags = {tag.strip().removeprefix("W/") for tag in wanted.split(",")}
    if "*" in tags or current in tags:
        return
    raise PreconditionFailed(
        f"Someone changed this since you read it (ETag {current}, you sent If-Match {wanted}); "
        "GET it again, re-apply your change and send the new ETag."
    )


# ---------------------------------------------------------------------------- schema
_ERRORS_ALWAYS = {
    401: "Not authenticated: send `Authorization: Token <key>` or a session cookie.",
    403: "Authenticated, but this person's role does not allow it.",
    406: "The Accept header asks for something other than JSON.",
    503: "A backend (the MLflow registry, the broker, the telemetry store) cannot be reached.",
}
_ERRORS_WRITE = {
    400: "Invalid input (`errors` names the fields) or a request the service refuses.",
    404: "Something the request names does not exist.",
    409: "The current state does not allow it (e.g. a rollout in progress, an Idempotency-Key reused).",
    415: "The body is not in a supported media type.",
}
_ERRORS_READ = {
    400: "Invalid query parameters (`errors` names them).",
    404: "Not found (or a page past the last one).",
}


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, plus the ``{"detail", "code"}`` errors every operation can answer.

    An operation's own ``responses`` win; these fill in the rest, so every status code the API can send is
    documented and a response validator can check each one."""

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        errors = dict(_ERRORS_ALWAYS)
        errors.update(_ERRORS_READ if self.method in ("GET", "HEAD") else _ERRORS_WRITE)
        if any(p.name == "If-Match" for p in self.get_override_parameters() if isinstance(p, OpenApiParameter)):
            errors[412] = "If-Match does not match the current ETag: someone changed it meanwhile."
        for code in responses:  # an operation's own error answers get the error body too
            if int(code) >= 400:
                errors.setdefault(int(code), "")
        for code, description in errors.items():
            own = responses.get(str(code))
            if own is not None and "content" in own:
                continue
            body = ValidationErrorSerializer if code == 400 else ErrorSerializer
            response = self._get_response_for_code(body, str(code), direction=direction)
            response["description"] = (own or {}).get("description") or description
            responses[str(code)] = response
        return responses
