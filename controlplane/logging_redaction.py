"""Secrets never reach a log line: every log record is redacted as it is created, in the web server, the
worker and the tests alike (``LOGGING_CONFIG`` points here, so Django installs it before any logging).

Redacted: the values of the secret settings (Django's key, the OIDC client secret, registry and cluster
credentials, passwords inside connection URIs), credentials inside any URI, and token-looking strings
(``Token``/``Bearer`` credentials, JWTs, Databricks personal access tokens, ``password=``-style pairs).
"""

from __future__ import annotations

import logging
import logging.config
import os
import re
import traceback
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["configure", "redact", "secret_values"]

MASK = "***"
_MIN_SECRET_LENGTH = 6  # shorter values would blank out ordinary words
_PATTERNS = [
    # Authorization credentials, in headers or repr()s of them.
    # (a random key has a digit, "-" or "_"; "Token authentication" is left alone)
    (
        re.compile(r"(?i)\b(token|bearer|basic)(\s+|=|:\s*)(?=[A-Za-z./~+=]*[0-9_-])[A-Za-z0-9._~+/=-]{12,}"),
        rf"\1\2{MASK}",
    ),
    # JSON Web Tokens (id_token, access tokens of Entra).
    (re.compile(r"\beyJ[\w-]{5,}\.eyJ[\w-]{5,}\.[\w-]+"), MASK),
    # Databricks personal access tokens.
    (re.compile(r"\bdapi[0-9a-f]{32}(-\d+)?\b"), MASK),
    # key=value and "key": "value" pairs whose key names a secret.
    (
        re.compile(
            r"(?i)([\"']?\b(?:password|passwd|secret|client_secret|access_token|refresh_token|id_token|api_key|"
            r"apikey|token)[\"']?\s*[:=]\s*[\"']?)([^\s&\"',;}]+)"
        ),
        rf"\1{MASK}",
    ),
    # An OAuth authorization code in a logged callback URL.
    (re.compile(r"([?&]code=)[^&\s]+"), rf"\1{MASK}"),
]
_URI = re.compile(r"[a-zA-Z][\w+.-]*://[^\s'\"<>]+")

_secrets: list[str] = []


def secret_values(django_settings: Any, environ: Any = os.environ) -> list[str]:
    """Every secret value the settings and environment hold, longest first (so a longer secret that contains
    a shorter one is replaced whole)."""
    found: set[str] = set()

    def add(value: object) -> None:
        if isinstance(value, str) and len(value) >= _MIN_SECRET_LENGTH:
            found.add(value)

    def add_uri(value: object) -> None:
        if isinstance(value, str) and "://" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                return
            if password:
                add(password)
                add(unquote(password))

    for name in ("SECRET_KEY", "OIDC_CLIENT_SECRET", "KUBERNETES_TOKEN"):
        add(getattr(django_settings, name, ""))
    for name in ("CELERY_BROKER_URL", "REDIS_URL", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        add_uri(getattr(django_settings, name, ""))
    for database in getattr(django_settings, "DATABASES", {}).values():
        add(database.get("PASSWORD"))
    for cluster in (getattr(django_settings, "KUBERNETES_CLUSTERS", None) or {}).values():
        if isinstance(cluster, dict):
            add(cluster.get("token"))
    for family in ("IMAGE_BUILDER_OPTIONS", "DEPLOY_TARGET_OPTIONS"):
        for options in getattr(django_settings, family, {}).values():
            for key, value in options.items():
                if key in ("password", "token"):
                    add(value)
    for name, value in environ.items():
        if re.search(r"(SECRET|PASSWORD|TOKEN)$", name) or name.endswith(("_SECRET_FILE", "_PASSWORD_FILE")):
            if name.endswith("_FILE"):
                continue  # the path, not the secret; the setting read from it is collected above
            add(value)
        elif name.endswith("_URL") or name.endswith("_URI"):
            add_uri(value)
    return sorted(found, key=len, reverse=True)


def redact(text: str, values: Iterable[str] | None = None) -> str:
    """``text`` with known secret values, credentials in URIs and token-looking strings replaced by ``***``."""
    from apps.common.uris import mask_uri

    for value in _secrets if values is None else values:
        if value in text:
            text = text.replace(value, MASK)
    text = _URI.sub(lambda match: mask_uri(match.group(0)), text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: leave it to logging's own error report
        return
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, ()
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))


def configure(logging_settings: dict[str, Any]) -> None:
    """Django's ``LOGGING_CONFIG``: the usual ``dictConfig``, then redaction of every record created."""
    from django.conf import settings

    _secrets[:] = secret_values(settings)
    logging.config.dictConfig(logging_settings)
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _redact_record(record)
        return record

    factory.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
