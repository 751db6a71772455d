"""Typed readers for the environment; each fails loudly on a value it cannot parse."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

__all__ = ["env_bool", "env_int", "env_list", "env_str", "env_secret", "env_renamed", "parse_mapping"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_secret(name: str, default: str = "") -> str:
    """Read ``NAME``, or the contents of the file named by ``NAME_FILE`` (Kubernetes/Docker secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc.strerror}") from None
    return os.environ.get(name, default)


def env_renamed(renamed: dict[str, str], *, why: str) -> None:
    """Refuse to start while a variable that was renamed is still set: silently ignoring it would change behaviour."""
    stale = [f"{old} is now {new}" for old, new in renamed.items() if os.environ.get(old) is not None]
    if stale:
        raise ImproperlyConfigured(f"Renamed settings: {'; '.join(stale)} ({why}).")


def parse_mapping(text: str, name: str) -> dict:
    """``text`` (YAML or JSON, as read by ``env_secret``) as a mapping; empty text is an empty mapping."""
    if not text.strip():
        return {}
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ImproperlyConfigured(f"{name} is neither YAML nor JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f"{name} must be a mapping (name: settings), not {type(value).__name__}")
    return value
