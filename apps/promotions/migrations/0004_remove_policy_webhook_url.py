from django.db import migrations


class Migration(migrations.Migration):
    """The webhook moved to notification channels (events 0002 copied each URL into a channel)."""

    dependencies = [
        ("promotions", "0003_promotion_comparison"),
        ("events", "0002_promotion_webhooks"),
    ]

    operations = [migrations.RemoveField(model_name="promotionpolicy", name="webhook_url")]
