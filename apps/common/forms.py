"""What every interface does with a Django form the same way."""

from __future__ import annotations

from django import forms

__all__ = ["form_errors"]


def form_errors(form: forms.Form) -> str:
    """A form's errors on one line, each field named: ``"version: Enter a valid value.; file: ..."``."""
    return "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
