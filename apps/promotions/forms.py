from __future__ import annotations

from django import forms
from django.db.models import QuerySet

from apps.deployments.models import Environment
from apps.registry.versions import VERSION_MESSAGE, VERSION_PATTERN


class PromotionRequestForm(forms.Form):
    model = forms.CharField(max_length=500, widget=forms.HiddenInput)
    version = forms.RegexField(VERSION_PATTERN, widget=forms.HiddenInput, error_messages={"invalid": VERSION_MESSAGE})
    environment = forms.ModelChoiceField(
        queryset=Environment.objects.all(), to_field_name="name", empty_label=None, label="Environment"
    )

    def __init__(self, *args: object, environments: QuerySet[Environment] | None = None, **kwargs: object) -> None:
        """``environments`` narrows the choices shown (where the user may act); the service still checks."""
        super().__init__(*args, **kwargs)
        if environments is not None:
            self.fields["environment"].queryset = environments

    justification = forms.CharField(
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Why this version, e.g. AUC +0.02 on holdout"}),
    )


class DecisionForm(forms.Form):
    comment = forms.CharField(max_length=4000, required=False, widget=forms.Textarea(attrs={"rows": 2}))
