"""UI <-> API parity, written down: every UI action has its API operation, and every API write its UI action.

``tests/common/test_parity.py`` enumerates the UI's URL patterns that accept POST and the OpenAPI operations
that write (POST, PUT, PATCH, DELETE), and fails when one of them is missing here, or when an entry here names a
URL or an operation that no longer exists.

HOW TO ADD AN ENTRY (adding a page that accepts POST, or an API write, needs one):
- both sides exist: add ``("<namespace>:<url name>", "<operationId>")`` to ``PAIRS`` (one line each; a UI form
  that does two API operations' work, or the reverse, is two lines);
- only a UI page can do it, for a reason (login forms, redirects to an identity provider): add
  ``"<namespace>:<url name>": "<reason>"`` to ``UI_ONLY``;
- only the API can do it, for a reason: add ``"<operationId>": "<reason>"`` to ``API_ONLY``.
A reason says why the other side must not or cannot have it. "Not done yet" is not a reason: build the other side.
The Django admin (``admin:``) is not part of the product's UI and is not listed.
"""

from __future__ import annotations

__all__ = ["PAIRS", "UI_ONLY", "API_ONLY"]

# UI action (URL name of a page that accepts POST) <-> API operation (OpenAPI operationId) doing the same,
# through the same service function.
PAIRS: list[tuple[str, str]] = [
    # deployments: apps/deployments/services.py
    ("deployments:deployment_create", "deployments_create"),
    ("deployments:deployment_rollback", "deployments_rollback"),
    ("deployments:deployment_delete", "deployments_destroy"),
    ("deployments:deployment_test", "deployments_test"),
    ("deployments:revision_promote", "revisions_promote"),
    ("deployments:revision_pause", "revisions_pause"),
    ("deployments:revision_resume", "revisions_resume"),
    ("deployments:revision_abort", "revisions_abort"),
    # access: apps/deployments/access.py
    ("deployments:access_grant_add", "grants_create"),
    ("deployments:access_grant_remove", "grants_destroy"),
    ("deployments:access_role_set", "users_access_role_set"),
    # promotions: apps/promotions/services.py
    ("promotions:promotion_create", "promotions_create"),
    ("promotions:promotion_approve", "promotions_approve"),
    ("promotions:promotion_reject", "promotions_reject"),
    ("promotions:promotion_cancel", "promotions_cancel"),
    # monitoring: apps/monitoring/services.py
    ("monitoring:drift_thresholds_set", "deployment_drift_thresholds_set"),
    ("monitoring:baseline_upload", "deployment_baseline_upload"),
    ("monitoring:baseline_from_traffic", "deployment_baseline_from_traffic"),
    # alerts: apps/alerts/services.py
    ("alerts:slo_create", "slos_create"),
    ("alerts:slo_delete", "slos_destroy"),
    ("alerts:rule_create", "alert_rules_create"),
    ("alerts:rule_delete", "alert_rules_destroy"),
    ("alerts:alert_acknowledge", "alerts_ack"),
    ("alerts:silence_create", "silences_create"),
    ("monitoring:baseline_restore", "deployment_baseline_restore"),
    # accounts: apps/accounts/services.py (revoking is POST .../revoke/ or DELETE in the API: two lines)
    ("accounts:token_list", "tokens_create"),
    ("accounts:token_revoke", "tokens_revoke"),
    ("accounts:token_revoke", "tokens_destroy"),
    ("accounts:service_account_list", "service_accounts_create"),
    ("accounts:service_account_update", "service_accounts_partial_update"),
    ("accounts:service_account_token_create", "service_accounts_tokens_create"),
    ("accounts:service_account_token_revoke", "service_accounts_tokens_revoke"),
    ("accounts:service_account_token_revoke", "service_accounts_tokens_destroy"),
    # events: apps/events/services.py
    ("events:channel_list", "channels_create"),
    ("events:channel_update", "channels_partial_update"),
    ("events:channel_delete", "channels_destroy"),
    ("events:delivery_resend", "deliveries_resend"),
]

# UI actions with no API operation, and why.
UI_ONLY: dict[str, str] = {
    "accounts:login": "A session login form; API clients authenticate with a token instead.",
    "accounts:logout": "Ends the browser session; an API token is revoked instead.",
}

# API writes with no UI action, and why.
API_ONLY: dict[str, str] = {}
