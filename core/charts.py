"""Plotly figure builders: evaluation results or DataFrames in, figures out, no side effects.

Every string that comes from data (model names, labels, feature names, group names) passes
through `_text`, which escapes the few HTML-like tags plotly would otherwise interpret, so
user content always shows as plain text. User strings never go into a hovertemplate.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.evaluation import METRIC_LABELS
from core.monitoring.profile import column_label
from core.monitoring.stats import SHORT_TEST_LABELS, format_statistic

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
NEUTRAL = "#7f7f7f"
ALERT = "#D55E00"
GL_THRESHOLD = 10_000
MAX_LINE_POINTS = 100_000
TEMPLATE = "plotly_white"


def roc_curves(named_results: Mapping[str, Mapping[str, Any]]) -> go.Figure:
    """ROC curves of several results overlaid, with the chance diagonal."""
    fig = _figure("ROC curve", "False positive rate", "True positive rate")
    fig.add_trace(_diagonal("Chance"))
    for i, (name, roc) in enumerate(_curves(named_results, "roc")):
        auc = _metric(named_results[name], "roc_auc")
        label = _text(name) + ("" if auc is None else f" (AUC {auc:.3f})")
        fig.add_trace(_line(roc["fpr"], roc["tpr"], label, i, "FPR %{x:.3f}<br>TPR %{y:.3f}"))
    return _empty_note(fig, "No ROC curve: the results have no predicted probabilities.")


def pr_curves(named_results: Mapping[str, Mapping[str, Any]]) -> go.Figure:
    """Precision-recall curves of several results overlaid."""
    fig = _figure("Precision-recall curve", "Recall", "Precision")
    for i, (name, pr) in enumerate(_curves(named_results, "pr")):
        fig.add_trace(
            _line(
                pr["recall"],
                pr["precision"],
                _text(name),
                i,
                "Recall %{x:.3f}<br>Precision %{y:.3f}",
            )
        )
    return _empty_note(fig, "No precision-recall curve: no predicted probabilities.")


def calibration_curves(named_results: Mapping[str, Mapping[str, Any]]) -> go.Figure:
    """Reliability diagram: mean predicted probability against observed frequency."""
    fig = _figure("Calibration", "Mean predicted probability", "Fraction of positives")
    fig.add_trace(_diagonal("Perfectly calibrated"))
    for i, (name, cal) in enumerate(_curves(named_results, "calibration")):
        trace = _line(
            cal["prob_pred"],
            cal["prob_true"],
            _text(name),
            i,
            "Predicted %{x:.3f}<br>Observed %{y:.3f}",
        )
        trace.mode = "lines+markers"
        fig.add_trace(trace)
    return _empty_note(fig, "No calibration curve: no predicted probabilities.")


def confusion_matrix(result: Mapping[str, Any]) -> go.Figure:
    """Counts of actual (rows) against predicted (columns) labels, with row shares on hover."""
    fig = _figure("Confusion matrix", "Predicted", "Actual")
    matrix_info = result.get("confusion_matrix") or {}
    labels = [_text(label) for label in matrix_info.get("labels", [])]
    counts = np.asarray(matrix_info.get("matrix", []), dtype=float)
    if counts.size == 0:
        return _empty_note(fig, "No confusion matrix for this result.")
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    fig.add_trace(
        go.Heatmap(
            z=counts,
            x=labels,
            y=labels,
            customdata=shares,
            colorscale="Blues",
            texttemplate="%{z:,.0f}",
            hovertemplate="Actual %{y}<br>Predicted %{x}<br>%{z:,.0f} rows "
            "(%{customdata:.1%} of actual)<extra></extra>",
            colorbar={"title": {"text": "Rows"}},
            name="Confusion matrix",
        )
    )
    fig.update_xaxes(type="category", side="bottom")
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


def residuals(result: Mapping[str, Any]) -> go.Figure:
    """Histogram of residuals next to predicted-against-actual with the ideal line."""
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("Residuals (actual − predicted)", "Predicted vs actual")
    )
    fig.update_layout(title={"text": "Regression errors"}, template=TEMPLATE, bargap=0.02)
    res = result.get("residuals") or {}
    hist, scatter = res.get("histogram") or {}, res.get("pred_vs_actual") or {}
    edges = np.asarray(hist.get("edges", []), dtype=float)
    if edges.size > 1:
        fig.add_trace(_histogram_bars(edges, hist["counts"]), row=1, col=1)
    actual = np.asarray(scatter.get("actual", []), dtype=float)
    predicted = np.asarray(scatter.get("predicted", []), dtype=float)
    if actual.size:
        fig.add_trace(_points(actual, predicted), row=1, col=2)
        low, high = float(np.nanmin([actual, predicted])), float(np.nanmax([actual, predicted]))
        fig.add_trace(_ideal_line(low, high), row=1, col=2)
    fig.update_xaxes(title_text="Residual", row=1, col=1)
    fig.update_yaxes(title_text="Rows", row=1, col=1)
    fig.update_xaxes(title_text="Actual", row=1, col=2)
    fig.update_yaxes(title_text="Predicted", row=1, col=2)
    return fig


def metric_bars(
    compare_rows: Sequence[Mapping[str, Any]], names: tuple[str, str] = ("Candidate", "Champion")
) -> go.Figure:
    """Candidate and champion metrics side by side, the comparison sentence on hover."""
    fig = _figure("Metrics side by side", "Metric", "Value")
    labels = [_text(row["label"]) for row in compare_rows]
    sentences = [_text(row.get("sentence", "")) for row in compare_rows]
    for i, (key, name) in enumerate(zip(("candidate", "champion"), names, strict=True)):
        values = [_none_to_nan(row.get(key)) for row in compare_rows]
        fig.add_trace(
            go.Bar(
                x=labels,
                y=values,
                name=_text(name),
                marker_color=PALETTE[i],
                customdata=sentences,
                texttemplate="%{y:.3g}",
                textposition="outside",
                hovertemplate="%{x}: %{y:.4g}<br>%{customdata}<extra></extra>",
            )
        )
    fig.update_layout(barmode="group")
    return fig


def slice_metrics(result: Mapping[str, Any], metric: str) -> go.Figure:
    """One bar per group of the sensitive column for `metric`, the overall value dashed."""
    label = _metric_label(metric)
    slices = result.get("slices") or []
    fairness = result.get("fairness") or {}
    column = _text(fairness.get("sensitive", "group"))
    fig = _figure(f"{label} by {column}", column, label)
    if not slices:
        return _empty_note(fig, "No slices: evaluate with a sensitive column to see groups.")
    groups = [_text(s["group"]) for s in slices]
    values = [_none_to_nan(_slice_value(s, metric)) for s in slices]
    fig.add_trace(
        go.Bar(
            x=groups,
            y=values,
            name=label,
            marker_color=PALETTE[0],
            customdata=[s.get("n") for s in slices],
            hovertemplate="%{x}: %{y:.3f}<br>%{customdata:,} rows<extra></extra>",
        )
    )
    fig.update_xaxes(type="category")
    overall = _metric(result, metric)
    if overall is not None:
        fig.add_hline(
            y=overall,
            line_dash="dash",
            line_color=NEUTRAL,
            annotation_text=f"overall {overall:.3f}",
        )
    return fig


def time_series(
    df: pd.DataFrame,
    x: str,
    y: str,
    title: str,
    threshold: float | tuple[float, float] | None = None,
    anomalies_col: str | None = None,
    *,
    x_title: str | None = None,
    y_title: str | None = None,
    partial_col: str | None = None,
    x_range: tuple[Any, Any] | None = None,
    percent: bool = False,
) -> go.Figure:
    """A line over time; a threshold line or (low, high) band kept inside the y range;
    anomalies as red markers; windows still filling (`partial_col`) as hollow grey markers;
    `x_range` shared by charts stacked on one page."""
    fig = _figure(_text(title), _text(x_title or x), _text(y_title or y))
    data = df.sort_values(x) if len(df) else df
    xs, ys = data[x].to_numpy(), data[y].to_numpy(dtype=float, na_value=np.nan)
    if len(data) > MAX_LINE_POINTS:
        keep = min_max_indices(ys, MAX_LINE_POINTS // 2)
        xs, ys = xs[keep], ys[keep]
    scatter = go.Scattergl if len(xs) > GL_THRESHOLD else go.Scatter
    value = "%{y:.1%}" if percent else "%{y:.4g}"
    fig.add_trace(
        scatter(
            x=xs,
            y=ys,
            mode="lines",
            name=_text(y_title or y),
            line={"color": PALETTE[0]},
            hovertemplate="%{x}<br>" + value + "<extra></extra>",
        )
    )
    _add_threshold(fig, threshold, percent)
    if partial_col is not None and partial_col in data:
        _add_partial(fig, data, x, y, partial_col, value)
    if anomalies_col is not None:
        _add_anomalies(fig, data, x, y, anomalies_col)
    fig.update_yaxes(range=value_range(ys, threshold), tickformat=".0%" if percent else None)
    if x_range is not None:
        fig.update_xaxes(range=list(x_range))
    return fig


def value_range(
    values: Any, threshold: float | tuple[float, float] | None = None, pad: float = 0.08
) -> list[float] | None:
    """A y range holding every finite value and the threshold (or band), padded so that a
    line on the edge stays visible; None when there is nothing to hold."""
    finite = [float(v) for v in np.asarray(values, dtype=float).ravel() if np.isfinite(v)]
    if threshold is not None:
        finite.extend(threshold if isinstance(threshold, tuple) else (threshold,))
    if not finite:
        return None
    low, high = min(finite), max(finite)
    span = high - low or abs(high) or 1.0
    return [low - pad * span, high + pad * span]


def shared_x_range(*frames: pd.DataFrame, column: str = "window") -> tuple[Any, Any] | None:
    """The earliest and latest `column` date over several frames, padded a little so that the
    first and last points show whole: one x range for charts stacked on a page, so that a
    window sits at the same place in each."""
    values = [
        v for f in frames if column in f and len(f) for v in (f[column].min(), f[column].max())
    ]
    if not values:
        return None
    low, high = pd.Timestamp(min(values)), pd.Timestamp(max(values))
    pad = (high - low) * 0.02 if high > low else pd.Timedelta(days=1)
    return low - pad, high + pad


def min_max_indices(values: np.ndarray, buckets: int) -> np.ndarray:
    """Positions of the minimum and maximum of each of `buckets` equal slices, in order."""
    n = len(values)
    if n <= 2 * buckets:
        return np.arange(n)
    size = int(np.ceil(n / buckets))
    padded_len = size * int(np.ceil(n / size))
    low = np.full(padded_len, np.inf)
    high = np.full(padded_len, -np.inf)
    clean = np.where(np.isnan(values), np.inf, values)
    low[:n] = clean
    high[:n] = np.where(np.isnan(values), -np.inf, values)
    starts = np.arange(0, padded_len, size)
    mins = low.reshape(-1, size).argmin(axis=1) + starts
    maxs = high.reshape(-1, size).argmax(axis=1) + starts
    return np.unique(np.minimum(np.concatenate([mins, maxs]), n - 1))


DRIFT_COLOURS = ((0.0, "#2E8B57"), (0.5, "#2E8B57"), (0.5, "#C0392B"), (1.0, "#C0392B"))


def drift_heatmap(df: pd.DataFrame, partial: Sequence[Any] = ()) -> go.Figure:
    """Per feature (rows) and window (columns): red where the feature drifted, green where it
    did not. Each row names the statistic its test uses; the hover gives its value (p-values
    as "< 0.001") and the threshold. Windows still filling are marked "(partial)"."""
    fig = _figure("Drift by feature and window", "Window (start date)", "Feature (drift test)")
    if df.empty:
        return _empty_note(fig, "No drift results yet.")
    frame = df.copy()
    still_filling = {str(w) for w in partial}
    frame["column_label"] = [
        f"{column_label(f)} ({SHORT_TEST_LABELS.get(t, t)})"
        for f, t in zip(frame["feature"], frame["test"], strict=True)
    ]
    frame["window_label"] = [
        f"{w} (partial)" if str(w) in still_filling else str(w) for w in frame["window"]
    ]
    frame["shown"] = [
        f"{SHORT_TEST_LABELS.get(t, t)} {format_statistic(t, v)}, threshold "
        f"{format_statistic(t, h)}: {'drift' if d else 'no drift'}"
        for t, v, h, d in zip(
            frame["test"], frame["value"], frame["threshold"], frame["drifted"], strict=True
        )
    ]
    rows = list(dict.fromkeys(frame["column_label"]))
    cols = list(dict.fromkeys(frame.sort_values("window")["window_label"]))
    verdict = frame.pivot_table(
        index="column_label", columns="window_label", values="drifted", aggfunc="last"
    ).reindex(index=rows, columns=cols)
    words = frame.pivot_table(
        index="column_label", columns="window_label", values="shown", aggfunc="last"
    ).reindex(index=rows, columns=cols)
    fig.add_trace(
        go.Heatmap(
            z=verdict.to_numpy(dtype=float),
            x=[_text(c) for c in cols],
            y=[_text(r) for r in rows],
            customdata=words.fillna("").to_numpy(dtype=object),
            colorscale=[list(stop) for stop in DRIFT_COLOURS],
            zmin=0,
            zmax=1,
            xgap=1,
            ygap=1,
            name="Drift",
            colorbar={
                "title": {"text": "Verdict"},
                "tickvals": [0.25, 0.75],
                "ticktext": ["No drift", "Drift"],
            },
            hovertemplate="%{y}<br>window %{x}<br>%{customdata}<extra></extra>",
            hoverongaps=False,
        )
    )
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


def distribution_compare(
    edges_or_categories: Sequence[Any],
    ref_counts: Sequence[float],
    cur_counts: Sequence[float],
    title: str,
) -> go.Figure:
    """Reference and current distributions as shares: histogram bins or category bars."""
    ref, cur = np.asarray(ref_counts, dtype=float), np.asarray(cur_counts, dtype=float)
    binned = len(edges_or_categories) == len(ref) + 1
    fig = _figure(_text(title), "Value" if binned else "Category", "Share of rows")
    if binned:
        edges = np.asarray(edges_or_categories, dtype=float)
        xs: Any = (edges[:-1] + edges[1:]) / 2
        widths: Any = np.diff(edges)
        ranges = [f"{a:.4g} to {b:.4g}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    else:
        xs = [_text(c) for c in edges_or_categories]
        widths, ranges = None, xs
    for i, (name, counts) in enumerate((("Reference", ref), ("Current", cur))):
        fig.add_trace(_share_bars(xs, widths, ranges, counts, name, i))
    fig.update_layout(barmode="overlay" if binned else "group")
    fig.update_yaxes(tickformat=".0%")
    return fig


def _figure(title: str, x_title: str, y_title: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title={"text": title},
        xaxis_title=x_title,
        yaxis_title=y_title,
        template=TEMPLATE,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"t": 80},
    )
    return fig


def _text(value: Any) -> str:
    return html.escape(str(value), quote=False)


def _curves(
    named_results: Mapping[str, Mapping[str, Any]], kind: str
) -> list[tuple[str, Mapping[str, Any]]]:
    found = []
    for name, result in named_results.items():
        curve = (result.get("curves") or {}).get(kind)
        if curve:
            found.append((name, curve))
    return found


def _line(xs: Any, ys: Any, name: str, index: int, hover: str) -> go.Scatter:
    return go.Scatter(
        x=list(xs),
        y=list(ys),
        mode="lines",
        name=name,
        line={"color": PALETTE[index % len(PALETTE)], "width": 2},
        hovertemplate=hover + "<extra></extra>",
    )


def _diagonal(name: str) -> go.Scatter:
    return go.Scatter(
        x=[0, 1],
        y=[0, 1],
        mode="lines",
        name=name,
        line={"color": NEUTRAL, "dash": "dash", "width": 1},
        hoverinfo="skip",
    )


def _empty_note(fig: go.Figure, message: str) -> go.Figure:
    if any(not _is_reference(t) for t in fig.data):
        return fig
    fig.add_annotation(
        text=message,
        showarrow=False,
        xref="paper",
        yref="paper",
        x=0.5,
        y=0.5,
        font={"color": NEUTRAL},
    )
    return fig


def _is_reference(trace: Any) -> bool:
    return trace.hoverinfo == "skip"


def _metric(result: Mapping[str, Any], metric: str) -> float | None:
    value = (result.get("metrics") or {}).get(metric)
    return None if value is None else float(value)


def _metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, _text(metric))


def _slice_value(slice_row: Mapping[str, Any], metric: str) -> Any:
    if metric in slice_row and metric != "metrics":
        return slice_row[metric]
    return (slice_row.get("metrics") or {}).get(metric)


def _none_to_nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _histogram_bars(edges: np.ndarray, counts: Sequence[float]) -> go.Bar:
    return go.Bar(
        x=(edges[:-1] + edges[1:]) / 2,
        y=list(counts),
        width=np.diff(edges),
        name="Residuals",
        marker_color=PALETTE[0],
        customdata=np.column_stack([edges[:-1], edges[1:]]),
        hovertemplate="%{customdata[0]:.4g} to %{customdata[1]:.4g}<br>%{y:,} rows<extra></extra>",
    )


def _points(actual: np.ndarray, predicted: np.ndarray) -> go.Scatter:
    scatter = go.Scattergl if actual.size > GL_THRESHOLD else go.Scatter
    return scatter(
        x=actual,
        y=predicted,
        mode="markers",
        name="Rows",
        marker={"color": PALETTE[0], "size": 5, "opacity": 0.6},
        hovertemplate="Actual %{x:.4g}<br>Predicted %{y:.4g}<extra></extra>",
    )


def _ideal_line(low: float, high: float) -> go.Scatter:
    return go.Scatter(
        x=[low, high],
        y=[low, high],
        mode="lines",
        name="Perfect prediction",
        line={"color": NEUTRAL, "dash": "dash", "width": 1},
        hoverinfo="skip",
    )


def _add_threshold(
    fig: go.Figure, threshold: float | tuple[float, float] | None, percent: bool = False
) -> None:
    if threshold is None:
        return
    if isinstance(threshold, tuple):
        low, high = threshold
        fig.add_hrect(
            y0=low,
            y1=high,
            fillcolor=PALETTE[2],
            opacity=0.12,
            line_width=0,
            annotation_text="expected range",
            annotation_position="top left",
        )
        return
    fig.add_hline(
        y=threshold,
        line_dash="dash",
        line_color=ALERT,
        annotation_text=f"threshold {threshold:.0%}" if percent else f"threshold {threshold:.4g}",
        annotation_position="top left",
    )


def _add_partial(
    fig: go.Figure, data: pd.DataFrame, x: str, y: str, column: str, value: str
) -> None:
    shown = data[data[column].fillna(False).astype(bool)]
    if shown.empty:
        return
    fig.add_trace(
        go.Scatter(
            x=shown[x].to_numpy(),
            y=shown[y].to_numpy(dtype=float, na_value=np.nan),
            mode="markers",
            name="Partial window (still filling)",
            marker={"color": "#ffffff", "size": 9, "line": {"color": NEUTRAL, "width": 2}},
            hovertemplate="%{x}<br>" + value + " (partial window: not complete yet)<extra></extra>",
        )
    )


def _add_anomalies(fig: go.Figure, data: pd.DataFrame, x: str, y: str, column: str) -> None:
    flagged = data[data[column].fillna(False).astype(bool)]
    scatter = go.Scattergl if len(flagged) > GL_THRESHOLD else go.Scatter
    fig.add_trace(
        scatter(
            x=flagged[x].to_numpy(),
            y=flagged[y].to_numpy(dtype=float, na_value=np.nan),
            mode="markers",
            name="Anomaly",
            marker={"color": ALERT, "size": 9, "symbol": "diamond"},
            hovertemplate="%{x}<br>%{y:.4g} (anomaly)<extra></extra>",
        )
    )


def _share_bars(
    xs: Any, widths: Any, ranges: Sequence[str], counts: np.ndarray, name: str, index: int
) -> go.Bar:
    total = counts.sum()
    shares = counts / total if total > 0 else np.zeros_like(counts)
    return go.Bar(
        x=xs,
        y=shares,
        width=widths,
        name=name,
        marker_color=PALETTE[index],
        opacity=0.65 if widths is not None else 1.0,
        customdata=np.column_stack([np.asarray(ranges, dtype=object), counts]),
        hovertemplate="%{customdata[0]}<br>%{y:.1%} (%{customdata[1]:,.0f} rows)"
        "<extra>" + name + "</extra>",
    )
