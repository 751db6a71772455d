from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from apps.accounts.choices import AuditSource, AuditVia, Role

__all__ = ["User", "ApiToken", "AuditEvent", "AppendOnlyError"]


class User(AbstractUser):
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    is_service_account = models.BooleanField(
        default=False, help_text="A robot for CI: acts only through API tokens, never logs in to the UI."
    )
    description = models.CharField(max_length=200, blank=True, help_text="What uses this account (service accounts).")

    def check_password(self, raw_password: str) -> bool:
        # A service account has no password, even if someone sets one through the admin: it cannot log in.
        if self.is_service_account:
            return False
        return super().check_password(raw_password)


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 is stored; the key is shown once, at creation."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=8, help_text="First characters of the key, to recognise it in lists.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()


class AppendOnlyError(Exception):
    """The audit trail is append-only: nobody, admins included, changes or removes an event."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("Audit events cannot be changed.")

    def delete(self):
        raise AppendOnlyError("Audit events cannot be deleted.")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError("Audit events cannot be changed.")

    def update_or_create(self, defaults=None, create_defaults=None, **kwargs):
        raise AppendOnlyError("Audit events cannot be changed.")

    def _raw_delete(self, using):
        raise AppendOnlyError("Audit events cannot be deleted.")


class AuditEvent(models.Model):
    """One row per write through the service layer. Append-only for everyone: saving an existing row,
    deleting one, or a queryset update/delete raises ``AppendOnlyError``; on PostgreSQL a trigger also
    refuses UPDATE and DELETE on the table (migration 0003)."""

    occurred_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_name = models.CharField(max_length=150, help_text="Kept when the user is deleted.")
    source = models.CharField(max_length=8, choices=AuditSource.choices, default=AuditSource.SYSTEM)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=255, blank=True)
    data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    via = models.CharField(max_length=8, choices=AuditVia.choices, blank=True, help_text="The credential used.")
    credential = models.CharField(
        max_length=120, blank=True, help_text="Which token (name and prefix) or session (a short hash), never a key."
    )
    ip = models.GenericIPAddressField(null=True, blank=True, verbose_name="client IP")

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None or not self._state.adding:
            raise AppendOnlyError("Audit events cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Audit events cannot be deleted.")

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M} {self.actor_name} {self.action} {self.target_type}:{self.target_id}"
