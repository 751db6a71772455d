"""The model page's metric history: one small chart per source-run metric across versions (oldest left), the best
version marked by the metric's direction. Pure: values in, a Plotly figure (a JSON-ready dict) out."""

from __future__ import annotations

import json
import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from apps.registry.metrics import LOWER

__all__ = ["metric_history_figure"]

_FONT = {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12}
_LINE = "#2563eb"
_BEST = "#15803d"
COLUMNS = 4


def metric_history_figure(
    *,
    versions: list[str],
    metrics: dict[str, dict[str, float | None]],
    directions: dict[str, str],
    best: dict[str, set[str]],
) -> dict | None:
    """``versions`` oldest first; ``metrics``: metric -> version -> value. None when there is nothing to draw."""
    names = [m for m in metrics if any(v is not None for v in metrics[m].values())]
    if not names or not versions:
        return None
    rows = math.ceil(len(names) / COLUMNS)
    cols = min(COLUMNS, len(names))
    titles = [f"{m} ({'↓' if directions.get(m) == LOWER else '↑'} better)" for m in names]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.07, vertical_spacing=0.18)
    labels = [f"v{v}" for v in versions]
    for i, metric in enumerate(names):
        row, col = i // COLUMNS + 1, i % COLUMNS + 1
        values = [metrics[metric].get(v) for v in versions]
        fig.add_trace(
            go.Scatter(
                x=labels,
                y=values,
                name=metric,
                mode="lines+markers",
                connectgaps=False,
                line={"color": _LINE, "width": 2},
                marker={
                    "size": [11 if v in best.get(metric, set()) else 7 for v in versions],
                    "color": [_BEST if v in best.get(metric, set()) else _LINE for v in versions],
                },
                hovertemplate=f"{metric} %{{x}}: %{{y:.4g}}<extra></extra>",
                showlegend=False,
            ),
            row=row,
            col=col,
        )
        fig.update_xaxes(type="category", row=row, col=col)
    fig.update_layout(
        height=190 * rows + 40,
        margin={"l": 48, "r": 12, "t": 36, "b": 28},
        font=_FONT,
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="#ffffff",
        hovermode="closest",
    )
    fig.update_yaxes(gridcolor="#e5e7eb", tickformat=".3~g")
    for annotation in fig.layout.annotations:
        annotation.font = {"size": 12}
    return json.loads(fig.to_json())
