from __future__ import annotations

from django import forms

from apps.deployments.models import Environment


class PromotionRequestForm(forms.Form):
    model = forms.CharField(max_length=500, widget=forms.HiddenInput)
    version = forms.RegexField(r"^\d{1,9}$", widget=forms.HiddenInput)
    environment = forms.ModelChoiceField(
        queryset=Environment.objects.filter(gated=True), to_field_name="name", empty_label=None, label="Environment"
    )
    justification = forms.CharField(
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Why this version, e.g. AUC +0.02 on holdout"}),
    )


class DecisionForm(forms.Form):
    comment = forms.CharField(max_length=4000, required=False, widget=forms.Textarea(attrs={"rows": 2}))
