from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from apps.accounts.models import AuditEvent, User
from apps.accounts.permissions import has_role
from apps.deployments.models import Environment

pytestmark = pytest.mark.django_db


def test_it_creates_one_user_per_role_and_prints_passwords_once(registry):
    first, second = StringIO(), StringIO()
    call_command("demo_setup", stdout=first)
    call_command("demo_setup", stdout=second)
    assert sorted(User.objects.values_list("username", "role")) == [
        ("admin", "admin"),
        ("intern", "viewer"),
        ("lead", "lead"),
        ("reviewer", "reviewer"),
        ("viewer", "viewer"),
    ]
    intern = User.objects.get(username="intern")
    assert has_role(intern, "lead", environment=Environment.objects.get(name="dev"))
    assert not has_role(intern, "lead", environment=Environment.objects.get(name="staging"))
    password = next(line.split()[1] for line in first.getvalue().splitlines() if line.strip().startswith("lead"))
    assert User.objects.get(username="lead").check_password(password)
    assert password not in second.getvalue() and "exist already" in second.getvalue()
    assert "already there" in second.getvalue(), "the registry already holds every demo version"


def test_it_creates_the_three_environments_with_production_gated(registry):
    call_command("demo_setup", "--skip-models", stdout=StringIO())
    call_command("demo_setup", "--skip-models", stdout=StringIO())
    assert list(Environment.objects.values_list("name", "gated")) == [
        ("dev", False),
        ("staging", False),
        ("production", True),
    ]
    assert AuditEvent.objects.filter(action="environment.create").count() == 3


def test_an_admin_can_reach_the_admin_site(registry, client):
    call_command("demo_setup", "--skip-models", stdout=StringIO())
    client.force_login(User.objects.get(username="admin"))
    assert client.get("/admin/deployments/environment/").status_code == 200
