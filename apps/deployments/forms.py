from __future__ import annotations

from django import forms

from apps.deployments.models import Environment


class DeployForm(forms.Form):
    model = forms.CharField(max_length=500, widget=forms.HiddenInput)
    version = forms.RegexField(r"^\d{1,9}$", widget=forms.HiddenInput)
    environment = forms.ModelChoiceField(
        queryset=Environment.objects.all(), to_field_name="name", empty_label=None, label="Environment"
    )


class RollbackForm(forms.Form):
    revision = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
