from __future__ import annotations

from django import forms
from django.db.models import QuerySet

from apps.accounts.choices import Role
from apps.accounts.models import User
from apps.deployments.choices import InputValidation
from apps.deployments.models import Environment
from apps.deployments.naming import deployment_name_error
from apps.registry.versions import VERSION_MESSAGE, VERSION_PATTERN


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
