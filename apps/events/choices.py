from django.db import models


class ChannelKind(models.TextChoices):
    WEBHOOK = "webhook", "JSON webhook (signed)"
    TEAMS = "teams", "Microsoft Teams (Workflows)"
    SLACK = "slack", "Slack"
    EMAIL = "email", "Email"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # queued, or waiting for its next attempt
    SUCCEEDED = "succeeded", "Delivered"
    FAILED = "failed", "Failed"  # refused (4xx) or out of attempts: only a resend tries again


class AttemptOutcome(models.TextChoices):
    OK = "ok", "Delivered"
    RETRY = "retry", "Will retry"
    FAILED = "failed", "Failed"
