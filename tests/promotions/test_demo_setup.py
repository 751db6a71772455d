from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from apps.accounts.models import AuditEvent
from apps.promotions.models import PromotionPolicy

pytestmark = pytest.mark.django_db


def test_demo_production_takes_one_reviewer_and_a_version_live_in_staging(registry):
    call_command("demo_setup", "--skip-models", stdout=StringIO())
    PromotionPolicy.objects.filter(environment__name="production").update(max_age_hours=24)  # an admin's change
    call_command("demo_setup", "--skip-models", stdout=StringIO())
    policy = PromotionPolicy.objects.get()
    assert policy.environment.name == "production" and policy.require_live_in.name == "staging"
    assert policy.approvals_required == 1 and policy.approver_role == "reviewer"
    assert policy.max_age_hours == 24, "running it again leaves the policy as the admin set it"
    assert AuditEvent.objects.filter(action="promotion_policy.create").count() == 1
