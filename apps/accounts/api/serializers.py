from __future__ import annotations

from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.accounts.choices import Role
from apps.accounts.exports import EXPORT_FIELDS
from apps.accounts.models import ApiToken, AuditEvent, User


def _absolute(context: dict, path: str) -> str:
    request = context.get("request")
    return request.build_absolute_uri(path) if request else path


class TokenSerializer(serializers.ModelSerializer):
    """A token as listed: never its key, which exists only in the answer that created it."""

    active = serializers.SerializerMethodField()
    owner = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "owner", "created_at", "expires_at", "last_used_at", "revoked_at", "active"]

    def get_active(self, obj: ApiToken) -> bool:
        return obj.revoked_at is None and (obj.expires_at is None or obj.expires_at > timezone.now())


class CreatedTokenSerializer(TokenSerializer):
    key = serializers.CharField(help_text="The secret key. Shown in this answer only; Modelplane keeps only a hash.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "key"]


class TokenCreateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, help_text="What uses the token, e.g. github-actions.")
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, default=None, help_text="Optional; the token stops working then."
    )


class ServiceAccountSerializer(serializers.ModelSerializer):
    # Read-only: the model field's pattern (Python's Unicode \w) would be read as ASCII-only by JSON Schema.
    username = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(source="date_joined", read_only=True)
    active_tokens = serializers.IntegerField(read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "username", "role", "description", "is_active", "created_at", "active_tokens", "url"]

    def get_url(self, obj: User) -> str:
        return _absolute(self.context, reverse("accounts-api:service_account_detail", kwargs={"pk": obj.pk}))


class ServiceAccountCreateInputSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, help_text="Letters, digits and @ . + - _")
    role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class ServiceAccountUpdateInputSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False, help_text="false switches the account and its tokens off.")


@extend_schema_field(OpenApiTypes.OBJECT)
class AuditDataField(serializers.JSONField):
    pass


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name")
    data = AuditDataField(help_text='What changed; edits carry "before" and "after".')

    class Meta:
        model = AuditEvent
        fields = EXPORT_FIELDS  # the API answers what the CSV/JSON exports hold
