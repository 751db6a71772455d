"""A Redis cache that degrades to no cache while Redis is unreachable.

Everything the control plane caches (sessions, registry answers) has its truth elsewhere, so a cache outage
must cost speed, not pages: each call that cannot reach Redis answers as a miss (reads) or does nothing
(writes), and for ``RETRY_AFTER`` seconds after a failure Redis is not tried at all, so a page does not wait a
connect timeout per cache call. ``available()`` tells the status page which state it is in.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["DegradingRedisCache"]

logger = logging.getLogger(__name__)

RETRY_AFTER = 5.0  # seconds
_OUTAGE = (RedisConnectionError, RedisTimeoutError, OSError)
_MISS = object()


class DegradingRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        options = params.setdefault("OPTIONS", {})
        options.setdefault("socket_connect_timeout", 0.5)
        options.setdefault("socket_timeout", 1.0)
        super().__init__(server, params)
        self._down_until = 0.0

    def available(self) -> bool:
        """Whether Redis answers now (it is asked, even during the back-off)."""
        try:
            self._cache.get_client(write=True).ping()
        except _OUTAGE:
            self._down_until = time.monotonic() + RETRY_AFTER
            return False
        self._down_until = 0.0
        return True

    def _call(self, method: str, default: Any, *args: Any, **kwargs: Any) -> Any:
        if time.monotonic() < self._down_until:
            return default
        try:
            return getattr(super(), method)(*args, **kwargs)
        except _OUTAGE as exc:
            if not self._down_until:
                logger.warning("cache unreachable (%s): serving without cache", type(exc).__name__)
            self._down_until = time.monotonic() + RETRY_AFTER
            return default

    def get(self, key, default=None, version=None):
        return self._call("get", default, key, default, version)

    def get_many(self, keys, version=None):
        return self._call("get_many", {}, keys, version)

    def has_key(self, key, version=None):
        return self._call("has_key", False, key, version)

    def add(self, key, value, *args, **kwargs):
        return self._call("add", False, key, value, *args, **kwargs)

    def set(self, key, value, *args, **kwargs):
        return self._call("set", None, key, value, *args, **kwargs)

    def set_many(self, data, *args, **kwargs):
        return self._call("set_many", list(data), data, *args, **kwargs)

    def touch(self, key, *args, **kwargs):
        return self._call("touch", False, key, *args, **kwargs)

    def delete(self, key, version=None):
        return self._call("delete", False, key, version)

    def delete_many(self, keys, version=None):
        return self._call("delete_many", None, keys, version)

    def incr(self, key, delta=1, version=None):
        result = self._call("incr", _MISS, key, delta, version)
        if result is _MISS:
            raise ValueError(f"Key '{key}' not found (the cache is unreachable).")
        return result

    def clear(self):
        return self._call("clear", False)
