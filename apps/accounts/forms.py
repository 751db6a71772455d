from __future__ import annotations

from datetime import UTC, datetime, time

from django import forms

from apps.accounts.choices import Role


class TokenCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100, widget=forms.TextInput(attrs={"placeholder": "What uses it, e.g. laptop notebook"})
    )
    expires_on = forms.DateField(
        required=False,
        label="Expires on",
        help_text="Optional. The token stops working at the end of this day (UTC).",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def expires_at(self) -> datetime | None:
        day = self.cleaned_data.get("expires_on")
        if day is None:
            return None
        return datetime.combine(day, time.max, tzinfo=UTC)


class ServiceAccountCreateForm(forms.Form):
    username = forms.CharField(
        max_length=150, label="Name", widget=forms.TextInput(attrs={"placeholder": "e.g. ci-github-actions"})
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)
    description = forms.CharField(
        max_length=200, required=False, widget=forms.TextInput(attrs={"placeholder": "What runs as it"})
    )


class ServiceAccountUpdateForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
    description = forms.CharField(max_length=200, required=False)
    is_active = forms.BooleanField(required=False, label="Active")
