"""Where a channel may post: the SSRF guard.

A channel URL is typed by an admin but fetched by the control plane's workers, inside the cluster network. So,
unless ``EVENTS_ALLOW_PRIVATE_URLS`` is on (the embedded default and the tests, which post to 127.0.0.1):
- only ``https`` URLs are accepted;
- the host must not be, or resolve to, a loopback, private, link-local (169.254.169.254, the cloud metadata
  endpoint), multicast, reserved or unspecified address. This is checked when the channel is saved and again
  before every attempt (a name can be re-pointed after it was saved);
- redirects are not followed (a public URL could redirect inward).
Credentials in the URL (``user:pass@``) are refused everywhere: they would be shown as part of the host.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

from apps.common.errors import ApplicationError

__all__ = ["url_check", "url_resolves_public"]


def _allow_private() -> bool:
    return bool(settings.EVENTS_ALLOW_PRIVATE_URLS)


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def url_check(url: str) -> None:
    """400 ``channel_url_invalid`` unless ``url`` is a URL a channel may post to (without resolving it)."""
    parts = urlsplit(url)
    allowed = ("http", "https") if _allow_private() else ("https",)
    if parts.scheme not in allowed or not parts.hostname:
        need = "an http(s) URL" if _allow_private() else "an https URL"
        raise ApplicationError(f"A channel needs {need}.", code="channel_url_invalid")
    if parts.username or parts.password:
        raise ApplicationError("Put no credentials in the URL's host part.", code="channel_url_invalid")
    if _allow_private():
        return
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        if parts.hostname == "localhost" or parts.hostname.endswith((".localhost", ".internal", ".local")):
            raise ApplicationError("A channel may not post to an internal host.", code="channel_url_invalid") from None
        return
    if not _public(str(literal)):
        raise ApplicationError("A channel may not post to a private address.", code="channel_url_invalid")


def url_resolves_public(url: str) -> str:
    """ "" when the URL's host resolves to public addresses only (or private ones are allowed); else why not."""
    if _allow_private():
        return ""
    parts = urlsplit(url)
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        return f"cannot resolve {parts.hostname}: {exc}"
    private = sorted({info[4][0] for info in infos if not _public(info[4][0])})
    return f"{parts.hostname} resolves to a private address ({private[0]})" if private else ""
