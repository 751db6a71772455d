"""The written UI <-> API mapping (apps/common/parity.py) matches what the URLconf and the OpenAPI schema hold."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from apps.common.parity import API_ONLY, PAIRS, UI_ONLY
from tests.api_schema import raw_schema

WRITES = ("post", "put", "patch", "delete")
NOT_UI = ("admin", "api-")  # the Django admin, and the API's own namespaces (*-api)


def _named_patterns(resolvers: list, namespace: str = "") -> Iterator[tuple[str, URLPattern]]:
    for entry in resolvers:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}:{entry.namespace}".strip(":") if entry.namespace else namespace
            yield from _named_patterns(entry.url_patterns, inner)
        elif isinstance(entry, URLPattern) and entry.name:
            yield (f"{namespace}:{entry.name}".strip(":"), entry)


def _probe_url(name: str, pattern: URLPattern) -> str:
    """A URL of the pattern with ids and names that do not exist, so that a POST to it changes nothing."""
    regex = pattern.pattern.regex
    kwargs = {
        group: "999999" if re.search(rf"<int:{group}>", str(pattern.pattern)) else "no-such-thing"
        for group in regex.groupindex
    }
    return reverse(name, kwargs=kwargs)


def _ui_names() -> dict[str, URLPattern]:
    return {
        name: pattern
        for name, pattern in _named_patterns(get_resolver().url_patterns)
        if not any(name.startswith(prefix) or "-api:" in name for prefix in NOT_UI) and not name.startswith("api-")
    }


@pytest.fixture
def ui_post_actions(client, dave) -> set[str]:
    """URL names whose view accepts POST: a POST (as an admin, to ids that do not exist) is not answered 405."""
    client.force_login(dave)
    accepting = set()
    for name, pattern in _ui_names().items():
        response = client.post(_probe_url(name, pattern), {})
        if response.status_code != 405:
            accepting.add(name)
        client.force_login(dave)  # a probe of logout ends the session
    return accepting


def _api_write_operations() -> set[str]:
    return {
        operation["operationId"]
        for item in raw_schema()["paths"].values()
        for method, operation in item.items()
        if method in WRITES
    }


def test_every_ui_action_is_mapped_to_an_api_operation_or_says_why_not(ui_post_actions):
    mapped = {ui for ui, _ in PAIRS} | set(UI_ONLY)
    missing = sorted(ui_post_actions - mapped)
    assert not missing, f"UI actions without an entry in apps/common/parity.py (PAIRS or UI_ONLY): {missing}"
    gone = sorted(mapped - ui_post_actions)
    assert not gone, f"apps/common/parity.py names UI actions that no longer accept POST or exist: {gone}"


def test_every_api_write_is_mapped_to_a_ui_action_or_says_why_not():
    writes = _api_write_operations()
    mapped = {api for _, api in PAIRS} | set(API_ONLY)
    missing = sorted(writes - mapped)
    assert not missing, f"API writes without an entry in apps/common/parity.py (PAIRS or API_ONLY): {missing}"
    gone = sorted(mapped - writes)
    assert not gone, f"apps/common/parity.py names operations the OpenAPI schema no longer has: {gone}"


def test_the_mapping_is_consistent():
    assert not set(UI_ONLY) & {ui for ui, _ in PAIRS}, "a UI action cannot be both paired and UI-only"
    assert not set(API_ONLY) & {api for _, api in PAIRS}, "an API operation cannot be both paired and API-only"
    assert all(reason.strip() for reason in [*UI_ONLY.values(), *API_ONLY.values()]), "every exception says why"
    assert len(PAIRS) == len(set(PAIRS)), "duplicate pairs"


def test_the_probe_tells_a_get_only_page_from_an_action(client, dave):
    """Guards the probe itself: the deployments list is GET-only, deploying is a POST."""
    client.force_login(dave)
    assert client.post(reverse("deployments:deployment_list")).status_code == 405
    assert client.post(reverse("deployments:deployment_create"), {}).status_code != 405
