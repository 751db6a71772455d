"""Backend errors and the loader shared by image builders and deployment targets.

A backend raises ``TransientBackendError`` when trying again later may help (a timeout, a 5xx, a
throttled API) and ``PermanentBackendError`` when it will not (bad credentials, an image that cannot
be pulled, a crash-looping container). Messages are written for the person reading the revision page.
"""

from __future__ import annotations

import functools
from importlib import import_module
from typing import Any

__all__ = ["BackendError", "TransientBackendError", "PermanentBackendError", "load_backend"]


class BackendError(Exception):
    permanent = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransientBackendError(BackendError):
    permanent = False


class PermanentBackendError(BackendError):
    permanent = True


@functools.cache
def _class(dotted: str) -> type:
    module, _, name = dotted.rpartition(".")
    return getattr(import_module(module), name)


def load_backend(registry: dict[str, str], name: str, **kwargs: Any) -> Any:
    """Instantiate the backend registered under ``name``; heavy SDKs are imported only here, on first use."""
    if name not in registry:
        raise PermanentBackendError(f"Unknown backend {name!r}; expected one of {', '.join(sorted(registry))}.")
    return _class(registry[name])(**kwargs)
