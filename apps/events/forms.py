from __future__ import annotations

from django import forms

from apps.events.catalogue import EVENT_CHOICES
from apps.events.choices import ChannelKind


def _recipients(value: str) -> list[str]:
    return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]


class ChannelCreateForm(forms.Form):
    """Secrets are write-only here too: the URL and secret fields never render a stored value."""

    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=ChannelKind.choices)
    environment = forms.ChoiceField(required=False, help_text="Empty: a global channel.")
    url = forms.CharField(max_length=2000, required=False, widget=forms.PasswordInput(render_value=False))
    secret = forms.CharField(max_length=200, required=False, widget=forms.PasswordInput(render_value=False))
    recipients = forms.CharField(max_length=2000, required=False, help_text="Email addresses, comma-separated.")
    events = forms.MultipleChoiceField(choices=EVENT_CHOICES, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, environments: list[str], allow_global: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", "All environments (global)")] if allow_global else []
        self.fields["environment"].choices = choices + [(name, name) for name in environments]

    def service_kwargs(self) -> dict[str, object]:
        data = dict(self.cleaned_data)
        data["environment"] = data["environment"] or None
        data["recipients"] = _recipients(data["recipients"])
        return data


class ChannelUpdateForm(forms.Form):
    """Blank URL or secret: keep the stored one."""

    enabled = forms.BooleanField(required=False)
    events = forms.MultipleChoiceField(choices=EVENT_CHOICES, widget=forms.CheckboxSelectMultiple)
    url = forms.CharField(max_length=2000, required=False, widget=forms.PasswordInput(render_value=False))
    secret = forms.CharField(max_length=200, required=False, widget=forms.PasswordInput(render_value=False))
    recipients = forms.CharField(max_length=2000, required=False)

    def service_kwargs(self) -> dict[str, object]:
        data = {"enabled": self.cleaned_data["enabled"], "events": self.cleaned_data["events"]}
        for key in ("url", "secret"):
            if self.cleaned_data[key]:
                data[key] = self.cleaned_data[key]
        if self.cleaned_data["recipients"]:
            data["recipients"] = _recipients(self.cleaned_data["recipients"])
        return data
