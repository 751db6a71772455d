"""Clients for the accounts tests: a browser-like client that enforces CSRF, and an API client with a real token."""

from __future__ import annotations

from django.test import Client
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.accounts.services import api_token_create


class CsrfClient:
    """A logged-in Django test client that checks CSRF like a browser: a POST carries the token of a page."""

    def __init__(self, user: User) -> None:
        self.client = Client(enforce_csrf_checks=True)
        self.client.force_login(user)

    def get(self, url: str, data: dict | None = None):
        return self.client.get(url, data or {})

    def post(self, url: str, data: dict | None = None, *, page: str = "/accounts/tokens/"):
        self.client.get(page)  # sets the csrftoken cookie, as opening the page does
        token = self.client.cookies["csrftoken"].value
        return self.client.post(url, {**(data or {}), "csrfmiddlewaretoken": token})

    def post_without_csrf(self, url: str, data: dict | None = None):
        return self.client.post(url, data or {})


def token_client(user: User, name: str = "tests") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, name=name).key}")
    return client
