"""How an event becomes a message for each kind of channel, and how it is sent.

Every kind renders the same ``envelope`` (docs/events.md): the JSON webhook posts it as is, signed; Slack and
Teams get a readable message built from its ``summary`` and ``facts``; email gets the same as plain text.
``send`` returns the HTTP status of a success, and raises :class:`DeliveryError` otherwise, saying whether a
retry may help (5xx, 429, timeouts, connection errors) and how long the receiver asked to wait (Retry-After).
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import logging
import smtplib
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from django.core.mail import EmailMessage
from django.utils import timezone

from apps.events.catalogue import EVENTS
from apps.events.choices import ChannelKind
from apps.events.models import Channel, Delivery, Event
from apps.events.urls_check import url_resolves_public

__all__ = [
    "DeliveryError",
    "envelope",
    "signature",
    "teams_message",
    "slack_message",
    "send",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
]

SIGNATURE_HEADER = "X-Modelplane-Signature"
TIMESTAMP_HEADER = "X-Modelplane-Timestamp"
USER_AGENT = "modelplane-events/1"
MAX_FACTS = 10  # Slack allows ten fields per section


@dataclass
class DeliveryError(Exception):
    message: str
    retry: bool
    response_code: int | None = None
    retry_after: float | None = None

    def __str__(self) -> str:
        return self.message


# ---------------------------------------------------------------------------- what is said
def _link(path: object) -> str | None:
    if not isinstance(path, str) or not path:
        return None
    base = settings.EVENTS_LINK_BASE_URL
    return urljoin(base, path) if base and path.startswith("/") else (path if "://" in path else None)


def _facts(payload: dict) -> list[tuple[str, str]]:
    facts = []
    for key, value in payload.items():
        if key in ("summary", "url") or isinstance(value, dict | list) or value in (None, ""):
            continue
        facts.append((key.replace("_", " ").capitalize(), str(value)))
    return facts[:MAX_FACTS]


def envelope(event: Event, delivery: Delivery | None = None) -> dict[str, object]:
    """The JSON every channel's message is built from; what a JSON webhook receives."""
    payload = dict(event.payload)
    return {
        "id": event.pk,
        "delivery": delivery.pk if delivery else None,
        "event": event.name,
        "title": EVENTS.get(event.name, event.name),
        "summary": str(payload.get("summary") or EVENTS.get(event.name, event.name)),
        "occurred_at": event.occurred_at.isoformat(),
        "environment": event.environment_name or None,
        "url": _link(payload.get("url")),
        "data": payload,
    }


def teams_message(body: dict) -> dict[str, object]:
    """An Adaptive Card in the message envelope a Teams Workflows webhook ("When a Teams webhook request is
    received" + "Post card in a chat or channel") takes; Office 365 connectors' MessageCard is retired."""
    card_body: list[dict] = [
        {"type": "TextBlock", "text": body["title"], "weight": "Bolder", "size": "Medium", "wrap": True},
        {"type": "TextBlock", "text": body["summary"], "wrap": True},
    ]
    facts = _facts(body["data"])
    if body["environment"]:
        facts.insert(0, ("Environment", str(body["environment"])))
    if facts:
        card_body.append({"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts[:MAX_FACTS]]})
    card: dict[str, object] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": card_body,
    }
    if body["url"]:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in modelplane", "url": body["url"]}]
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def slack_message(body: dict) -> dict[str, object]:
    """An incoming-webhook message: ``text`` (the notification's fallback) and Block Kit blocks."""
    text = f"{body['title']}: {body['summary']}"
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": body["title"][:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": body["summary"]}},
    ]
    facts = _facts(body["data"])
    if body["environment"]:
        facts.insert(0, ("Environment", str(body["environment"])))
    if facts:
        fields = [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in facts[:MAX_FACTS]]
        blocks.append({"type": "section", "fields": fields})
    if body["url"]:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{body['url']}|Open in modelplane>"}]}
        )
    return {"text": text, "blocks": blocks}


def _email_text(body: dict) -> str:
    lines = [body["summary"], ""]
    facts = _facts(body["data"])
    if body["environment"]:
        facts.insert(0, ("Environment", str(body["environment"])))
    lines += [f"{k}: {v}" for k, v in facts]
    if body["url"]:
        lines += ["", body["url"]]
    lines += ["", f"Event {body['event']} #{body['id']} at {body['occurred_at']}."]
    return "\n".join(lines)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``<timestamp>.<body>`` (the timestamp stops replays of old bodies)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


# ---------------------------------------------------------------------------- how it is sent
_sending_path: contextvars.ContextVar[str] = contextvars.ContextVar("events_sending_path", default="")


class _RedactPath(logging.Filter):
    """urllib3 logs each request's path at DEBUG; a Slack or Teams URL's path and query are its credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        secret = _sending_path.get()
        if secret:
            message = record.getMessage()
            if secret in message:
                record.msg, record.args = message.replace(secret, "/[redacted]"), ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactPath())


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - timezone.now()).total_seconds())
    except (TypeError, ValueError):
        return None


def _post(channel: Channel, data: bytes, headers: dict[str, str]) -> int:
    refused = url_resolves_public(channel.url)
    if refused:
        raise DeliveryError(f"not sent: {refused}", retry=False)
    parts = urlsplit(channel.url)
    secret_part = parts.path + (f"?{parts.query}" if parts.query else "")
    token = _sending_path.set(secret_part if len(secret_part) > 1 else "")
    try:
        response = requests.post(
            channel.url,
            data=data,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
            timeout=settings.EVENTS_HTTP_TIMEOUT,
            allow_redirects=False,
        )
    except requests.Timeout:
        raise DeliveryError(f"timed out after {settings.EVENTS_HTTP_TIMEOUT} s", retry=True) from None
    except requests.ConnectionError as exc:
        raise DeliveryError(f"could not connect: {type(exc).__name__}", retry=True) from None
    finally:
        _sending_path.reset(token)
    code = response.status_code
    if code == 429 or code >= 500:
        raise DeliveryError(f"answered {code}", retry=True, response_code=code, retry_after=_retry_after(response))
    if code >= 300:  # a refusal, a wrong URL or a redirect (not followed): retrying will not help
        raise DeliveryError(f"answered {code}", retry=False, response_code=code)
    return code


def send(delivery: Delivery) -> int | None:
    """Send ``delivery`` once. Returns the HTTP status (None for email); raises :class:`DeliveryError`."""
    channel, body = delivery.channel, envelope(delivery.event, delivery)
    if channel.kind == ChannelKind.EMAIL:
        message = EmailMessage(
            subject=f"[modelplane] {body['title']}: {body['summary']}"[:200],
            body=_email_text(body),
            to=list(channel.recipients),
        )
        try:
            message.send()
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP answered {exc.smtp_code}", retry=exc.smtp_code < 500) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"could not send mail: {type(exc).__name__}", retry=True) from None
        return None
    headers = {"X-Modelplane-Event": delivery.event.name, "X-Modelplane-Delivery": str(delivery.pk)}
    if channel.kind == ChannelKind.TEAMS:
        message_body = teams_message(body)
    elif channel.kind == ChannelKind.SLACK:
        message_body = slack_message(body)
    else:
        message_body = body
    data = json.dumps(message_body, separators=(",", ":"), sort_keys=True).encode()
    if channel.kind == ChannelKind.WEBHOOK and channel.secret:
        timestamp = str(int(time.time()))
        headers[TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_HEADER] = signature(channel.secret, timestamp, data)
    return _post(channel, data, headers)
