"""The promotion policies' ``webhook_url`` becomes a channel of that environment subscribed to the promotion events
(promotions 0003 then drops the field). The old webhook posted ``{"text", "event", "promotion"}``: a Teams
Workflows URL becomes a Teams channel (Adaptive Card), anything else a Slack channel (``text`` plus blocks), which
is what a receiver of the old ``text`` understands. Reversing puts the first such URL back on the policy."""

from urllib.parse import urlsplit

from django.db import migrations

PROMOTION_EVENTS = [
    "promotion.requested",
    "promotion.approved",
    "promotion.rejected",
    "promotion.cancelled",
    "promotion.executed",
]
TEAMS_HOSTS = ("logic.azure.com", "powerautomate.com", "powerplatform.com", "flow.microsoft.com")


def _kind(url):
    host = urlsplit(url).hostname or ""
    return "teams" if host.endswith(TEAMS_HOSTS) else "slack"


def forwards(apps, schema_editor):
    Policy = apps.get_model("promotions", "PromotionPolicy")
    Channel = apps.get_model("events", "Channel")
    for policy in Policy.objects.exclude(webhook_url="").select_related("environment"):
        Channel.objects.create(
            name=f"Promotions webhook ({policy.environment.name})",
            kind=_kind(policy.webhook_url),
            environment=policy.environment,
            url=policy.webhook_url,
            events=PROMOTION_EVENTS,
        )


def backwards(apps, schema_editor):
    Policy = apps.get_model("promotions", "PromotionPolicy")
    Channel = apps.get_model("events", "Channel")
    for channel in Channel.objects.filter(name__startswith="Promotions webhook (", environment__isnull=False):
        Policy.objects.filter(environment=channel.environment, webhook_url="").update(webhook_url=channel.url)


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0001_initial"),
        ("promotions", "0003_promotion_comparison"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
