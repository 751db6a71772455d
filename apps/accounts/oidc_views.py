"""The login page (username/password and/or "Sign in with Microsoft") and the two steps of the OIDC flow."""

from __future__ import annotations

import logging
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET

from apps.accounts.oidc import SsoRefused, oidc_client, oidc_enabled, oidc_user_sync
from apps.accounts.services import audit_record

__all__ = ["LoginView", "login_context", "oidc_login", "oidc_callback"]

logger = logging.getLogger(__name__)
_NEXT_KEY = "oidc_next"


def login_context(request: HttpRequest) -> dict[str, Any]:
    return {
        "oidc_enabled": oidc_enabled(),
        "oidc_provider_name": settings.OIDC_PROVIDER_NAME,
        "local_login_enabled": settings.LOCAL_LOGIN_ENABLED,
        "next": request.GET.get("next", request.POST.get("next", "")),
    }


@method_decorator(login_not_required, name="dispatch")
class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(**kwargs) | login_context(self.request)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.LOCAL_LOGIN_ENABLED:
            context = login_context(request) | {"sso_error": "Sign-in with a username and password is turned off."}
            return render(request, self.template_name, context, status=403)
        return super().post(request, *args, **kwargs)


def _safe_next(request: HttpRequest, candidate: str) -> str:
    if candidate and url_has_allowed_host_and_scheme(candidate, {request.get_host()}, request.is_secure()):
        return candidate
    return reverse(settings.LOGIN_REDIRECT_URL)


def _refused(request: HttpRequest, message: str, status: int = 403) -> HttpResponse:
    context = login_context(request) | {"sso_error": message, "next": ""}
    return render(request, "accounts/login.html", context, status=status)


@require_GET
@login_not_required
def oidc_login(request: HttpRequest) -> HttpResponse:
    """Send the browser to the provider, with a fresh state and nonce kept in the session."""
    if not oidc_enabled():
        return _refused(request, "Single sign-on is not configured here.", status=404)
    request.session[_NEXT_KEY] = _safe_next(request, request.GET.get("next", ""))
    redirect_uri = request.build_absolute_uri(reverse("accounts:oidc_callback"))
    try:
        return oidc_client().authorize_redirect(request, redirect_uri)
    except (requests.RequestException, ValueError, KeyError) as exc:
        logger.warning("OIDC: the provider's discovery document could not be read: %s", type(exc).__name__)
        return _refused(request, f"{settings.OIDC_PROVIDER_NAME} sign-in is unavailable: the provider did not answer.")


def _why(exc: Exception) -> str:
    """A reason a person can act on, from Authlib's and joserfc's exceptions, without echoing token contents."""
    from authlib.integrations.base_client import MismatchingStateError, OAuthError
    from joserfc import errors as jose

    if isinstance(exc, MismatchingStateError):
        return "the sign-in request expired or was started in another browser session. Please try again."
    if isinstance(exc, jose.ExpiredTokenError):
        return "the identity token has expired (check this server's clock)."
    if isinstance(exc, jose.InvalidClaimError | jose.MissingClaimError):
        claim = getattr(exc, "claim", "") or ""
        names = {"aud": "audience", "azp": "audience", "iss": "issuer", "nonce": "nonce"}
        return f"the identity token's {names.get(claim, claim + ' claim')} is not the expected one."
    if isinstance(exc, jose.BadSignatureError | jose.InvalidKeyIdError | jose.DecodeError):
        return "the identity token's signature could not be verified."
    if isinstance(exc, jose.JoseError):
        return f"the identity token was refused ({exc.error})."
    if isinstance(exc, OAuthError):
        return f"the provider refused: {exc.description or exc.error}."
    return "the provider could not be reached."


@require_GET
@login_not_required
def oidc_callback(request: HttpRequest) -> HttpResponse:
    """The provider sends the browser back here with a code: exchange it, verify the id_token, sign in."""
    from authlib.integrations.base_client import OAuthError
    from joserfc.errors import JoseError

    if not oidc_enabled():
        return _refused(request, "Single sign-on is not configured here.", status=404)
    try:
        token = oidc_client().authorize_access_token(request, leeway=30)
    except (OAuthError, JoseError, requests.RequestException, ValueError) as exc:
        reason = _why(exc)
        logger.warning("OIDC sign-in refused: %s (%s)", reason, type(exc).__name__)
        audit_record(actor=None, action="login.sso_refused", data={"reason": reason[:200]})
        return _refused(request, f"Sign-in with {settings.OIDC_PROVIDER_NAME} failed: {reason}")
    claims = token.get("userinfo")
    if not claims:
        return _refused(request, f"Sign-in with {settings.OIDC_PROVIDER_NAME} failed: no identity token came back.")
    try:
        user = oidc_user_sync(claims=claims)
    except SsoRefused as exc:
        audit_record(actor=None, action="login.sso_refused", data={"reason": str(exc)[:200]})
        return _refused(request, str(exc))
    next_url = request.session.pop(_NEXT_KEY, "")
    auth_login(request, user, backend="apps.accounts.oidc.OidcBackend")
    return redirect(_safe_next(request, next_url))
