from django.db import models


class Role(models.TextChoices):
    """What a person may do. Each role can do everything the roles above it can."""

    VIEWER = "viewer", "Viewer"  # reads everything
    LEAD = "lead", "ML lead"  # deploys, requests promotions
    REVIEWER = "reviewer", "Reviewer"  # approves promotions
    ADMIN = "admin", "Admin"  # manages environments and users


class AuditSource(models.TextChoices):
    UI = "ui", "Web UI"
    API = "api", "REST API"
    SYSTEM = "system", "System"


class AuditVia(models.TextChoices):
    """The credential a write came through (``""`` for the system: Celery tasks, management commands)."""

    SESSION = "session", "Session"
    TOKEN = "token", "API token"
