"""The promotion policies' webhook URLs become channels (events 0002, then promotions drops the field)."""

from __future__ import annotations

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def _node(graph, app: str, suffix: str) -> tuple[str, str]:
    # found by name, so a migration renumbered on merge is still the one tested
    return next(key for key in graph.nodes if key[0] == app and key[1].endswith(suffix))


def test_each_policy_webhook_becomes_a_promotion_channel_of_its_environment(migrator):
    executor = migrator
    graph = executor.loader.graph
    copy = _node(graph, "events", "promotion_webhooks")
    drop = _node(graph, "promotions", "remove_policy_webhook_url")
    # and deployments as it was then: rows made in the old state must fit the old tables
    before = sorted(parent.key for parent in graph.node_map[copy].parents)
    before.append(_node(graph, "deployments", "revision_publish_failed"))
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    Environment, Policy = old.get_model("deployments", "Environment"), old.get_model("promotions", "PromotionPolicy")
    for name, url in [
        ("production", "https://prod-00.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=x"),
        ("staging", "https://hooks.slack.com/services/T0/B0/secret"),
        ("dev", ""),
    ]:
        Policy.objects.create(environment=Environment.objects.create(name=name), webhook_url=url)

    executor = MigrationExecutor(connection)
    executor.migrate([drop])
    new = executor.loader.project_state([drop]).apps
    channels = new.get_model("events", "Channel").objects.order_by("name")
    assert [(c.name, c.kind, c.environment.name) for c in channels] == [
        ("Promotions webhook (production)", "teams", "production"),
        ("Promotions webhook (staging)", "slack", "staging"),
    ]
    assert channels[1].url == "https://hooks.slack.com/services/T0/B0/secret"
    assert channels[0].events == [
        "promotion.requested",
        "promotion.approved",
        "promotion.rejected",
        "promotion.cancelled",
        "promotion.executed",
    ]
    assert "webhook_url" not in {f.name for f in new.get_model("promotions", "PromotionPolicy")._meta.get_fields()}
