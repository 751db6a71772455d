"""Plain values the registry pages and API show. Nothing here knows about MLflow."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

__all__ = ["ModelSummary", "VersionInfo", "RunInfo", "ColumnSpec", "Signature", "Page"]

T = TypeVar("T")


@dataclass(frozen=True)
class ModelSummary:
    name: str
    description: str
    created_at: datetime | None
    updated_at: datetime | None
    aliases: dict[str, str]  # alias -> version
    tags: dict[str, str]
    latest_version: str | None
    stages: dict[str, str] = field(default_factory=dict)  # legacy stage -> latest version in it


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    description: str
    created_at: datetime | None
    updated_at: datetime | None
    stage: str | None  # legacy stage; None where the registry has none (Unity Catalog) or "None"
    status: str
    aliases: list[str]
    tags: dict[str, str]
    run_id: str | None
    source: str
    user: str


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    experiment_id: str
    name: str
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    ui_url: str | None


@dataclass(frozen=True)
class ColumnSpec:
    name: str | None
    type: str
    required: bool = True


@dataclass(frozen=True)
class Signature:
    inputs: list[ColumnSpec]
    outputs: list[ColumnSpec]
    params: list[ColumnSpec]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str | None
