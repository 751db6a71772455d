"""What every interface does with a Django form the same way."""

from __future__ import annotations

from django import forms
from django.forms.fields import InvalidJSONInput

from apps.common import json_input

__all__ = ["JSONField", "form_errors"]


def form_errors(form: forms.Form) -> str:
    """A form's errors on one line, each field named: ``"version: Enter a valid value.; file: ..."``."""
    return "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())


class JSONField(forms.JSONField):
    """Django's JSON form field with the nesting limit of ``json_input``: deeper input is a form error naming the
    limit, not a ``RecursionError`` (500)."""

    def to_python(self, value):
        if isinstance(value, str) and value not in self.empty_values and not self.disabled:
            try:
                json_input.loads(value, cls=self.decoder)
            except json_input.JSONTooDeep as exc:
                raise forms.ValidationError(str(exc), code="too_deep") from None
            except ValueError:
                pass  # Django's own message for malformed JSON
        return super().to_python(value)

    def bound_data(self, data, initial):
        if isinstance(data, str) and not self.disabled:
            try:
                json_input.loads(data, cls=self.decoder)
            except json_input.JSONTooDeep:
                return InvalidJSONInput(data)
            except ValueError:
                pass
        return super().bound_data(data, initial)
