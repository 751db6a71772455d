"""Fixtures for promotions only: a second reviewer."""

from __future__ import annotations

import pytest

from apps.accounts.choices import Role
from apps.accounts.models import User
from tests.conftest import PASSWORD


@pytest.fixture
def erin(db) -> User:
    """A second reviewer."""
    return User.objects.create_user(username="erin", password=PASSWORD, role=Role.REVIEWER)
