from django.db import models


class SloKind(models.TextChoices):
    AVAILABILITY = "availability", "Availability (share of requests not answered 5xx)"
    LATENCY = "latency", "Latency (share of requests under a threshold)"


class Metric(models.TextChoices):
    ERROR_RATE = "error_rate", "Error rate (5xx share)"
    LATENCY_P99 = "latency_p99", "Latency p99 (ms)"
    DRIFT = "drift", "Input drift (any feature)"
    PREDICTION_DRIFT = "prediction_drift", "Prediction drift"
    BURN_RATE = "burn_rate", "SLO burn rate (multi-window)"


class DriftStatistic(models.TextChoices):
    PSI = "psi", "PSI"
    JS = "js", "Jensen-Shannon distance"


class AlertState(models.TextChoices):
    FIRING = "firing", "Firing"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class Severity(models.TextChoices):
    PAGE = "page", "Page"
    TICKET = "ticket", "Ticket"


OPEN_STATES = (AlertState.FIRING, AlertState.ACKNOWLEDGED)
