"""How scoring images are built and pushed. The environment's ``image_builder`` picks the implementation
(``backends.IMAGE_BUILDERS``), with its options from ``settings.IMAGE_BUILDER_OPTIONS``.

The image tag is the build context's content digest, so ``exists`` before ``build`` makes a rebuild of
the same model version a no-op, and building twice pushes the same tag twice (harmless).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps.deployments.backends import IMAGE_BUILDERS, Log, configured_backend, load_backend

__all__ = ["BuildRequest", "ImageBuilder", "get_builder", "configured_builder"]


@dataclass(frozen=True)
class BuildRequest:
    context_dir: Path  # from scoring.build_context.assemble_build_context: Dockerfile at its root
    image: str  # full reference to produce: <registry>/<repository>:<tag>
    build_args: dict[str, str]
    labels: dict[str, str]


class ImageBuilder(abc.ABC):
    name: str = ""

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abc.abstractmethod
    def exists(self, image: str) -> bool:
        """Whether the registry already has ``image`` (then nothing is built)."""

    @abc.abstractmethod
    def build_and_push(self, request: BuildRequest, log: Log) -> str:
        """Build ``request.image`` from the context, push it, return its registry digest (sha256:...)."""


def get_builder(name: str, **options: Any) -> ImageBuilder:
    """The builder ``name`` with exactly these options."""
    return load_backend(IMAGE_BUILDERS, name, **options)


def configured_builder(name: str) -> ImageBuilder:
    """The builder ``name`` with its options from the settings."""
    return configured_backend(IMAGE_BUILDERS, name)
