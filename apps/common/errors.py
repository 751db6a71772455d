"""Domain errors raised by services and selectors; the API and the UI each turn them into one answer."""

from __future__ import annotations

__all__ = [
    "ApplicationError",
    "ForbiddenError",
    "NotFoundError",
    "ConflictError",
    "UnavailableError",
    "database_unavailable",
]


class ApplicationError(Exception):
    """A request that cannot be done as asked; ``message`` is written for the person who asked."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, extra: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.extra = extra or {}


class ForbiddenError(ApplicationError):
    status_code = 403
    code = "forbidden"


class NotFoundError(ApplicationError):
    status_code = 404
    code = "not_found"


class ConflictError(ApplicationError):
    status_code = 409
    code = "conflict"


class UnavailableError(ApplicationError):
    """A backend (the MLflow registry, the broker, a cluster) cannot be reached or refused us."""

    status_code = 503
    code = "unavailable"


def database_unavailable(exc: Exception) -> UnavailableError:
    """What a request answers when its database connection failed under it (PostgreSQL restarted, the backend
    terminated, the network dropped): 503, and the open transaction was rolled back. The exception's text is not
    shown (it may name hosts)."""
    return UnavailableError(
        "The database connection was lost while answering this request; what it was doing was not saved. "
        "Try again (a retry with the same Idempotency-Key never does anything twice).",
        code="database_unavailable",
    )
