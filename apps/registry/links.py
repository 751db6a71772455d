"""Paths of registry pages without one ``reverse()`` per row: a models page has 25 rows of links,
and reversing them took a third of the page's own time (bench/registry)."""

from __future__ import annotations

import functools
from urllib.parse import quote

from django.urls import reverse

__all__ = ["model_path", "version_path", "model_api_path"]

# What Django's reverse() leaves unquoted in a path argument (RFC 3986 sub-delimiters and "/~:@").
_SAFE = "!$&'()*+,;=/~:@"
_MARK = "MODELNAME"
_VERSION_MARK = "424242"


@functools.cache
def _template(route: str, with_version: bool) -> str:
    kwargs = {"name": _MARK, **({"version": _VERSION_MARK} if with_version else {})}
    return reverse(route, kwargs=kwargs).replace(_MARK, "{name}").replace(_VERSION_MARK, "{version}")


def model_path(name: str) -> str:
    return _template("registry:model_detail", False).format(name=quote(name, safe=_SAFE))


def version_path(name: str, version: str) -> str:
    return _template("registry:version_detail", True).format(name=quote(name, safe=_SAFE), version=quote(version))


def model_api_path(name: str) -> str:
    return _template("registry-api:model_detail", False).format(name=quote(name, safe=_SAFE))
