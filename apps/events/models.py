"""Channels (where notifications go), events (what happened) and deliveries (one event to one channel, with
every attempt). A channel's ``url`` and ``secret`` are secrets: Slack and Teams webhook URLs carry their
credential in the path or query, so neither is ever rendered, logged or audited (``Channel.url_display``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.db import models

from apps.common.models import TimeStampedModel
from apps.events.choices import AttemptOutcome, ChannelKind, DeliveryStatus

__all__ = ["Channel", "Event", "Delivery", "DeliveryAttempt", "RegistryWatermark"]


class Channel(TimeStampedModel):
    """Where notifications go. ``environment`` null: a global channel, which gets the events of every environment
    (and the events that belong to none, such as the registry's)."""

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    environment = models.ForeignKey(
        "deployments.Environment", null=True, blank=True, on_delete=models.CASCADE, related_name="channels"
    )
    url = models.CharField(max_length=2000, blank=True, help_text="Webhook URL (write-only: it is a credential).")
    secret = models.CharField(max_length=200, blank=True, help_text="HMAC key of a JSON webhook (write-only).")
    recipients = models.JSONField(default=list, blank=True, help_text="Email addresses (email channels).")
    events = models.JSONField(default=list, help_text="Event names this channel receives.")
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    @property
    def url_display(self) -> str:
        """What a page may show of the URL: scheme and host only (the path and query hold the credential)."""
        if self.kind == ChannelKind.EMAIL:
            return ", ".join(self.recipients)
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}/…" if parts.hostname else ""


class Event(models.Model):
    """Something that happened, as published: the payload every channel's message is rendered from."""

    name = models.CharField(max_length=64, db_index=True)
    environment = models.ForeignKey(
        "deployments.Environment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    environment_name = models.CharField(max_length=63, blank=True)
    payload = models.JSONField(default=dict)
    occurred_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} #{self.pk}"


class Delivery(TimeStampedModel):
    """One event to one channel. Attempts are its ``attempts`` rows; a resend is a new delivery."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    response_code = models.PositiveIntegerField(null=True, blank=True, help_text="Of the last attempt.")
    error = models.TextField(blank=True, help_text="Of the last attempt.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    resend_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="resends")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    idempotency_key = models.CharField(max_length=200, blank=True, help_text="The resender's Idempotency-Key.")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["requested_by", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="events_delivery_idempotency_key_unique",
            )
        ]

    def __str__(self) -> str:
        return f"delivery #{self.pk} of {self.event_id} to {self.channel_id}"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    outcome = models.CharField(max_length=16, choices=AttemptOutcome.choices)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="events_attempt_number_unique")]


class RegistryWatermark(models.Model):
    """What the registry poller saw of one model last time: the highest version and the aliases."""

    model_name = models.CharField(max_length=500, unique=True)
    latest_version = models.PositiveIntegerField(default=0)
    aliases = models.JSONField(default=dict)
    seen_at = models.DateTimeField(auto_now=True)
