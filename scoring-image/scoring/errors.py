"""Errors that become HTTP responses. A client error is never a 500."""

from __future__ import annotations

__all__ = [
    "ScoringError",
    "BadRequest",
    "PayloadTooLarge",
    "UnsupportedMediaType",
    "InvalidInput",
    "NotReady",
    "RequestTimeout",
]


class ScoringError(Exception):
    """An error with an HTTP status and an MLflow-style ``error_code``; the message names the problem."""

    status = 500
    error_code = "INTERNAL_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ScoringError):
    """The body cannot be read as a scoring request (malformed JSON/CSV, wrong structure, empty)."""

    status = 400
    error_code = "BAD_REQUEST"


class PayloadTooLarge(ScoringError):
    status = 413
    error_code = "REQUEST_LIMIT_EXCEEDED"


class UnsupportedMediaType(ScoringError):
    status = 415
    error_code = "BAD_REQUEST"


class InvalidInput(ScoringError):
    """Well-formed request whose data does not match the model signature (columns, types, nulls)."""

    status = 422
    error_code = "INVALID_PARAMETER_VALUE"


class NotReady(ScoringError):
    status = 503
    error_code = "TEMPORARILY_UNAVAILABLE"


class RequestTimeout(ScoringError):
    """Scoring took longer than ``MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT`` (MLflow's server answers 504 too)."""

    status = 504
    error_code = "DEADLINE_EXCEEDED"
