"""Pure functions: a rollout's analysis checks in, one Plotly figure (a JSON-ready dict) per metric out, each
revision its own line against the metric's threshold. No Django, no I/O."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import plotly.graph_objects as go

__all__ = ["MetricInfo", "METRICS", "metric_info", "value_text", "analysis_figures"]


@dataclass(frozen=True)
class MetricInfo:
    label: str
    unit: str  # "%" (the stored share is scaled by 100), "ms" or "" (a plain number)
    limit: str  # "max" or "min": which side of the threshold passes
    charted: bool = True

    def scale(self, value: float | None) -> float | None:
        return None if value is None else value * 100 if self.unit == "%" else value


# In the order the page shows them.
METRICS = {
    "error_rate": MetricInfo("Error rate", "%", "max"),
    "p99_ms": MetricInfo("Latency p99", "ms", "max"),
    "p50_ms": MetricInfo("Latency p50", "ms", "max"),
    "drift": MetricInfo("Input drift (PSI)", "", "max"),
    "agreement": MetricInfo("Agreement with the live revision", "%", "min"),
    "requests": MetricInfo("Requests", "", "min", charted=False),
}
_FONT = {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12}
_CANDIDATE, _STABLE, _FAIL, _THRESHOLD = "#2f5bea", "#9aa3b8", "#b42318", "#a15c00"


def metric_info(metric: str) -> MetricInfo:
    return METRICS.get(metric, MetricInfo(metric.replace("_", " "), "", "max", charted=False))


def value_text(metric: str, value: float | None) -> str:
    """A value as people read it: "1.2%", "412 ms", "0.031", "50"."""
    if value is None:
        return "—"
    info = metric_info(metric)
    scaled = info.scale(value)
    if info.unit == "%":
        return f"{scaled:.2f}%" if scaled < 10 else f"{scaled:.1f}%"
    if info.unit == "ms":
        return f"{scaled:.0f} ms" if scaled >= 10 else f"{scaled:.1f} ms"
    if metric == "requests":
        return f"{scaled:.0f}"
    return f"{scaled:.3f}"


def analysis_figures(checks: Iterable, *, candidate: str) -> list[tuple[str, str, dict]]:
    """(metric, title, figure) for each charted metric that has values, in ``METRICS`` order. ``checks`` are
    ``AnalysisCheck``-like (checked_at, step, weight, metric, subject, value, threshold, verdict)."""
    by_metric: dict[str, list] = {}
    for check in checks:
        if metric_info(check.metric).charted and check.value is not None:
            by_metric.setdefault(check.metric, []).append(check)
    return [
        (metric, metric_info(metric).label, _figure(metric, by_metric[metric], candidate=candidate))
        for metric in METRICS
        if metric in by_metric
    ]


def _figure(metric: str, checks: list, *, candidate: str) -> dict:
    info = metric_info(metric)
    fig = go.Figure()
    subjects = sorted({c.subject for c in checks}, key=lambda s: (s != candidate, s))
    for subject in subjects:
        mine = sorted((c for c in checks if c.subject == subject), key=lambda c: c.checked_at)
        colour = _CANDIDATE if subject == candidate else _STABLE
        fig.add_trace(
            go.Scatter(
                x=[c.checked_at.isoformat() for c in mine],
                y=[info.scale(c.value) for c in mine],
                customdata=[[c.step + 1, c.weight] for c in mine],
                name=subject,
                mode="lines+markers",
                line={"color": colour, "width": 2},
                marker={"size": 7},
                hovertemplate="%{y:.3~f}"
                + info.unit
                + " · interval %{customdata[0]} at %{customdata[1]}%<extra>"
                + subject
                + "</extra>",
            )
        )
    failed = sorted((c for c in checks if c.verdict == "fail"), key=lambda c: c.checked_at)
    if failed:
        fig.add_trace(
            go.Scatter(
                x=[c.checked_at.isoformat() for c in failed],
                y=[info.scale(c.value) for c in failed],
                name="failed",
                mode="markers",
                marker={"color": _FAIL, "size": 13, "symbol": "x-thin", "line": {"width": 3, "color": _FAIL}},
                hoverinfo="skip",
            )
        )
    thresholds = [info.scale(c.threshold) for c in checks if c.threshold is not None]
    if thresholds:
        threshold = thresholds[-1]
        fig.add_hline(y=threshold, line={"color": _THRESHOLD, "dash": "dash", "width": 1.5})
        fig.add_annotation(
            x=1,
            xref="paper",
            y=threshold,
            text=f"{info.limit} {value_text(metric, threshold / 100 if info.unit == '%' else threshold)}",
            showarrow=False,
            xanchor="right",
            yanchor="bottom",
            font={"size": 11, "color": _THRESHOLD},
            name="threshold",
            bgcolor="rgba(255,255,255,0.8)",
        )
    fig.update_layout(
        height=230,
        margin={"l": 52, "r": 12, "t": 26, "b": 30},
        font=_FONT,
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="#ffffff",
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0, "font": {"size": 11}},
        showlegend=True,
        hovermode="closest",
    )
    fig.update_xaxes(gridcolor="#eef0f3", tickformat="%H:%M:%S", nticks=5, tickangle=0)
    fig.update_yaxes(
        gridcolor="#eef0f3",
        rangemode="tozero" if info.limit == "max" else "normal",  # agreement near 100%: show the gap, not the 0
        ticksuffix=info.unit if info.unit == "%" else "",
    )
    if info.unit == "ms":
        fig.update_yaxes(title_text="ms")
    return json.loads(fig.to_json())
