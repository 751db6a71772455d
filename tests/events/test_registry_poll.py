"""The registry poller against a real MLflow registry: the first poll is silent, later ones publish what changed."""

from __future__ import annotations

import pytest

from apps.events import catalogue
from apps.events.models import Channel, Event, RegistryWatermark
from apps.events.registry_poll import registry_poll
from tests.promotions.helpers import MODEL

pytestmark = pytest.mark.django_db


@pytest.fixture
def channel(db) -> Channel:
    return Channel.objects.create(
        name="registry",
        kind="slack",
        url="https://hooks.example.test/x",
        events=[catalogue.REGISTRY_VERSION_CREATED, catalogue.REGISTRY_ALIAS_MOVED],
    )


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr("apps.events.tasks.deliver.apply_async", lambda **_: None)


def _poll(capture) -> list[tuple[str, dict]]:
    before = set(Event.objects.values_list("pk", flat=True))
    with capture(execute=True):
        registry_poll()
    return [(e.name, e.payload) for e in Event.objects.exclude(pk__in=before).order_by("id")]


def test_the_first_poll_remembers_the_registry_without_announcing_it(
    registry, channel, django_capture_on_commit_callbacks
):
    assert _poll(django_capture_on_commit_callbacks) == []
    marks = {m.model_name: m for m in RegistryWatermark.objects.exclude(model_name="")}
    assert MODEL in marks and marks[MODEL].latest_version >= 2
    assert _poll(django_capture_on_commit_callbacks) == [], "nothing changed"


def test_a_new_version_and_a_moved_alias_are_published_once(
    registry, mlflow_client, channel, django_capture_on_commit_callbacks
):
    _poll(django_capture_on_commit_callbacks)
    latest = RegistryWatermark.objects.get(model_name=MODEL).latest_version
    source = mlflow_client.get_model_version(MODEL, "1")
    new = str(mlflow_client.create_model_version(MODEL, source.source, source.run_id).version)
    assert int(new) == latest + 1
    before = mlflow_client.get_registered_model(MODEL).aliases.get("staging")
    before = str(before) if before is not None else None
    mlflow_client.set_registered_model_alias(MODEL, "staging", new)

    events = _poll(django_capture_on_commit_callbacks)
    assert [name for name, _ in events] == ["registry.version_created", "registry.alias_moved"]
    version, alias = events[0][1], events[1][1]
    assert (version["model"], version["version"]) == (MODEL, new)
    assert version["url"] == f"/models/{MODEL}/versions/{new}/"
    assert (alias["alias"], alias["version"], alias["previous_version"]) == ("staging", new, before)
    assert _poll(django_capture_on_commit_callbacks) == [], "seen once, published once"

    mlflow_client.delete_registered_model_alias(MODEL, "staging")
    [(name, removed)] = _poll(django_capture_on_commit_callbacks)
    assert (name, removed["version"], removed["previous_version"]) == ("registry.alias_moved", None, new)
    assert removed["summary"] == f"{MODEL}@staging was removed (was version {new})."


def test_an_unreachable_registry_is_skipped(settings, channel, django_capture_on_commit_callbacks):
    settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = "http://127.0.0.1:9"  # nothing listens
    settings.MLFLOW_HTTP_RETRIES = 0
    assert registry_poll() == 0
    assert not RegistryWatermark.objects.exists(), "a failed poll is not the first poll"
