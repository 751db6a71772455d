"""Pure functions: typed series in, Plotly figures (as JSON-ready dicts) out. No Django, no I/O."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from apps.monitoring.types import DriftSeries, FeatureDrift, LatencySeries

__all__ = ["PREDICTION_LABEL", "latency_figure", "drift_heatmap_figure", "feature_overlay_figure"]

PREDICTION_LABEL = "▶ prediction (output)"
_FONT = {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12}
# Every series its own hue: errors are the only red, so a p99 spike never reads as errors.
_COLORS = {
    "p50": "#2563eb",  # blue
    "p95": "#f59e0b",  # amber
    "p99": "#7c3aed",  # violet
    "rps": "#0f766e",  # teal (bars)
    "errors": "#dc2626",  # red
    "rejected": "#db2777",  # pink, dotted
}
_NICE_STEPS = (1, 2, 5, 10, 20, 25, 50)


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


def _with_gaps(series: LatencySeries) -> tuple[list[str], list]:
    """The points' times, with a ``None`` point in each run of bins without traffic, so lines break there
    instead of being drawn across minutes nobody scored anything (Plotly does not connect gaps)."""
    step = timedelta(seconds=series.bin_seconds)
    times, points, previous = [], [], None
    for point in series.points:
        if previous is not None and point.time - previous.time > step:
            times.append((previous.time + step).isoformat())
            points.append(None)
        times.append(point.time.isoformat())
        points.append(point)
        previous = point
    return times, points


def _error_axis(worst: float) -> dict:
    """Whole-number ticks for the errors / rejected % axis: 0-5 % in steps of 1 when there are none or few,
    else a nice step (1, 2, 5, 10, 20, 25, 50) that gives at most 6 ticks, up to 100 %."""
    top = max(5.0, min(100.0, worst * 1.15))
    step = next((s for s in _NICE_STEPS if top / s <= 5), 50)
    top = min(100, step * math.ceil(top / step))
    return {"range": [0, top], "tickmode": "linear", "tick0": 0, "dtick": step, "ticksuffix": "%"}


def _revision_marks(series: LatencySeries, x_start: datetime) -> list[tuple[datetime, str]]:
    """One mark per group of revision changes that would overlap: changes in the same bin, or closer than 1/25
    of the visible range, share one line labelled with every revision ("r2 → r3"), so none hides another."""
    visible = (series.end - x_start).total_seconds() or 1.0
    marks: list[tuple[datetime, list[str]]] = []
    for when, revision in series.revision_changes:
        if marks and (when - marks[-1][0]).total_seconds() < visible / 25:
            marks[-1][1].append(revision or "?")
        else:
            marks.append((when, [revision or "?"]))
    return [(when, " → ".join(names)) for when, names in marks]


def _visible_start(series: LatencySeries) -> datetime:
    """Zoom to the data: when all traffic sits in the last part of the window (a deployment that started 5 minutes
    ago, seen over the last hour), start the x axis a few bins before the first point instead of at the window's
    start. With traffic in the first half of the window the whole window shows."""
    if not series.points:
        return series.start
    first = series.points[0].time - 2 * timedelta(seconds=series.bin_seconds)
    span = (series.end - series.start).total_seconds()
    return first if (first - series.start).total_seconds() > span / 2 else series.start


def latency_figure(series: LatencySeries) -> dict:
    """Latency percentiles on top, requests per second and error rate below, revision changes as lines.
    Minutes without traffic are gaps; the x axis zooms to the data (``_visible_start``)."""
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        row_heights=[0.62, 0.38],
        specs=[[{}], [{"secondary_y": True}]],
    )
    times, points = _with_gaps(series)

    def values(get):
        return [None if p is None else get(p) for p in points]

    revisions = values(lambda p: p.revision)
    for key in ("p50", "p95", "p99"):
        fig.add_trace(
            go.Scatter(
                x=times,
                y=values(lambda p, key=key: getattr(p, key)),
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
            y=values(lambda p: p.rps),
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
            y=values(lambda p: None if p.error_rate is None else 100 * p.error_rate),
            name="errors % (5xx)",
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
            y=values(lambda p: None if p.rejected_rate is None else 100 * p.rejected_rate),
            name="rejected % (4xx)",
            mode="lines",
            line={"color": _COLORS["rejected"], "width": 2, "dash": "dot"},
            hovertemplate="%{y:.2f}% rejected<extra></extra>",
        ),
        row=2,
        col=1,
        secondary_y=True,
    )
    x_start = _visible_start(series)
    for index, (when, label) in enumerate(_revision_marks(series, x_start)):
        fig.add_vline(x=when.isoformat(), line={"color": "#6b7280", "dash": "dot", "width": 1})
        fig.add_annotation(
            x=when.isoformat(),
            y=1,
            yref="paper",
            yshift=-16 * (index % 2),  # neighbouring marks' labels on two levels, inside the plot under the legend
            text=label,
            showarrow=False,
            xanchor="left",
            yanchor="top",
            bgcolor="rgba(255,255,255,0.85)",
            font={"size": 11, "color": "#374151"},
            name="revision",
        )
    fig.update_xaxes(range=[x_start.isoformat(), series.end.isoformat()], gridcolor="#eef0f3")
    fig.update_yaxes(title_text="latency (ms)", rangemode="tozero", gridcolor="#eef0f3", row=1, col=1)
    fig.update_yaxes(title_text="req/s", rangemode="tozero", gridcolor="#eef0f3", row=2, col=1)
    worst = max(
        (100 * max(p.error_rate, p.rejected_rate or 0.0) for p in series.points if p.error_rate is not None),
        default=0.0,
    )
    fig.update_yaxes(
        title_text="errors / rejected",
        showgrid=False,
        zeroline=False,
        row=2,
        col=1,
        secondary_y=True,
        **_error_axis(worst),
    )
    if worst == 0 and series.points:
        fig.add_annotation(
            text="no errors or rejected requests in this window",
            xref="x2 domain",
            yref="y3 domain",
            x=0.99,
            y=0.95,
            showarrow=False,
            xanchor="right",
            font={"size": 11, "color": "#18794e"},
            name="no-errors",
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
