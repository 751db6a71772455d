"""Celery task of alerts: one evaluation pass, every minute from beat. Safe to run twice (see services)."""

from __future__ import annotations

from celery import shared_task

from apps.alerts import services


@shared_task(name="alerts.evaluate", ignore_result=True)
def evaluate() -> dict[str, int]:
    """Evaluate every alert rule once; answers how many rules ended in each outcome."""
    report = services.evaluate_all()
    return {outcome: report.count(outcome) for outcome in sorted(set(report.outcomes.values()))}
