"""Pure functions: typed series in, Plotly figures (as JSON-ready dicts) out. No Django, no I/O."""

from __future__ import annotations

import json

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from apps.monitoring.types import DriftSeries, FeatureDrift, LatencySeries

__all__ = ["PREDICTION_LABEL", "latency_figure", "drift_heatmap_figure", "feature_overlay_figure"]

PREDICTION_LABEL = "▶ prediction (output)"
_FONT = {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12}
_COLORS = {
    "p50": "#2563eb",
    "p95": "#f59e0b",
    "p99": "#dc2626",
    "rps": "#0f766e",
    "errors": "#b91c1c",
    "rejected": "#7c3aed",
}


def _as_dict(fig: go.Figure) -> dict:
    return json.loads(fig.to_json())


def _layout(fig: go.Figure, *, height: int) -> None:
    fig.update_layout(
        height=height,
        margin={"l": 56, "r": 16, "t": 28, "b": 40},
        font=_FONT,
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="#ffffff",
        legend={"orientation": "h", "y": 1.08, "x": 0},
        hovermode="x unified",
    )


def latency_figure(series: LatencySeries) -> dict:
    """Latency percentiles on top, requests per second and error rate below, revision changes as lines."""
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        row_heights=[0.62, 0.38],
        specs=[[{}], [{"secondary_y": True}]],
    )
    times = [p.time.isoformat() for p in series.points]
    revisions = [p.revision for p in series.points]
    for key in ("p50", "p95", "p99"):
        fig.add_trace(
            go.Scatter(
                x=times,
                y=[getattr(p, key) for p in series.points],
                name=key,
                mode="lines+markers",
                line={"color": _COLORS[key], "width": 2},
                marker={"size": 4},
                customdata=revisions,
                hovertemplate="%{y:.1f} ms · %{customdata}<extra>" + key + "</extra>",
            ),
            row=1,
            col=1,
        )
    fig.add_trace(
        go.Bar(
            x=times,
            y=[p.rps for p in series.points],
            name="requests/s",
            marker={"color": _COLORS["rps"]},
            opacity=0.55,
            hovertemplate="%{y:.2f} req/s<extra></extra>",
        ),
        row=2,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=times,
            y=[None if p.error_rate is None else 100 * p.error_rate for p in series.points],
            name="errors %",
            mode="lines",
            line={"color": _COLORS["errors"], "width": 2},
            hovertemplate="%{y:.2f}% errors<extra></extra>",
        ),
        row=2,
        col=1,
        secondary_y=True,
    )
    fig.add_trace(  # refused requests (4xx: bad input), apart from the server's own errors (5xx)
        go.Scatter(
            x=times,
            y=[None if p.rejected_rate is None else 100 * p.rejected_rate for p in series.points],
            name="rejected % (4xx)",
            mode="lines",
            line={"color": _COLORS["rejected"], "width": 2, "dash": "dot"},
            hovertemplate="%{y:.2f}% rejected<extra></extra>",
        ),
        row=2,
        col=1,
        secondary_y=True,
    )
    for when, revision in series.revision_changes:
        fig.add_vline(x=when.isoformat(), line={"color": "#6b7280", "dash": "dot", "width": 1})
        fig.add_annotation(
            x=when.isoformat(),
            y=1,
            yref="paper",
            text=revision or "?",
            showarrow=False,
            xanchor="left",
            yanchor="bottom",
            font={"size": 11, "color": "#374151"},
        )
    fig.update_xaxes(range=[series.start.isoformat(), series.end.isoformat()], gridcolor="#eef0f3")
    fig.update_yaxes(title_text="latency (ms)", rangemode="tozero", gridcolor="#eef0f3", row=1, col=1)
    fig.update_yaxes(title_text="req/s", rangemode="tozero", gridcolor="#eef0f3", row=2, col=1)
    worst = max(
        (100 * max(p.error_rate, p.rejected_rate or 0.0) for p in series.points if p.error_rate is not None),
        default=0.0,
    )
    fig.update_yaxes(
        title_text="errors / rejected %",
        range=[0, max(5.0, worst * 1.15)],
        showgrid=False,
        row=2,
        col=1,
        secondary_y=True,
    )
    _layout(fig, height=440)
    return _as_dict(fig)


_NOT_ENOUGH = "#e5e7eb"  # grey: too few sampled rows to judge, never a colour of the PSI scale


