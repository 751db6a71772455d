"""The events a channel can subscribe to: the one list, for the API, the pages, the docs and ``publish``.

A name is ``<area>.<what happened>``. Publishing a name that is not here is a programming error (``publish``
raises), so a typo cannot silently notify nobody. The payload of each is documented in docs/events.md.
"""

from __future__ import annotations

__all__ = [
    "ALERT_FIRED",
    "ALERT_ACKNOWLEDGED",
    "ALERT_RESOLVED",
    "REVISION_STARTED",
    "REVISION_LIVE",
    "REVISION_FAILED",
    "REVISION_ROLLED_BACK",
    "PROMOTION_REQUESTED",
    "PROMOTION_APPROVED",
    "PROMOTION_REJECTED",
    "PROMOTION_CANCELLED",
    "PROMOTION_EXECUTED",
    "REGISTRY_VERSION_CREATED",
    "REGISTRY_ALIAS_MOVED",
    "EVENTS",
    "EVENT_CHOICES",
    "PROMOTION_EVENTS",
]

ALERT_FIRED = "alert.fired"
ALERT_ACKNOWLEDGED = "alert.acknowledged"
ALERT_RESOLVED = "alert.resolved"
REVISION_STARTED = "deployment.revision_started"
REVISION_LIVE = "deployment.revision_live"
REVISION_FAILED = "deployment.revision_failed"
REVISION_ROLLED_BACK = "deployment.revision_rolled_back"
PROMOTION_REQUESTED = "promotion.requested"
PROMOTION_APPROVED = "promotion.approved"
PROMOTION_REJECTED = "promotion.rejected"
PROMOTION_CANCELLED = "promotion.cancelled"
PROMOTION_EXECUTED = "promotion.executed"
REGISTRY_VERSION_CREATED = "registry.version_created"
REGISTRY_ALIAS_MOVED = "registry.alias_moved"

# name -> what a person reads in a channel's form and in the card's title
EVENTS: dict[str, str] = {
    ALERT_FIRED: "Alert fired",
    ALERT_ACKNOWLEDGED: "Alert acknowledged",
    ALERT_RESOLVED: "Alert resolved",
    REVISION_STARTED: "Deployment revision started",
    REVISION_LIVE: "Deployment revision live",
    REVISION_FAILED: "Deployment revision failed",
    REVISION_ROLLED_BACK: "Deployment revision rolled back",
    PROMOTION_REQUESTED: "Promotion requested",
    PROMOTION_APPROVED: "Promotion approved",
    PROMOTION_REJECTED: "Promotion rejected",
    PROMOTION_CANCELLED: "Promotion cancelled",
    PROMOTION_EXECUTED: "Promotion executed",
    REGISTRY_VERSION_CREATED: "Registry: model version created",
    REGISTRY_ALIAS_MOVED: "Registry: alias moved",
}
EVENT_CHOICES = list(EVENTS.items())
PROMOTION_EVENTS = [name for name in EVENTS if name.startswith("promotion.")]
