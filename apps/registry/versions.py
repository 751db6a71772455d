"""What a model version number looks like, for every form and serializer that takes one."""

from __future__ import annotations

from apps.common.errors import NotFoundError

__all__ = ["MAX_VERSION", "VERSION_MESSAGE", "VERSION_PATTERN", "version_number_check", "compared_versions"]

# MLflow numbers a model's versions 1, 2, 3, ...; nine digits keep them within a 32-bit integer.
VERSION_PATTERN = r"^\d{1,9}$"
VERSION_MESSAGE = "A version is a number, like 3."

# The largest version a registry can hold (MLflow stores it as a 32-bit integer); a larger number is not found.
MAX_VERSION = 2**31 - 1


def version_number_check(name: str, version: str) -> None:
    """Refuse (404, saying why) a version no registry can hold, before asking one: a database-backed registry
    fails on a number past its integer range and an MLflow server answers 500, which read as an outage."""
    if not version.isdigit():
        raise NotFoundError(f"Version {version!r} of model {name!r} was not found: versions are numbers.")
    if int(version) > MAX_VERSION:
        raise NotFoundError(
            f"Version {version[:40]} of model {name!r} was not found: versions are numbers at most {MAX_VERSION}."
        )


def compared_versions(query) -> list[str]:
    """The versions a compare page or API call asks for: ``versions`` repeated, comma-separated, or both."""
    return [part.strip() for value in query.getlist("versions") for part in value.split(",") if part.strip()]
