"""Idempotency-Key of a promotion request and of a review: a retried POST answers the same."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("promotions", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="promotionrequest",
            name="idempotency_key",
            field=models.CharField(blank=True, help_text="The requester's Idempotency-Key.", max_length=200),
        ),
        migrations.AddField(
            model_name="promotionreview",
            name="idempotency_key",
            field=models.CharField(blank=True, help_text="The reviewer's Idempotency-Key.", max_length=200),
        ),
        migrations.AddConstraint(
            model_name="promotionrequest",
            constraint=models.UniqueConstraint(
                condition=models.Q(("idempotency_key", ""), _negated=True),
                fields=("requested_by", "idempotency_key"),
                name="unique_promotion_idempotency_key_per_user",
            ),
        ),
        migrations.AddConstraint(
            model_name="promotionreview",
            constraint=models.UniqueConstraint(
                condition=models.Q(("idempotency_key", ""), _negated=True),
                fields=("reviewer", "idempotency_key"),
                name="unique_review_idempotency_key_per_user",
            ),
        ),
    ]