def _row_label(feature: FeatureDrift, series: DriftSeries) -> str:
    name = PREDICTION_LABEL if feature is series.prediction else feature.name
    if feature.level == "few rows":
        return f"{name} ({feature.rows}/{series.min_rows} rows)"
    return name


def drift_heatmap_figure(series: DriftSeries) -> dict:
    """PSI per feature (rows, most drifting on top) and time bin (columns), coloured by the thresholds; the
    model's predictions, when the baseline has them, are the top row, apart from the inputs. A cell is coloured
    only when its feature has enough sampled rows in the window and the cell itself has ``min_rows``; any other
    cell with data is grey ("not enough data"), so noise from a handful of rows never looks like an alarm."""
    times = [t.isoformat() for t in series.times]
    features = list(reversed(series.features))  # plotly draws the first row at the bottom
    if series.prediction is not None:
        features.append(series.prediction)
    z, text, grey, grey_text = [], [], [], []
    for feature in features:
        by_time = {cell.time: cell for cell in feature.cells}
        row, labels, grey_row, grey_labels = [], [], [], []
        for t in series.times:
            cell = by_time.get(t)
            judged = cell is not None and feature.judged and cell.rows >= series.min_rows
            row.append(cell.psi if judged else None)
            labels.append(f"{cell.rows} rows, JS {cell.js:.3f}" if judged and cell.js is not None else "no data")
            grey_row.append(1 if cell is not None and not judged else None)
            grey_labels.append(
                f"not enough data: {cell.rows} of {series.min_rows} sampled rows" if cell is not None else ""
            )
        z.append(row)
        text.append(labels)
        grey.append(grey_row)
        grey_text.append(grey_labels)
    top = max(series.psi_alert * 2, 0.5)
    y = [_row_label(f, series) for f in features]
    fig = go.Figure(
        go.Heatmap(
            x=times,
            y=y,
            z=z,
            text=text,
            zmin=0,
            zmax=top,
            hoverongaps=False,
            colorscale=[
                [0.0, "#f0fdf4"],
                [series.psi_warn / top, "#bbf7d0"],
                [series.psi_warn / top, "#fde68a"],
                [series.psi_alert / top, "#f59e0b"],
                [series.psi_alert / top, "#f87171"],
                [1.0, "#991b1b"],
            ],
            colorbar={"title": {"text": "PSI"}, "thickness": 12},
            hovertemplate="%{y} · %{x}<br>PSI %{z:.3f} · %{text}<extra></extra>",
            name="PSI",
        )
    )
    if any(v is not None for row in grey for v in row):
        fig.add_trace(
            go.Heatmap(
                x=times,
                y=y,
                z=grey,
                text=grey_text,
                zmin=0,
                zmax=1,
                colorscale=[[0.0, _NOT_ENOUGH], [1.0, _NOT_ENOUGH]],
                showscale=False,
                hoverongaps=False,
                texttemplate="·",
                textfont={"color": "#9ca3af"},
                hovertemplate="%{y} · %{x}<br>%{text}<extra></extra>",
                name="not enough data",
            )
        )
    fig.update_xaxes(range=[series.start.isoformat(), series.end.isoformat()])
    _layout(fig, height=max(260, 22 * len(features) + 90))
    fig.update_layout(hovermode="closest", margin={"l": 200, "r": 16, "t": 16, "b": 40})
    if series.prediction is not None and len(features) > 1:  # a line between the outputs and the inputs
        fig.add_hline(y=len(features) - 1.5, line={"color": "#374151", "width": 2})
    return _as_dict(fig)


def feature_overlay_figure(feature: FeatureDrift) -> dict:
    """The baseline's distribution of one feature next to production's over the window."""
    total = sum(sum(cell.counts) for cell in feature.cells)
    production = [0.0] * len(feature.baseline)
    for cell in feature.cells:
        for i, count in enumerate(cell.counts):
            production[i] += count / total if total else 0.0
    fig = go.Figure()
    fig.add_trace(go.Bar(x=feature.bin_labels, y=feature.baseline, name="baseline", marker={"color": "#94a3b8"}))
    fig.add_trace(go.Bar(x=feature.bin_labels, y=production, name="production", marker={"color": "#2563eb"}))
    fig.update_yaxes(title_text="share", tickformat=".0%", gridcolor="#eef0f3")
    _layout(fig, height=260)
    fig.update_layout(barmode="group", hovermode="x", title={"text": feature.name, "x": 0, "font": {"size": 13}})
    return _as_dict(fig)
