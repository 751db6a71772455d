"""Publishing events and delivering them to channels; managing channels.

``publish(event, payload, environment=None)`` is the one entry point for every app: it never sends anything
itself and never fails the caller's action. Once the caller's transaction commits, it stores the event, one
``Delivery`` per enabled channel subscribed to it (the environment's channels and the global ones), and queues
``events.deliver`` per delivery. A rolled-back action publishes nothing.

Each delivery is attempted by the task (:func:`delivery_attempt`), which records every attempt (outcome, HTTP
status, duration, error) and says when to try again: exponential backoff from ``EVENTS_RETRY_BASE_SECONDS``, or
longer when the receiver sent ``Retry-After``, up to ``EVENTS_DELIVERY_ATTEMPTS`` attempts. An attempt is
claimed with a conditional update, so a task delivered twice (``acks_late``) sends once.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.permissions import MANAGE_CHANNELS, MANAGE_GLOBAL_CHANNELS, require
from apps.accounts.services import audit_record
from apps.common.errors import ApplicationError, ConflictError
from apps.deployments.models import Environment
from apps.deployments.selectors import environment_get
from apps.events.catalogue import EVENTS
from apps.events.choices import AttemptOutcome, ChannelKind, DeliveryStatus
from apps.events.models import Channel, Delivery, DeliveryAttempt, Event
from apps.events.senders import DeliveryError, send
from apps.events.urls_check import url_check

__all__ = [
    "publish",
    "channel_create",
    "channel_update",
    "channel_delete",
    "delivery_resend",
    "delivery_attempt",
    "deliveries_requeue",
    "AttemptResult",
]

logger = logging.getLogger(__name__)

RETRY_AFTER_CAP = 3600.0  # seconds: a receiver asking for longer is retried after an hour anyway


# ---------------------------------------------------------------------------- publishing
def publish(event: str, payload: dict[str, Any], environment: Environment | int | None = None) -> None:
    """Notify the channels subscribed to ``event`` (a name from ``catalogue.EVENTS``) once the current
    transaction commits (at once outside one). ``payload``'s ``summary`` is the sentence people read, ``url`` a
    path in the UI; other top-level scalars become the message's facts. A broker or database failure here is
    logged, never raised to the action that published."""
    if event not in EVENTS:
        raise ValueError(f"Unknown event {event!r}; add it to apps/events/catalogue.py.")
    data = DjangoJSONEncoder().encode(payload)  # a snapshot now: the caller may change its dict afterwards
    env_id = getattr(environment, "pk", environment)
    occurred_at = timezone.now()
    transaction.on_commit(lambda: _record(event, data, env_id, occurred_at), robust=True)


def _subscribed(event: str, env_id: int | None) -> list[Channel]:
    # Filtered here, not with JSON ``contains``: SQLite (the embedded default) has no such lookup, and channels
    # are few.
    channels = Channel.objects.filter(enabled=True).select_related("environment")
    return [c for c in channels if event in c.events and (c.environment_id is None or c.environment_id == env_id)]


def _record(event: str, data: str, env_id: int | None, occurred_at) -> None:
    channels = _subscribed(event, env_id)
    if not channels:
        return
    environment = Environment.objects.filter(pk=env_id).first() if env_id else None
    with transaction.atomic():
        stored = Event.objects.create(
            name=event,
            environment=environment,
            environment_name=environment.name if environment else "",
            payload=json.loads(data),
            occurred_at=occurred_at,
        )
        deliveries = Delivery.objects.bulk_create([Delivery(event=stored, channel=c) for c in channels])
        for delivery in deliveries:
            _queue(delivery.pk)


def _queue(delivery_id: int, countdown: float = 0) -> None:
    from apps.events.tasks import deliver as deliver_task

    transaction.on_commit(
        lambda: deliver_task.apply_async(kwargs={"delivery_id": delivery_id}, countdown=countdown), robust=True
    )


# ---------------------------------------------------------------------------- delivering
@dataclass(frozen=True)
class AttemptResult:
    outcome: str  # AttemptOutcome, or "skipped" when there was nothing to attempt
    retry_in: float | None = None  # seconds until the next attempt, when one is due


def _backoff(attempt: int) -> float:
    base = settings.EVENTS_RETRY_BASE_SECONDS * 2 ** (attempt - 1)
    return min(base, settings.EVENTS_RETRY_MAX_SECONDS) * random.uniform(1.0, 1.1)  # noqa: S311 - jitter


def delivery_attempt(*, delivery_id: int) -> AttemptResult:
    """Attempt ``delivery_id`` once, if it is pending, and record the attempt. Safe to run twice: the attempt is
    claimed by a conditional update of ``attempt_count``, so of two runs only one sends."""
    delivery = Delivery.objects.select_related("event", "channel").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return AttemptResult("skipped")
    number = delivery.attempt_count + 1
    claimed = Delivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, attempt_count=delivery.attempt_count
    ).update(attempt_count=number, next_attempt_at=None)
    if not claimed:
        return AttemptResult("skipped")
    started, clock = timezone.now(), time.monotonic()
    code, error, retry_in = None, "", None
    if not delivery.channel.enabled:
        outcome, error = AttemptOutcome.FAILED, "the channel is disabled"
    else:
        try:
            code = send(delivery)
            outcome = AttemptOutcome.OK
        except DeliveryError as exc:
            code, error = exc.response_code, exc.message
            if exc.retry and number < settings.EVENTS_DELIVERY_ATTEMPTS:
                outcome = AttemptOutcome.RETRY
                retry_in = max(_backoff(number), min(exc.retry_after or 0.0, RETRY_AFTER_CAP))
            else:
                outcome = AttemptOutcome.FAILED
                if exc.retry:
                    error += f" (gave up after {number} attempts)"
    duration_ms = int((time.monotonic() - clock) * 1000)
    status = {
        AttemptOutcome.OK: DeliveryStatus.SUCCEEDED,
        AttemptOutcome.RETRY: DeliveryStatus.PENDING,
        AttemptOutcome.FAILED: DeliveryStatus.FAILED,
    }[outcome]
    now = timezone.now()
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=started,
            duration_ms=duration_ms,
            outcome=outcome,
            response_code=code,
            error=error[:2000],
        )
        Delivery.objects.filter(pk=delivery_id).update(
            status=status,
            response_code=code,
            error=error[:2000],
            next_attempt_at=now + timedelta(seconds=retry_in) if retry_in is not None else None,
            finished_at=None if retry_in is not None else now,
            updated_at=now,
        )
    if outcome != AttemptOutcome.OK:
        # Name the channel, never its URL: the URL is the credential of a Slack or Teams webhook.
        logger.warning("delivery %s to channel %s: %s", delivery_id, delivery.channel_id, error)
    return AttemptResult(outcome, retry_in)


def deliveries_requeue(*, older_than_seconds: int = 300) -> int:
    """Queue again the pending deliveries whose task was lost (a broker outage when it was queued, a worker gone
    while it waited to retry). A delivery queued twice is attempted once (:func:`delivery_attempt`)."""
    now = timezone.now()
    stale = now - timedelta(seconds=older_than_seconds)
    due = Delivery.objects.filter(status=DeliveryStatus.PENDING, updated_at__lt=stale).filter(
        next_attempt_at__isnull=True
    ) | Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lt=stale)
    ids = list(due.values_list("pk", flat=True)[:500])
    with transaction.atomic():
        Delivery.objects.filter(pk__in=ids).update(updated_at=now)
        for pk in ids:
            _queue(pk)
    return len(ids)


# ---------------------------------------------------------------------------- resending
@transaction.atomic
def delivery_resend(*, actor: User, delivery: Delivery, idempotency_key: str = "") -> Delivery:
    """A new delivery of the same event to the same channel (whatever became of the first). The same
    Idempotency-Key for the same delivery answers the first resend; for another delivery it is refused."""
    _require_manage(actor, delivery.channel.environment)
    if idempotency_key:
        previous = Delivery.objects.filter(requested_by=actor, idempotency_key=idempotency_key).first()
        if previous is not None:
            if previous.resend_of_id != delivery.pk:
                raise ConflictError(
                    f"Idempotency-Key {idempotency_key!r} was already used to resend delivery {previous.resend_of_id}; "
                    "a new request needs a new key.",
                    code="idempotency_key_reused",
                )
            return previous
    try:
        with transaction.atomic():
            resent = Delivery.objects.create(
                event=delivery.event,
                channel=delivery.channel,
                resend_of=delivery,
                requested_by=actor,
                idempotency_key=idempotency_key,
            )
    except IntegrityError:  # the same key, at the same moment: the other request made it
        return Delivery.objects.get(requested_by=actor, idempotency_key=idempotency_key)
    audit_record(
        actor=actor,
        action="delivery.resend",
        target_type="delivery",
        target_id=resent.pk,
        data={"event": delivery.event.name, "channel": delivery.channel.name, "resend_of": delivery.pk},
    )
    _queue(resent.pk)
    return resent


# ---------------------------------------------------------------------------- channels
def _require_manage(actor: User, environment: Environment | None) -> None:
    if environment is None:
        require(actor, MANAGE_GLOBAL_CHANNELS, code="channels_forbidden")
    else:
        require(actor, MANAGE_CHANNELS, environment=environment, code="channels_forbidden")


def _invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError(message, code="channel_invalid", extra={"errors": {field: [message]}})


def _clean_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENTS))
    if unknown:
        raise _invalid("events", f"Unknown events {', '.join(unknown)}; expected some of {', '.join(EVENTS)}.")
    if not events:
        raise _invalid("events", "Subscribe the channel to at least one event.")
    return [name for name in EVENTS if name in events]  # catalogue order, no duplicates


def _clean_target(kind: str, url: str, secret: str, recipients: list[str]) -> None:
    if kind == ChannelKind.EMAIL:
        if url:
            raise _invalid("url", "An email channel has recipients, not a URL.")
        if not recipients:
            raise _invalid("recipients", "An email channel needs at least one recipient.")
        for address in recipients:
            try:
                validate_email(address)
            except ValidationError:
                raise _invalid("recipients", f"{address!r} is not an email address.") from None
        return
    if recipients:
        raise _invalid("recipients", "Only an email channel has recipients.")
    if not url:
        raise _invalid("url", "This channel needs its webhook URL.")
    try:
        url_check(url)
    except ApplicationError as exc:
        raise _invalid("url", exc.message) from None
    if kind == ChannelKind.WEBHOOK and len(secret) < 16:
        raise _invalid("secret", "A JSON webhook needs a signing secret of at least 16 characters.")
    if kind != ChannelKind.WEBHOOK and secret:
        raise _invalid("secret", "Only a JSON webhook is signed; Slack and Teams URLs carry their own credential.")


@transaction.atomic
def channel_create(
    *,
    actor: User,
    name: str,
    kind: str,
    events: list[str],
    url: str = "",
    secret: str = "",
    recipients: list[str] | None = None,
    environment: str | None = None,
    enabled: bool = True,
) -> Channel:
    """A channel of ``environment`` (a name), or a global one (None). Needs MANAGE_CHANNELS there (global:
    MANAGE_GLOBAL_CHANNELS). The URL and secret are stored, never shown or audited."""
    env = environment_get(name=environment) if environment else None
    _require_manage(actor, env)
    if kind not in ChannelKind.values:
        raise _invalid("kind", f"Unknown kind {kind!r}; expected one of {', '.join(ChannelKind.values)}.")
    name = name.strip()
    if not name:
        raise _invalid("name", "Name the channel.")
    recipients = [r.strip() for r in recipients or [] if r.strip()]
    _clean_target(kind, url, secret, recipients)
    channel = Channel.objects.create(
        name=name,
        kind=kind,
        environment=env,
        url=url,
        secret=secret,
        recipients=recipients,
        events=_clean_events(events),
        enabled=enabled,
        created_by=actor,
    )
    audit_record(
        actor=actor,
        action="channel.create",
        target_type="channel",
        target_id=channel.pk,
        data={"name": name, "kind": kind, "environment": environment or "(global)", "events": channel.events},
    )
    return channel


@transaction.atomic
def channel_update(*, actor: User, channel: Channel, **fields: Any) -> Channel:
    """Change ``name``, ``events``, ``enabled``, ``url``, ``secret`` or ``recipients`` (kind and environment are
    fixed: delete and create instead). The audit names which of url/secret changed, never their values."""
    channel = Channel.objects.select_for_update(of=("self",)).select_related("environment").get(pk=channel.pk)
    _require_manage(actor, channel.environment)
    allowed = {"name", "events", "enabled", "url", "secret", "recipients"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"channel_update cannot change {', '.join(sorted(unknown))}")
    changes: dict[str, object] = {}
    if "name" in fields:
        name = str(fields["name"]).strip()
        if not name:
            raise _invalid("name", "Name the channel.")
        changes["name"] = name
    if "events" in fields:
        changes["events"] = _clean_events(list(fields["events"]))
    if "enabled" in fields:
        changes["enabled"] = bool(fields["enabled"])
    for key in ("url", "secret"):
        if key in fields:
            changes[key] = fields[key]
    if "recipients" in fields:
        changes["recipients"] = [r.strip() for r in fields["recipients"] if r.strip()]
    target = {k: changes.get(k, getattr(channel, k)) for k in ("url", "secret", "recipients")}
    _clean_target(channel.kind, target["url"], target["secret"], target["recipients"])
    changed = [k for k, v in changes.items() if getattr(channel, k) != v]
    for key, value in changes.items():
        setattr(channel, key, value)
    channel.save()
    if changed:
        shown = {k: changes[k] for k in changed if k not in ("url", "secret")}
        audit_record(
            actor=actor,
            action="channel.update",
            target_type="channel",
            target_id=channel.pk,
            data={"name": channel.name, "changed": changed, **shown},
        )
    return channel


@transaction.atomic
def channel_delete(*, actor: User, channel: Channel) -> None:
    """Delete the channel and its deliveries' records."""
    _require_manage(actor, channel.environment)
    audit_record(
        actor=actor,
        action="channel.delete",
        target_type="channel",
        target_id=channel.pk,
        data={"name": channel.name, "kind": channel.kind},
    )
    channel.delete()
