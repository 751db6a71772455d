from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.common.errors import ApplicationError, database_unavailable

logger = logging.getLogger(__name__)


class ApplicationErrorMiddleware:
    """Pages turn a domain error (unknown model, registry down) into a page saying so, with its status code."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, (OperationalError, InterfaceError)) and not request.path_info.startswith("/api/"):
            logger.warning("database unavailable during %s: %s", request.path_info, exception)
            exception = database_unavailable(exception)
        if not isinstance(exception, ApplicationError) or request.path_info.startswith("/api/"):
            return None
        return render(
            request,
            "common/error.html",
            {"title": _TITLES.get(exception.status_code, "Cannot do that"), "error": exception},
            status=exception.status_code,
        )


_TITLES = {403: "Not allowed", 404: "Not found", 409: "Conflict", 503: "Service unavailable"}
