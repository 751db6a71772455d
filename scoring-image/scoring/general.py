"""The general path: MLflow's own parsing, schema enforcement and output encoding.

Every request the fast path cannot prove it answers identically (no column signature, tensor or
type-hint signatures, ``instances``/``inputs``, ``params``, CSV, Parquet, chat-style bodies, values
that need MLflow's type coercions, outputs that are not plain numeric arrays) is answered here with
the functions of ``mlflow.pyfunc.scoring_server`` that ``mlflow models serve`` itself calls, so the
answer is MLflow's. Only the error statuses follow our conventions (see docs/scoring.md).
"""

from __future__ import annotations

import inspect
import io
from typing import Any

from .errors import BadRequest, InvalidInput, ScoringError
from .protocol import PARQUET

__all__ = ["ModelError", "ModelRejectedInput", "mlflow_encode", "model_failure", "score_general"]
_MAX_MESSAGE = 1000


class ModelError(ScoringError):
    """The model raised while predicting: a server-side failure (500)."""

    status = 500
    error_code = "INTERNAL_ERROR"


class ModelRejectedInput(InvalidInput):
    """The model raised ValueError/TypeError on values that passed the signature check (e.g. a number
    too large for the estimator's float32): by Python convention a bad argument, so a 422."""

    error_code = "BAD_REQUEST"  # what MLflow reports for any exception the model raises


def model_failure(exc: Exception) -> ScoringError:
    detail = f"{type(exc).__name__}: {str(exc)[:500]}"
    if isinstance(exc, (ValueError, TypeError)):
        return ModelRejectedInput(f"The model rejected the input: {detail}")
    return ModelError(f"Model prediction failed: {detail}")


def _short(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."


def _client_error(exc: Any, cls: type[ScoringError]) -> ScoringError:
    err = cls(_short(exc.message))
    code = exc.error_code
    if isinstance(code, str) and code:
        err.error_code = code  # keep MLflow's error_code (BAD_REQUEST, INVALID_PARAMETER_VALUE)
    return err


def mlflow_input(pyfunc: Any, body: bytes | dict[str, Any], mime: str) -> tuple[Any, dict[str, Any] | None, bool]:
    """(data, params, unwrapped) as ``scoring_server.invocations`` parses them; BadRequest if it cannot."""
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server as ss

    schema = pyfunc.metadata.get_input_schema()
    try:
        if mime == "text/csv":
            assert isinstance(body, bytes)
            return ss.parse_csv_input(io.StringIO(body.decode("utf-8")), schema=schema), None, False
        if mime == PARQUET:
            assert isinstance(body, bytes)
            return ss.parse_parquet_input(io.BytesIO(body)), None, False
        parsed = ss._parse_json_data(body, pyfunc.metadata, schema)
        return parsed.data, parsed.params, parsed.is_unified_llm_input
    except UnicodeDecodeError as exc:
        raise BadRequest(f"The body is not valid UTF-8: {exc}") from None
    except MlflowException as exc:
        if exc.get_http_status_code() >= 500:
            raise ModelError(_short(exc.message)) from exc
        raise _client_error(exc, BadRequest) from None


def mlflow_predict(pyfunc: Any, data: Any, params: dict[str, Any] | None) -> Any:
    """``PyFuncModel.predict`` as the MLflow server calls it; schema failures are 422, model failures 500/422."""
    from mlflow.exceptions import MlflowException

    try:
        if "params" in inspect.signature(pyfunc.predict).parameters:
            return pyfunc.predict(data, params=params)
        return pyfunc.predict(data)
    except MlflowException as exc:
        if exc.get_http_status_code() < 500:
            raise _client_error(exc, InvalidInput) from None
        raise ModelError(f"Model prediction failed: {_short(exc.message)}") from exc
    except Exception as exc:
        raise model_failure(exc) from exc


def mlflow_encode(raw: Any, unwrapped: bool = False) -> bytes:
    """The answer body exactly as MLflow writes it (its JSON encoder, NaN and datetimes included)."""
    from mlflow.pyfunc import scoring_server as ss

    out = io.StringIO()
    try:
        if unwrapped:
            ss.unwrapped_predictions_to_json(raw, out)
        else:
            ss.predictions_to_json(raw, out)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"Model output is not JSON-serializable: {exc}") from exc
    return out.getvalue().encode()


def score_general(pyfunc: Any, body: bytes | dict[str, Any], mime: str) -> tuple[bytes, int]:
    """(answer body, input rows) for one request, as ``mlflow models serve`` answers it."""
    data, params, unwrapped = mlflow_input(pyfunc, body, mime)
    body_out = mlflow_encode(mlflow_predict(pyfunc, data, params), unwrapped)
    try:
        rows = len(data)
    except TypeError:
        rows = 1
    return body_out, rows
