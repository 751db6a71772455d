from __future__ import annotations

from django.core.management.base import CommandError

from apps.accounts.models import User
from apps.accounts.request_context import SystemCommand
from apps.accounts.services import api_token_create


class Command(SystemCommand):
    help = "Create an API token for a user and print it (last line of output). The key is not stored."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="A name to recognise the token by.")

    def handle(self, *args, username: str, name: str, **options) -> None:
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        created = api_token_create(user=user, name=name)
        self.stdout.write(f"Token {created.token.name!r} for {username} (role {user.role}). Use it as:")
        self.stdout.write("  Authorization: Token <key>")
        self.stdout.write(created.key)
