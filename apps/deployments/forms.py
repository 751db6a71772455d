from __future__ import annotations

import re

from django import forms
from django.db.models import QuerySet

from apps.accounts.choices import Role
from apps.accounts.models import User
from apps.deployments.choices import InputValidation
from apps.deployments.models import Environment
from apps.deployments.naming import deployment_name_error
from apps.registry.versions import VERSION_MESSAGE, VERSION_PATTERN

STRATEGY_CHOICES = [
    ("", "environment default"),
    ("all_at_once", "all at once"),
    ("canary", "canary"),
    ("blue_green", "blue-green"),
    ("shadow", "shadow"),
]
# The form's fields that are keys of the strategy (rollouts/strategy.py), as the API spells them.
STRATEGY_FIELDS = ("steps", "step_seconds", "max_error_rate", "max_p99_ms", "min_requests")
_STEPS = re.compile(r"^\s*\d+(\s*[,\s]\s*\d+)*\s*$")


class DeployForm(forms.Form):
    model = forms.CharField(max_length=500, widget=forms.HiddenInput)
    version = forms.RegexField(VERSION_PATTERN, widget=forms.HiddenInput, error_messages={"invalid": VERSION_MESSAGE})
    environment = forms.ModelChoiceField(
        queryset=Environment.objects.all(), to_field_name="name", empty_label=None, label="Environment"
    )
    name = forms.CharField(
        required=False, max_length=200, label="Name", help_text="Optional; derived from the model name when empty."
    )

    input_validation = forms.ChoiceField(
        choices=[("", "input checks: keep (MLflow's for a new deployment)"), *InputValidation.choices],
        required=False,
        label="Input checks",
    )

    strategy = forms.ChoiceField(choices=STRATEGY_CHOICES, required=False, label="Rollout")
    steps = forms.CharField(
        required=False,
        max_length=100,
        label="Canary steps (%)",
        help_text="Percent of traffic on the new revision at each step, e.g. 20, 50 (100 comes last).",
        widget=forms.TextInput(attrs={"placeholder": "20, 50", "size": 10}),
    )
    step_seconds = forms.IntegerField(
        required=False, min_value=1, label="Seconds per step", widget=forms.NumberInput(attrs={"placeholder": "60"})
    )
    max_error_rate = forms.FloatField(
        required=False,
        min_value=0,
        max_value=100,
        label="Max error rate (%)",
        widget=forms.NumberInput(attrs={"placeholder": "1", "step": "any"}),
    )
    max_p99_ms = forms.FloatField(
        required=False,
        min_value=0.001,
        label="Max p99 (ms)",
        widget=forms.NumberInput(attrs={"placeholder": "500", "step": "any"}),
    )
    min_requests = forms.IntegerField(
        required=False, min_value=0, label="Min requests", widget=forms.NumberInput(attrs={"placeholder": "50"})
    )

    def clean_steps(self) -> list[int] | None:
        text = self.cleaned_data["steps"].strip()
        if not text:
            return None
        if not _STEPS.match(text):
            raise forms.ValidationError("Write whole percents separated by commas, e.g. 20, 50.")
        return [int(part) for part in re.split(r"[,\s]+", text) if part]

    def strategy_request(self) -> dict | None:
        """The strategy as ``deployment_create`` takes it (the API's ``strategy`` object): the type chosen and the
        keys filled in, the error rate as a share; None when nothing was chosen (the environment's default)."""
        data = self.cleaned_data
        request = {key: data[key] for key in STRATEGY_FIELDS if data.get(key) is not None}
        if "max_error_rate" in request:
            request["max_error_rate"] = round(request["max_error_rate"] / 100, 10)
        if data.get("strategy"):
            request["type"] = data["strategy"]
        return request or None

    @classmethod
    def again(cls, draft: dict | None, **kwargs: object) -> DeployForm:
        """The version page's form: blank, or showing a refused deploy's input and errors (``drafts.py``)."""
        if draft is None:
            return cls(**kwargs)
        form = cls(draft["data"], **kwargs)
        form.is_valid()
        for field, messages in draft["errors"].items():
            for message in messages:
                if message not in form.errors.get(field, []):
                    form.add_error(field if field in form.fields else None, message)
        return form

    def add_strategy_error(self, message: str) -> None:
        """A refused strategy (``invalid_strategy`` names the key, e.g. "strategy.steps must ..."), shown at the
        field it names, else at the strategy choice."""
        match = re.match(r"strategy\.(\w+)", message)
        field = match.group(1) if match and match.group(1) in STRATEGY_FIELDS else "strategy"
        self.add_error(field, message)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if name and (problem := deployment_name_error(name)):
            raise forms.ValidationError(problem)
        return name

    def __init__(self, *args: object, environments: QuerySet[Environment] | None = None, **kwargs: object) -> None:
        """``environments`` narrows the choices shown (where the user may act); the service still checks."""
        super().__init__(*args, **kwargs)
        if environments is not None:
            self.fields["environment"].queryset = environments


class RollbackForm(forms.Form):
    revision = forms.IntegerField(min_value=1, widget=forms.HiddenInput)


class GrantForm(forms.Form):
    user = forms.ModelChoiceField(queryset=User.objects.filter(is_active=True), to_field_name="username")
    environment = forms.ModelChoiceField(queryset=Environment.objects.all(), to_field_name="name", empty_label=None)
    role = forms.ChoiceField(choices=Role.choices)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)

    @classmethod
    def of(cls, user: User) -> RoleForm:
        """The access page's form for ``user``'s global role, showing the one they hold."""
        form = cls(initial={"role": user.role}, auto_id=False)
        form.fields["role"].widget.attrs["aria-label"] = f"Global role of {user.username}"
        return form
