"""The pack's charts, drawn by the server with matplotlib (no browser) as PNG images; the renderer
embeds them as data: URIs."""

from __future__ import annotations

import io
from typing import Any

from core import evaluation
from core.packdata import Chart

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")


# --- charts ---------------------------------------------------------------------------------


def _figure(title: str) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), dpi=110)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    return fig, ax


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None}, bbox_inches="tight")
    return buffer.getvalue()


def _legend_beside(ax: Any) -> None:
    """The legend to the right of the plot area, never over a data point."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8)


def draw_charts(
    result: dict[str, Any],
    champion: dict[str, Any] | None,
    number: int,
    champion_number: int | None,
) -> list[Chart]:
    """The ROC curve, metrics and fairness charts of a version's evaluation, beside the
    champion's when there is one."""
    charts = []
    named = [(f"v{number}", result)]
    if champion is not None:
        named.append((f"v{champion_number} (champion)", champion))
    if (result.get("curves") or {}).get("roc"):
        charts.append(_roc_chart(named))
    metrics = {k: v for k, v in (result.get("metrics") or {}).items() if v is not None}
    if metrics:
        charts.append(_metric_chart(metrics, champion, number, champion_number))
    if result.get("slices"):
        charts.append(_fairness_chart(result))
    return charts


def _roc_chart(named: list[tuple[str, dict[str, Any]]]) -> Chart:
    fig, ax = _figure("ROC curve")
    ax.plot([0, 1], [0, 1], linestyle="--", color="#7f7f7f", label="Chance")
    for i, (name, res) in enumerate(named):
        curve = (res.get("curves") or {}).get("roc")
        if not curve:
            continue
        auc = (res.get("metrics") or {}).get("roc_auc")
        label = name + ("" if auc is None else f" (AUC {auc:.3f})")
        ax.plot(curve["fpr"], curve["tpr"], color=PALETTE[i], label=label)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    _legend_beside(ax)
    return Chart("roc", "ROC curve", _png(fig))


def _metric_chart(
    metrics: dict[str, float],
    champion: dict[str, Any] | None,
    number: int,
    champion_number: int | None,
) -> Chart:
    fig, ax = _figure("Metrics")
    labels = [evaluation.METRIC_LABELS.get(k, k) for k in metrics]
    positions = list(range(len(labels)))
    if champion is None:
        ax.bar(positions, list(metrics.values()), color=PALETTE[0])
    else:
        other = champion.get("metrics") or {}
        width = 0.4
        ax.bar(
            [p - width / 2 for p in positions],
            list(metrics.values()),
            width,
            color=PALETTE[0],
            label=f"v{number} (candidate)",
        )
        ax.bar(
            [p + width / 2 for p in positions],
            [other.get(k) or 0 for k in metrics],
            width,
            color=PALETTE[1],
            label=f"v{champion_number} (champion)",
        )
        _legend_beside(ax)
    ax.set_xticks(positions, labels, rotation=20, fontsize=8)
    return Chart("metrics", "Metrics", _png(fig))


def _fairness_chart(result: dict[str, Any]) -> Chart:
    slices = result["slices"]
    binary = any(s.get("selection_rate") is not None for s in slices)
    metric = "selection_rate" if binary else next(iter(slices[0]["metrics"]), "")
    label = "Selection rate" if binary else evaluation.METRIC_LABELS.get(metric, metric)
    sensitive = (result.get("fairness") or {}).get("sensitive", "group")
    fig, ax = _figure(f"{label} by {sensitive}")
    values = [(s.get(metric) if binary else s["metrics"].get(metric)) or 0.0 for s in slices]
    ax.bar([str(s["group"]) for s in slices], values, color=PALETTE[2])
    if binary:
        recall = [s["metrics"].get("recall") or 0.0 for s in slices]
        ax.plot([str(s["group"]) for s in slices], recall, "o", color=PALETTE[5], label="Recall")
        _legend_beside(ax)
    ax.set_ylabel(label)
    return Chart("fairness", f"{label} by {sensitive}", _png(fig))
