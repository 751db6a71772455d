"""``alert_transitioned``: sent after the transaction that moved an alert commits.

Receivers get ``alert`` (an ``Alert``), ``transition`` ("fired", "acknowledged" or "resolved") and ``actor``
(None for the evaluator). The events app subscribes to it to notify channels; nothing in this app depends on a
receiver, and a receiver's failure is logged, never raised into the evaluator or the acknowledging request.
"""

from __future__ import annotations

from django.dispatch import Signal

alert_transitioned = Signal()
