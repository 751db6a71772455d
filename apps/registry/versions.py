"""What a model version number looks like, for every form and serializer that takes one."""

from __future__ import annotations

__all__ = ["VERSION_PATTERN", "VERSION_MESSAGE"]

# MLflow numbers a model's versions 1, 2, 3, ...; nine digits keep them within a 32-bit integer.
VERSION_PATTERN = r"^\d{1,9}$"
VERSION_MESSAGE = "A version is a number, like 3."
