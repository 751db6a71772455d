from __future__ import annotations

from datetime import UTC, timedelta

from django import forms
from django.utils import timezone

from apps.alerts.choices import DriftStatistic, Metric, SloKind


class SloForm(forms.Form):
    kind = forms.ChoiceField(choices=SloKind.choices)
    target = forms.FloatField(min_value=0.5, max_value=0.99999, initial=0.995, help_text="0.995 is 99.5%.")
    period_days = forms.IntegerField(min_value=1, max_value=90, initial=28, label="Period (days)")
    latency_threshold_ms = forms.FloatField(min_value=0, required=False, label="Latency threshold (ms)")
    min_requests = forms.IntegerField(min_value=0, initial=0, required=False, label="Minimum requests (0: default)")


class AlertRuleForm(forms.Form):
    metric = forms.ChoiceField(choices=[c for c in Metric.choices if c[0] != Metric.BURN_RATE])
    threshold = forms.FloatField()
    window_seconds = forms.IntegerField(min_value=60, max_value=31 * 86400, initial=300, label="Window (s)")
    for_seconds = forms.IntegerField(min_value=0, max_value=86400, initial=0, label="Held for (s)")
    statistic = forms.ChoiceField(choices=DriftStatistic.choices, initial=DriftStatistic.PSI, label="Drift statistic")
    min_requests = forms.IntegerField(min_value=0, initial=0, required=False, label="Minimum requests (0: default)")
    min_rows = forms.IntegerField(min_value=0, initial=0, required=False, label="Minimum sampled rows (0: default)")


class SilenceForm(forms.Form):
    """Silence a rule or a whole deployment for some hours."""

    deployment = forms.IntegerField(required=False, widget=forms.HiddenInput)
    rule = forms.IntegerField(required=False, widget=forms.HiddenInput)
    hours = forms.FloatField(min_value=0.05, max_value=24 * 30, initial=2, label="For (hours)")
    reason = forms.CharField(max_length=1000)

    def until(self):
        return timezone.now().astimezone(UTC) + timedelta(hours=self.cleaned_data["hours"])


class AcknowledgeForm(forms.Form):
    note = forms.CharField(max_length=1000, required=False)
