from __future__ import annotations

from django import forms


class DriftThresholdsForm(forms.Form):
    psi_warn = forms.FloatField(min_value=0, max_value=10, label="Warn at PSI")
    psi_alert = forms.FloatField(min_value=0, max_value=10, label="Alert at PSI")


class BaselineUploadForm(forms.Form):
    file = forms.FileField(help_text="CSV with a header row, or Parquet; one column per input feature.")
