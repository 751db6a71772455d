from __future__ import annotations

from django import forms

from apps.registry.versions import VERSION_MESSAGE, VERSION_PATTERN


class DriftThresholdsForm(forms.Form):
    psi_warn = forms.FloatField(min_value=0, max_value=10, label="Warn at PSI")
    psi_alert = forms.FloatField(min_value=0, max_value=10, label="Alert at PSI")


class BaselineUploadForm(forms.Form):
    file = forms.FileField(help_text="CSV with a header row, or Parquet; one column per input feature.")
    version = forms.RegexField(
        VERSION_PATTERN,
        required=False,
        label="Model version",
        error_messages={"invalid": VERSION_MESSAGE},
        help_text="By default the version this deployment serves.",
    )


class TrafficBaselineForm(forms.Form):
    """The window of the deployment's own traffic to take as the baseline: a preset ending now, or custom."""

    window = forms.ChoiceField(
        choices=[("1h", "Last hour"), ("24h", "Last day"), ("7d", "Last week"), ("custom", "From … to …")],
        initial="24h",
        label="Traffic of",
    )
    start = forms.CharField(
        required=False, label="From (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    end = forms.CharField(
        required=False, label="To (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
