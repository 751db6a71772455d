"""Typed series shared by the telemetry sources, the selectors, the charts and the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apps.common.errors import ApplicationError

__all__ = [
    "WINDOWS",
    "Window",
    "window_get",
    "FeatureProfile",
    "BaselineProfile",
    "LatencyBin",
    "RevisionLatency",
    "LatencyCounts",
    "RequestTotals",
    "DriftCounts",
    "RevisionWindow",
    "Agreement",
    "LatencyPoint",
    "LatencySeries",
    "DriftCell",
    "FeatureDrift",
    "DriftSeries",
]


@dataclass(frozen=True)
class Window:
    key: str
    label: str
    span: timedelta
    bin: timedelta
    end: datetime | None = None  # None: now

    @property
    def bin_label(self) -> str:
        if self.bin.total_seconds() < 60:
            return f"{int(self.bin.total_seconds())} s"
        minutes = int(self.bin.total_seconds() // 60)
        if minutes % 1440 == 0:
            return f"{minutes // 1440} d"
        if minutes % 60 == 0:
            return f"{minutes // 60} h"
        return f"{minutes} min"


WINDOWS: dict[str, Window] = {
    w.key: w
    for w in (
        Window("15m", "Last 15 min", timedelta(minutes=15), timedelta(seconds=15)),
        Window("1h", "Last hour", timedelta(hours=1), timedelta(minutes=1)),
        Window("6h", "Last 6 hours", timedelta(hours=6), timedelta(minutes=5)),
        Window("24h", "Last day", timedelta(days=1), timedelta(minutes=15)),
        Window("7d", "Last week", timedelta(days=7), timedelta(hours=2)),
    )
}


MAX_CUSTOM_SPAN = timedelta(days=31)
_CUSTOM_BINS = [timedelta(minutes=m) for m in (1, 5, 15, 30, 60, 120, 360, 720, 1440)]


def _instant(name: str, value: str | None) -> datetime:
    if not value:
        raise ApplicationError(
            f"A custom window needs {name} (ISO 8601, e.g. 2026-11-27T02:00Z).", code="invalid_window"
        )
    text = value.strip().replace("Z", "+00:00")
    if "T" in text and " " in text:  # an unescaped "+" of an offset arrives as a space
        text = text.replace(" ", "+")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ApplicationError(f"{name}={value!r} is not an ISO 8601 time.", code="invalid_window") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def window_get(key: str | None, *, start: str | None = None, end: str | None = None) -> Window:
    """The window named ``key`` (default: the last hour), or ``custom`` between ``start`` and ``end``;
    anything else is a domain error naming it."""
    if key in (None, ""):
        return WINDOWS["1h"]
    if key == "custom":
        begin, finish = _instant("start", start), _instant("end", end)
        if finish <= begin:
            raise ApplicationError("A custom window must end after it starts.", code="invalid_window")
        if finish - begin > MAX_CUSTOM_SPAN:
            raise ApplicationError("A custom window may span at most 31 days.", code="invalid_window")
        span = finish - begin
        bin = next((b for b in _CUSTOM_BINS if span / b <= 120), _CUSTOM_BINS[-1])
        label = f"{begin:%Y-%m-%d %H:%M} to {finish:%Y-%m-%d %H:%M} UTC"
        return Window("custom", label, span, bin, end=finish.astimezone(UTC))
    if key not in WINDOWS:
        raise ApplicationError(
            f"Unknown window {key!r}: use one of {', '.join(WINDOWS)} or custom.",
            code="invalid_window",
            extra={"window": key},
        )
    return WINDOWS[key]


# ---------------------------------------------------------------------------- baselines
@dataclass(frozen=True)
class FeatureProfile:
    """A feature's reference distribution.

    numeric: ``edges`` are the interior cut points c1 < ... < c(k-1); bin i holds c(i) <= v < c(i+1), with
    -inf and +inf outside, so there are ``len(edges) + 1`` bins. categorical: ``categories`` then "other".
    ``frequencies`` has one entry per bin and sums to 1.
    """

    name: str
    kind: str  # "numeric" or "categorical"
    frequencies: list[float]
    edges: list[float] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)

    @property
    def bin_labels(self) -> list[str]:
        if self.kind == "categorical":
            return [*self.categories, "(other)"]
        if not self.edges:
            return ["all"]
        e = self.edges
        return [f"< {e[0]:g}", *[f"[{a:g}, {b:g})" for a, b in zip(e, e[1:], strict=False)], f">= {e[-1]:g}"]


def _feature_json(f: FeatureProfile) -> dict:
    return {"name": f.name, "kind": f.kind, "frequencies": f.frequencies, "edges": f.edges, "categories": f.categories}


@dataclass(frozen=True)
class BaselineProfile:
    """The reference distributions of a model version's inputs, and of its predictions when they are known
    (``prediction``: None when the reference data carried none)."""

    model_name: str
    model_version: str
    rows: int
    features: list[FeatureProfile]
    prediction: FeatureProfile | None = None

    def to_json(self) -> dict:
        return {
            "rows": self.rows,
            "features": [_feature_json(f) for f in self.features],
            "prediction": _feature_json(self.prediction) if self.prediction else None,
        }

    @classmethod
    def from_json(cls, *, model_name: str, model_version: str, data: dict) -> BaselineProfile:
        prediction = data.get("prediction")
        return cls(
            model_name=model_name,
            model_version=model_version,
            rows=int(data.get("rows", 0)),
            features=[FeatureProfile(**f) for f in data.get("features", [])],
            prediction=FeatureProfile(**prediction) if prediction else None,
        )


# ---------------------------------------------------------------------------- what sources return
@dataclass(frozen=True)
class LatencyBin:
    start: datetime
    requests: int
    errors: int  # status >= 500
    rejected: int  # 400 <= status < 500
    p50: float | None
    p95: float | None
    p99: float | None
    revision: str  # the revision that answered most requests of the bin
    revisions: tuple[str, ...] = ()  # every revision that answered in the bin (a deploy mid-bin has two)


@dataclass(frozen=True)
class RevisionLatency:
    """One revision over the whole window, so revisions can be compared."""

    revision: str
    requests: int
    errors: int
    p50: float | None
    p95: float | None
    p99: float | None


@dataclass
class LatencyCounts:
    bins: list[LatencyBin]
    warnings: list[str] = field(default_factory=list)
    revisions: list[RevisionLatency] = field(default_factory=list)


@dataclass(frozen=True)
class RequestTotals:
    """One window ending at the same instant as its siblings: requests, errors (status >= 500) and ``slow``
    requests (latency above the asked threshold; 0 when none was asked). ``p99`` (ms) is computed for the
    longest window of a call only (None for the others, and without requests)."""

    window: timedelta
    requests: int
    errors: int
    slow: int
    p99: float | None = None


@dataclass
class DriftCounts:
    """feature -> bin start -> counts per baseline bin (the profile's order); ``prediction``: the same for the
    sampled outputs, in the bins of the baseline's prediction profile (empty when it has none)."""

    counts: dict[str, dict[datetime, list[int]]]
    warnings: list[str] = field(default_factory=list)
    prediction: dict[datetime, list[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class RevisionWindow:
    """One revision over one exact interval ``[start, end)``: its requests (mirrored ones included), errors (status
    >= 500), how many of the requests were mirrored copies (``shadow``), and the p50/p99 latency in ms (None
    without requests). What a rollout's analysis judges."""

    revision: str
    requests: int
    errors: int
    shadow: int
    p50: float | None
    p99: float | None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(frozen=True)
class Agreement:
    """Predictions of the stable revision and of the candidate's mirrored copies of the same requests (joined by
    request id, sampled lines only): how many requests were ``compared``, how many agreed on every row
    (``equal``), and the largest absolute difference between two numeric predictions (None when none was a
    number)."""

    compared: int
    equal: int
    max_abs_difference: float | None = None

    @property
    def rate(self) -> float | None:
        return self.equal / self.compared if self.compared else None


# ---------------------------------------------------------------------------- what selectors return
@dataclass(frozen=True)
class LatencyPoint:
    time: datetime
    requests: int
    rps: float
    error_rate: float | None
    rejected_rate: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    revision: str


@dataclass
class LatencySeries:
    deployment_id: int
    window: str
    bin_seconds: int
    start: datetime
    end: datetime
    points: list[LatencyPoint]
    revision_changes: list[tuple[datetime, str]]
    warnings: list[str] = field(default_factory=list)
    revisions: list[RevisionLatency] = field(default_factory=list)


@dataclass(frozen=True)
class DriftCell:
    time: datetime
    rows: int
    psi: float | None
    js: float | None
    chi2_p: float | None  # categorical features only
    counts: list[int]


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    kind: str
    bin_labels: list[str]
    baseline: list[float]
    cells: list[DriftCell]
    rows: int
    psi: float | None  # over the whole window
    js: float | None
    chi2_p: float | None
    level: str  # "ok", "warn", "alert", "few rows" (PSI not judged) or "no data"

    @property
    def judged(self) -> bool:
        """Enough sampled rows for its PSI to mean something: only these are ranked and coloured."""
        return self.level in ("ok", "warn", "alert")


@dataclass
class DriftSeries:
    deployment_id: int
    window: str
    bin_seconds: int
    start: datetime
    end: datetime
    model_name: str
    model_version: str
    times: list[datetime]
    features: list[FeatureDrift]  # ranked: most drifting first
    psi_warn: float
    psi_alert: float
    min_rows: int = 0
    warnings: list[str] = field(default_factory=list)
    prediction: FeatureDrift | None = None  # drift of the outputs; None when the baseline has no predictions
