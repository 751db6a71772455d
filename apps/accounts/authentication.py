from __future__ import annotations

from django.utils import timezone
from rest_framework import authentication, exceptions

from apps.accounts.models import ApiToken
from apps.accounts.request_context import remember_token


class ApiTokenAuthentication(authentication.TokenAuthentication):
    """``Authorization: Token <key>``, checked against the stored hash; expired or revoked keys are refused."""

    keyword = "Token"

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None:
            remember_token(request._request, result[1])  # the audit trail names the token, never its key
        return result

    def authenticate_credentials(self, key: str):
        token = ApiToken.objects.select_related("user").filter(key_hash=ApiToken.hash_key(key)).first()
        now = timezone.now()
        if token is None or token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        if token.expires_at is not None and token.expires_at <= now:
            raise exceptions.AuthenticationFailed("Token expired.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive.")
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token
