"""The router's configuration file and its deterministic choices (see docs/deployments.md, "The stable endpoint").

The file is JSON::

    {"backends": {"r3": "http://127.0.0.1:41001", "r4": "http://127.0.0.1:41002"},
     "weights": {"r3": 80, "r4": 20},
     "mirror": {"to": "r4", "percent": 50}}

``weights`` are shares of client requests (backends left out get none); ``mirror`` (optional) copies ``percent`` of
the requests served by the other backends to ``to``, whose answers are discarded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

__all__ = ["ConfigError", "RouteConfig", "parse_config", "SmoothWeighted", "EveryPercent"]


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the key."""


@dataclass(frozen=True)
class RouteConfig:
    backends: dict[str, tuple[str, int]]  # label -> (host, port)
    urls: dict[str, str]  # label -> the URL as written
    weights: dict[str, int]
    mirror_to: str = ""
    mirror_percent: int = 0
    digest: str = ""  # sha256 of the file's bytes: lets whoever wrote it see that this exact file is applied

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"backends": dict(self.urls), "weights": dict(self.weights)}
        if self.mirror_to:
            data["mirror"] = {"to": self.mirror_to, "percent": self.mirror_percent}
        return data


def _address(label: str, url: object) -> tuple[str, int]:
    if not isinstance(url, str):
        raise ConfigError(f"backends.{label} must be a URL string, not {url!r}")
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(f"backends.{label} must look like http://HOST:PORT, not {url!r}")
    return parts.hostname, parts.port or 80


def _percent(key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ConfigError(f"{key} must be a whole number from 0 to 100, not {value!r}")
    return value


def parse_config(data: bytes) -> RouteConfig:
    """The configuration in ``data`` (the file's bytes), checked; raises ``ConfigError``."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError("the configuration must be a JSON object")
    unknown = set(raw) - {"backends", "weights", "mirror"}
    if unknown:
        raise ConfigError(f"unknown keys: {', '.join(sorted(unknown))}")
    backends_raw = raw.get("backends") or {}
    weights_raw = raw.get("weights") or {}
    if not isinstance(backends_raw, dict) or not isinstance(weights_raw, dict):
        raise ConfigError("backends and weights must be objects keyed by revision label")
    backends = {str(label): _address(label, url) for label, url in backends_raw.items()}
    weights = {}
    for label, weight in weights_raw.items():
        if label not in backends:
            raise ConfigError(f"weights.{label} names no backend")
        weights[label] = _percent(f"weights.{label}", weight)
    mirror_to, mirror_percent = "", 0
    mirror = raw.get("mirror")
    if mirror:
        if not isinstance(mirror, dict) or set(mirror) - {"to", "percent"}:
            raise ConfigError('mirror must be {"to": LABEL, "percent": 0..100}')
        mirror_to = mirror.get("to", "")
        if mirror_to not in backends:
            raise ConfigError(f"mirror.to names no backend: {mirror_to!r}")
        mirror_percent = _percent("mirror.percent", mirror.get("percent", 100))
    return RouteConfig(
        backends=backends,
        urls={label: str(backends_raw[label]) for label in backends},
        weights=weights,
        mirror_to=mirror_to if mirror_percent else "",
        mirror_percent=mirror_percent if mirror_to else 0,
        digest=hashlib.sha256(data).hexdigest(),
    )


class SmoothWeighted:
    """nginx's smooth weighted round-robin: over every ``sum(weights)`` picks each label is chosen exactly its
    weight times, spread evenly (80/20 -> four of one, one of the other, in every five)."""

    def __init__(self, weights: dict[str, int]) -> None:
        self.labels = [label for label, weight in weights.items() if weight > 0]
        self.weights = [weights[label] for label in self.labels]
        self.current = [0] * len(self.labels)
        self.total = sum(self.weights)

    def pick(self) -> str | None:
        if not self.labels:
            return None
        current, weights = self.current, self.weights
        best = 0
        for i in range(len(current)):
            current[i] += weights[i]
            if current[i] > current[best]:
                best = i
        current[best] -= self.total
        return self.labels[best]


class EveryPercent:
    """``take()`` is true exactly ``percent`` times in every 100 calls, spread evenly."""

    def __init__(self, percent: int) -> None:
        self.percent = percent
        self.credit = 0

    def take(self) -> bool:
        self.credit += self.percent
        if self.credit >= 100:
            self.credit -= 100
            return True
        return False
