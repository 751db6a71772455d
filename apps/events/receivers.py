"""What other apps announce with signals, published to the channels: an alert that fired, was acknowledged or
resolved (``apps.alerts.signals.alert_transitioned``)."""

from __future__ import annotations

from django.dispatch import receiver
from django.urls import reverse

from apps.alerts.signals import alert_transitioned
from apps.events import catalogue
from apps.events.services import publish

ALERT_EVENTS = {
    "fired": catalogue.ALERT_FIRED,
    "acknowledged": catalogue.ALERT_ACKNOWLEDGED,
    "resolved": catalogue.ALERT_RESOLVED,
}


@receiver(alert_transitioned, dispatch_uid="events.alert_transitioned")
def alert_published(sender, *, alert, transition: str, actor=None, **kwargs) -> None:
    rule, deployment = alert.rule, alert.deployment
    publish(
        ALERT_EVENTS[transition],
        {
            "summary": alert.summary,
            "alert": alert.pk,
            "rule": rule.pk,
            "deployment": deployment.pk,
            "model": deployment.model_name,
            "metric": rule.metric,
            "severity": alert.severity,
            "value": alert.value,
            "threshold": alert.threshold,
            "state": alert.state,
            "by": actor.username if actor is not None else "",
            "url": reverse("alerts:alert_detail", kwargs={"pk": alert.pk}),
        },
        environment=deployment.environment_id,
    )
