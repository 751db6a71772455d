"""Two reviewers approving at the same moment, on PostgreSQL with one connection per thread: the promotion
executes exactly once (one revision, one alias move, one execute event)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from apps.accounts.models import AuditEvent
from apps.common.errors import ConflictError
from apps.deployments import tasks as deployment_tasks
from apps.deployments.models import Revision
from apps.promotions import services
from apps.promotions.choices import PromotionStatus
from apps.promotions.models import PromotionPolicy, PromotionRequest
from tests.promotions.helpers import MODEL

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql():
    assert connection.vendor == "postgresql", "real row locks need PostgreSQL: run the suite with `make test`"


@pytest.fixture
def queued(monkeypatch) -> list[dict]:
    """Rollouts queued on commit, recorded instead of sent to a broker no worker reads in this test."""
    sent: list[dict] = []
    monkeypatch.setattr(deployment_tasks.revision_run, "apply_async", lambda kwargs, **_: sent.append(kwargs))
    return sent


def _race(reviewers, promotion: PromotionRequest) -> list[object]:
    barrier = threading.Barrier(len(reviewers))
    results: list[object] = [None] * len(reviewers)

    def approve(i: int, reviewer) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = services.promotion_approve(actor=reviewer, promotion=promotion.pk)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(i, r)) for i, r in enumerate(reviewers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def _executed_once(promotion: PromotionRequest, mlflow_client, queued: list[dict]) -> None:
    promotion.refresh_from_db()
    assert promotion.status == PromotionStatus.EXECUTED
    assert Revision.objects.filter(deployment__environment__name="production").count() == 1
    assert AuditEvent.objects.filter(action="promotion.execute").count() == 1
    assert queued == [{"revision_id": promotion.executed_revision_id}]
    assert str(mlflow_client.get_registered_model(MODEL).aliases["production"]) == "2"


@pytest.mark.parametrize("attempt", range(3))
def test_two_reviewers_racing_on_a_one_approval_policy_execute_it_once(
    attempt, alice, bob, erin, environments, promo_registry, mlflow_client, queued
):
    promotion = services.promotion_request(
        actor=alice, model_name=MODEL, version="2", environment="production", justification="race"
    )
    results = _race([bob, erin], promotion)
    _executed_once(promotion, mlflow_client, queued)
    executed = [r for r in results if isinstance(r, PromotionRequest)]
    refused = [r for r in results if isinstance(r, ConflictError)]
    assert len(executed) == 1 and len(refused) == 1, results
    assert refused[0].code == "not_pending"
    assert promotion.reviews.count() == 1, "the loser's approval was refused, not recorded"


@pytest.mark.parametrize("attempt", range(3))
def test_the_two_approvals_of_a_two_approval_policy_arriving_together_execute_it_once(
    attempt, alice, bob, erin, environments, promo_registry, mlflow_client, queued
):
    PromotionPolicy.objects.create(environment=environments["production"], approvals_required=2)
    promotion = services.promotion_request(
        actor=alice, model_name=MODEL, version="2", environment="production", justification="race"
    )
    results = _race([bob, erin], promotion)
    assert all(isinstance(r, PromotionRequest) for r in results), results
    assert sorted(r.status for r in results) == [PromotionStatus.EXECUTED, PromotionStatus.PENDING]
    _executed_once(promotion, mlflow_client, queued)
    assert promotion.reviews.count() == 2


def test_the_same_reviewer_double_clicking_executes_once(
    alice, bob, environments, promo_registry, mlflow_client, queued
):
    promotion = services.promotion_request(
        actor=alice, model_name=MODEL, version="2", environment="production", justification="double click"
    )
    results = _race([bob, bob], promotion)
    assert all(isinstance(r, PromotionRequest) for r in results), results
    _executed_once(promotion, mlflow_client, queued)
    assert promotion.reviews.count() == 1
