"""The two backend families of the deploy pipeline, image builders and deployment targets: which
implementations exist, how one is loaded with its options, and the errors they raise.

Each family has a small interface (``builders/base.py``, ``targets/base.py``); a revision's configuration
(copied from its environment) names the implementation, and ``settings.IMAGE_BUILDER_OPTIONS`` /
``settings.DEPLOY_TARGET_OPTIONS`` hold each implementation's keyword options. Implementations are named
by dotted path and imported on first use, so heavy SDKs load only in the worker that needs them.

A backend raises ``TransientBackendError`` when trying again later may help (a timeout, a 5xx, a
throttled API) and ``PermanentBackendError`` when it will not (bad credentials, an image that cannot
be pulled, a crash-looping container). Messages are written for the person reading the revision page.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.conf import settings

__all__ = [
    "BackendError",
    "TransientBackendError",
    "PermanentBackendError",
    "BackendFamily",
    "IMAGE_BUILDERS",
    "DEPLOY_TARGETS",
    "load_backend",
    "configured_backend",
    "truthy",
    "Log",
]

Log = Callable[[str], None]  # where a backend reports progress: one line for the step's log


class BackendError(Exception):
    permanent = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransientBackendError(BackendError):
    permanent = False


class PermanentBackendError(BackendError):
    permanent = True


@dataclass(frozen=True)
class BackendFamily:
    label: str  # for messages: "image builder"
    implementations: dict[str, str]  # name -> dotted path of the class
    options_setting: str  # the setting mapping each name to its keyword options
    # Former names still found in stored configurations (a revision copies its environment's), mapped to the
    # implementation that replaced them: a revision queued before an upgrade runs with the new one.
    aliases: dict[str, str] = dataclasses.field(default_factory=dict)

    def resolve(self, name: str) -> str:
        return self.aliases.get(name, name)


IMAGE_BUILDERS = BackendFamily(
    "image builder",
    {
        "local": "apps.deployments.builders.local.LocalImageBuilder",
        "acr": "apps.deployments.builders.acr.AcrImageBuilder",
        "buildah": "apps.deployments.builders.buildah.BuildahImageBuilder",
    },
    "IMAGE_BUILDER_OPTIONS",
    aliases={"kaniko": "buildah"},  # kaniko's upstream was archived in June 2025 (migration 0004)
)
DEPLOY_TARGETS = BackendFamily(
    "deployment target",
    {
        "local": "apps.deployments.targets.local_process.LocalProcessTarget",
        "kubernetes": "apps.deployments.targets.kubernetes.KubernetesTarget",
    },
    "DEPLOY_TARGET_OPTIONS",
)


@functools.cache
def _class(dotted: str) -> type:
    module, _, name = dotted.rpartition(".")
    return getattr(import_module(module), name)


def load_backend(family: BackendFamily, name: str, **options: Any) -> Any:
    """Instantiate the ``family`` implementation registered under ``name`` (or a former name of it) with exactly
    these options."""
    name = family.resolve(name)
    if name not in family.implementations:
        expected = ", ".join(sorted(family.implementations))
        raise PermanentBackendError(f"Unknown {family.label} {name!r}; expected one of {expected}.")
    return _class(family.implementations[name])(**options)


def configured_backend(family: BackendFamily, name: str) -> Any:
    """Instantiate ``name`` with the options the settings give it (``family.options_setting``)."""
    name = family.resolve(name)
    options = getattr(settings, family.options_setting, {}).get(name, {})
    return load_backend(family, name, **options)


def truthy(value: Any) -> bool:
    """A boolean backend option that may come as text: only "", "0", "false", "no" and "off" are false."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)
