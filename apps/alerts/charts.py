"""Pure functions: an alert's metric series in, a Plotly figure (a JSON-ready dict) out. No Django, no I/O."""

from __future__ import annotations

import json

import plotly.graph_objects as go

__all__ = ["alert_figure"]

_FONT = {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12}


def alert_figure(series) -> dict:
    """The metric per bin as a line, the threshold as a dashed line, the firing (and resolution) as markers."""
    fig = go.Figure()
    times = [t.isoformat() for t in series.times]
    fig.add_trace(
        go.Scatter(x=times, y=series.values, name=series.label, mode="lines+markers", line={"color": "#2563eb"})
    )
    if series.threshold is not None and times:
        fig.add_trace(
            go.Scatter(
                x=[times[0], times[-1]],
                y=[series.threshold, series.threshold],
                name="threshold",
                mode="lines",
                line={"color": "#dc2626", "dash": "dash"},
            )
        )
    shapes = [("fired", series.fired_at, "#dc2626")]
    if series.resolved_at is not None:
        shapes.append(("resolved", series.resolved_at, "#16a34a"))
    for label, when, color in shapes:
        fig.add_vline(x=when.isoformat(), line={"color": color, "width": 1, "dash": "dot"})
        fig.add_annotation(x=when.isoformat(), y=1, yref="paper", text=label, showarrow=False, font={"color": color})
    fig.update_layout(
        height=320,
        margin={"l": 56, "r": 16, "t": 28, "b": 40},
        font=_FONT,
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="#ffffff",
        legend={"orientation": "h", "y": 1.12, "x": 0},
        yaxis={"title": series.label, "rangemode": "tozero"},
    )
    return json.loads(fig.to_json())
