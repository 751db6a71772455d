"""Pages offer what the services accept: the deployment page's buttons, the top bar, the access page's filters."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts.choices import Role
from apps.accounts.models import User
from apps.accounts.services import api_token_create, user_role_set
from apps.common.errors import ApplicationError
from apps.deployments import services
from apps.deployments.models import Deployment, EnvironmentGrant, Revision

pytestmark = pytest.mark.django_db


class _Undo(Exception):
    """Rolls a savepoint back after a service accepted the call."""


def _service_accepts_rollback(actor: User, deployment: Deployment, revision: Revision) -> bool:
    try:
        with transaction.atomic():
            services.deployment_rollback(actor=actor, deployment=deployment, to_revision=revision)
            raise _Undo
    except _Undo:
        return True
    except ApplicationError:
        return False


def _offered_rollbacks(client, deployment: Deployment) -> set[str]:
    page = client.get(reverse("deployments:deployment_detail", args=[deployment.pk])).content.decode()
    return {label for label in ("r1", "r2", "r3", "r4") if f"Roll back to {label}<" in page}


@pytest.mark.parametrize("status", ["live", "failed", "pending", "deleting", "deleted"])
def test_the_roll_back_buttons_are_exactly_the_rollbacks_the_service_accepts(client, alice, environments, status):
    deployment = Deployment.objects.create(
        environment=environments["dev"], model_name="credit-default", name="credit-default", status=status
    )
    revisions = [
        Revision.objects.create(deployment=deployment, number=n, model_version=str(n), status=s)
        for n, s in enumerate(["superseded", "failed", "live", "rolled_back"], 1)
    ]
    deployment.live_revision = revisions[2] if status == "live" else None
    deployment.save()
    client.force_login(alice)
    accepted = {r.label for r in revisions if _service_accepts_rollback(alice, deployment, r)}
    assert _offered_rollbacks(client, deployment) == accepted
    # The drift this pins: a failed deployment (nothing serving) can go back to a revision that served.
    expected = {"live": {"r1"}, "failed": {"r1", "r3"}, "pending": {"r1", "r3"}, "deleting": set(), "deleted": set()}
    assert accepted == expected[status]


def test_who_may_not_roll_back_is_offered_nothing(client, carol, environments):
    deployment = Deployment.objects.create(
        environment=environments["dev"], model_name="credit-default", name="credit-default", status="failed"
    )
    revision = Revision.objects.create(deployment=deployment, number=1, model_version="1", status="superseded")
    client.force_login(carol)
    assert _offered_rollbacks(client, deployment) == set()
    assert not _service_accepts_rollback(carol, deployment, revision)
    EnvironmentGrant.objects.create(user=carol, environment=environments["dev"], role=Role.LEAD)
    assert _offered_rollbacks(client, deployment) == {"r1"}


def _nav(client) -> set[str]:
    page = client.get(reverse("deployments:deployment_list")).content.decode()
    nav = page.split('<nav class="mainnav">', 1)[1].split("</nav>", 1)[0]
    return {name for name in ("Audit", "Service accounts", "Access", "Admin") if f">{name}</a>" in nav}


@pytest.mark.parametrize(
    ("role", "superuser", "sections"),
    [
        (Role.VIEWER, False, set()),
        (Role.LEAD, False, set()),
        (Role.REVIEWER, False, {"Audit"}),
        (Role.ADMIN, False, {"Audit", "Service accounts", "Access"}),
        (Role.VIEWER, True, {"Audit", "Service accounts", "Access", "Admin"}),  # a superuser is an admin
    ],
)
def test_the_top_bar_offers_the_sections_their_pages_open_for(client, role, superuser, sections):
    user = User.objects.create(username="erin", role=role, is_superuser=superuser, is_staff=superuser)
    client.force_login(user)
    assert _nav(client) == sections
    pages = {
        "Audit": reverse("audit:event_list"),
        "Service accounts": reverse("accounts:service_account_list"),
        "Access": reverse("deployments:access"),
    }
    for name, url in pages.items():
        assert (client.get(url).status_code == 200) == (name in sections), name


def test_demoting_a_superuser_takes_the_admin_away(dave):
    root = User.objects.create(username="root", role=Role.ADMIN, is_superuser=True, is_staff=True)
    user_role_set(actor=dave, user=root, role=Role.VIEWER)
    root.refresh_from_db()
    assert (root.role, root.is_superuser, root.is_staff) == (Role.VIEWER, False, False)


def test_the_access_page_and_api_filter_people_with_one_filterset(client, dave, alice, carol, environments):
    EnvironmentGrant.objects.create(user=carol, environment=environments["dev"], role=Role.LEAD)
    client.force_login(dave)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=dave, name='t').key}")
    cases = [({"user": "car"}, {"carol"}), ({"environment": "dev"}, {"carol"}), ({"role": "admin"}, {"dave"})]
    for query, expected in cases:
        page = client.get(reverse("deployments:access"), query).content.decode()
        on_page = {name for name in ("alice", "carol", "dave") if f'data-user="{name}"' in page}
        in_api = {row["username"] for row in api.get("/api/v1/users/", query).json()["results"]}
        assert on_page == in_api == expected, query
    assert api.get("/api/v1/users/", {"role": "king"}).status_code == 400
