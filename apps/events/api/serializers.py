from __future__ import annotations

from rest_framework import serializers

from apps.events.catalogue import EVENT_CHOICES
from apps.events.choices import ChannelKind
from apps.events.models import Channel, Delivery, DeliveryAttempt


class ChannelSerializer(serializers.ModelSerializer):
    """A channel as the API shows it: never its URL or secret (write-only), only where it points."""

    environment = serializers.CharField(source="environment.name", allow_null=True, default=None)
    url_display = serializers.CharField(read_only=True, help_text="Scheme and host only: the rest is a credential.")
    has_secret = serializers.SerializerMethodField()
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_CHOICES))
    recipients = serializers.ListField(child=serializers.EmailField())

    class Meta:
        model = Channel
        fields = [
            "id",
            "name",
            "kind",
            "environment",
            "url_display",
            "has_secret",
            "recipients",
            "events",
            "enabled",
            "created_at",
            "updated_at",
        ]

    def get_has_secret(self, obj: Channel) -> bool:
        return bool(obj.secret)


class StringListField(serializers.ListField):
    """A list of strings whose item errors are flat messages ("item 0: ..."), as the error format documents
    (``errors``: field -> list of messages), not DRF's nested ``{index: [...]}``."""

    child = serializers.CharField(max_length=254)

    def run_child_validation(self, data):
        try:
            return super().run_child_validation(data)
        except serializers.ValidationError as exc:
            if isinstance(exc.detail, dict):
                raise serializers.ValidationError(
                    [f"item {index}: {' '.join(str(m) for m in messages)}" for index, messages in exc.detail.items()]
                ) from None
            raise


class ChannelCreateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=ChannelKind.choices)
    environment = serializers.CharField(
        max_length=63, required=False, allow_null=True, default=None, help_text="Omit or null: a global channel."
    )
    url = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default="", write_only=True, help_text="Webhook URL."
    )
    secret = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        default="",
        write_only=True,
        help_text="HMAC-SHA256 key of a JSON webhook (16+ characters).",
    )
    # Plain strings here, checked by the service, so a bad address is one message under ``recipients``.
    recipients = StringListField(required=False, default=list, help_text="Email addresses (email channels).")
    events = serializers.MultipleChoiceField(choices=EVENT_CHOICES, allow_empty=False)
    enabled = serializers.BooleanField(required=False, default=True)


class ChannelUpdateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    url = serializers.CharField(max_length=2000, required=False, allow_blank=True, write_only=True)
    secret = serializers.CharField(max_length=200, required=False, allow_blank=True, write_only=True)
    recipients = StringListField(required=False)
    events = serializers.MultipleChoiceField(choices=EVENT_CHOICES, allow_empty=False, required=False)
    enabled = serializers.BooleanField(required=False)


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["number", "started_at", "duration_ms", "outcome", "response_code", "error"]


class DeliverySerializer(serializers.ModelSerializer):
    event = serializers.CharField(source="event.name")
    event_id = serializers.IntegerField(source="event.pk")
    occurred_at = serializers.DateTimeField(source="event.occurred_at")
    environment = serializers.CharField(source="event.environment_name", allow_blank=True)
    summary = serializers.SerializerMethodField()
    channel = serializers.IntegerField(source="channel.pk")
    channel_name = serializers.CharField(source="channel.name")

    class Meta:
        model = Delivery
        fields = [
            "id",
            "event",
            "event_id",
            "occurred_at",
            "environment",
            "summary",
            "channel",
            "channel_name",
            "status",
            "attempt_count",
            "response_code",
            "error",
            "next_attempt_at",
            "finished_at",
            "resend_of",
            "created_at",
        ]

    def get_summary(self, obj: Delivery) -> str:
        return str(obj.event.payload.get("summary") or obj.event.name)


class DeliveryDetailSerializer(DeliverySerializer):
    attempts = AttemptSerializer(many=True, read_only=True)
    payload = serializers.JSONField(source="event.payload")

    class Meta(DeliverySerializer.Meta):
        fields = [*DeliverySerializer.Meta.fields, "payload", "attempts"]
