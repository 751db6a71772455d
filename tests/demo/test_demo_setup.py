"""`manage.py demo_setup` (apps/demo): the people, environments, access, policy and models of `make run`."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from apps.accounts.models import AuditEvent, User
from apps.accounts.permissions import has_role
from apps.deployments.models import Environment, EnvironmentGrant
from apps.promotions.models import PromotionPolicy

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


def test_the_interns_grant_goes_through_the_access_service_and_is_audited_once(registry):
    call_command("demo_setup", "--skip-models", stdout=StringIO())
    call_command("demo_setup", "--skip-models", stdout=StringIO())
    grant = EnvironmentGrant.objects.get()
    assert (grant.user.username, grant.environment.name, grant.role) == ("intern", "dev", "lead")
    assert grant.granted_by.username == "admin" and grant.source == "manual"
    event = AuditEvent.objects.get(action="access.grant")
    assert (event.actor_name, event.source, event.via, event.ip) == ("admin", "system", "", None)
    assert event.data == {"user": "intern", "environment": "dev", "role": "lead"}


def test_every_write_of_the_demo_is_audited_as_the_system(registry):
    call_command("demo_setup", "--skip-models", stdout=StringIO())
    actions = sorted(AuditEvent.objects.values_list("action", flat=True))
    assert actions == sorted(
        ["user.create"] * 5 + ["environment.create"] * 3 + ["access.grant", "promotion_policy.create"]
    )
    assert set(AuditEvent.objects.values_list("source", flat=True)) == {"system"}


def test_demo_production_takes_one_reviewer_and_a_version_live_in_staging(registry):
    call_command("demo_setup", "--skip-models", stdout=StringIO())
    PromotionPolicy.objects.filter(environment__name="production").update(max_age_hours=24)  # an admin's change
    call_command("demo_setup", "--skip-models", stdout=StringIO())
    policy = PromotionPolicy.objects.get()
    assert policy.environment.name == "production" and policy.require_live_in.name == "staging"
    assert policy.approvals_required == 1 and policy.approver_role == "reviewer"
    assert policy.max_age_hours == 24, "running it again leaves the policy as the admin set it"
    assert AuditEvent.objects.filter(action="promotion_policy.create").count() == 1
