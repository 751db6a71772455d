from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["mask_uri", "mask_uris_in"]

_URI = re.compile(r"[a-zA-Z][\w+.-]*://[^\s'\"<>]+")

_SECRET_QUERY_KEYS = {"password", "token", "sig", "secret", "key", "access_token", "sas"}


def mask_uri(uri: str) -> str:
    """The URI with any password or token replaced by ``***``, safe to show or log."""
    if not uri:
        return uri
    parts = urlsplit(uri)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"***@{host}"
    query = parts.query
    if query:
        pairs = [
            (k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in parse_qsl(query, keep_blank_values=True)
        ]
        query = urlencode(pairs, safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return uri  # urlunsplit would also drop the empty authority of sqlite:////abs/path
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_uris_in(text: str) -> str:
    """``text`` with every URI in it masked, for error messages that quote a URI."""
    return _URI.sub(lambda match: mask_uri(match.group(0)), text)
