"""Performance per window from additive sums: realised from joined labels, estimated (CBPE) without.

Every quantity stored per window is a sum, so windows and chunks merge by addition and the
metrics are computed from the sums alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, Protocol

import numpy as np
import pandas as pd

from core.errors import InvalidInput

TASKS = ("classification", "regression")
CLASSIFICATION_METRICS = [
    "accuracy",
    "precision",
    "recall",
    "f1",
    "log_loss",
    "roc_auc",
    "pr_auc",
    "brier",
    "ks",
    "gini",
]
SCORE_METRICS = ("roc_auc", "pr_auc", "brier", "ks", "gini", "log_loss")
REGRESSION_METRICS = ["mae", "rmse", "mape", "r2"]
SCORE_BINS = 1000


def add_sums(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Key-wise sum of two (nested) dictionaries of numbers."""
    total = dict(a)
    for key, value in b.items():
        if key not in total:
            total[key] = value
        elif isinstance(value, Mapping):
            total[key] = add_sums(total[key], value)
        else:
            total[key] = total[key] + value
    return total


def as_labels(values: Any) -> np.ndarray:
    """Class labels as text, so 1, 1.0 and "1" are the same class."""
    series = pd.Series(values)
    if pd.api.types.is_float_dtype(series):
        finite = series.dropna()
        if len(finite) and np.all(np.mod(finite.to_numpy(), 1) == 0):
            return finite.astype(np.int64).astype(str).reindex(series.index).to_numpy()
    return series.astype(str).to_numpy()


def outcome_text(values: Any, regression: bool) -> np.ndarray:
    """Predictions or labels as stored and joined: numbers as text for a regressor, class
    labels as text otherwise (shared by ingest and jobs that aggregate outside Quorum)."""
    if regression:
        numbers = pd.to_numeric(pd.Series(values), errors="coerce")
        return numbers.astype(str).to_numpy()
    return np.asarray(as_labels(values), dtype=object)


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise InvalidInput(f"Unknown task '{task}'. Use one of: {', '.join(TASKS)}.")


def _class_sums(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, dict[str, int]]:
    classes: dict[str, dict[str, int]] = {}
    labels = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    for label in labels:
        classes[label] = {
            "true": int(np.sum(y_true == label)),
            "pred": int(np.sum(y_pred == label)),
            "correct": int(np.sum((y_true == label) & (y_pred == label))),
        }
    return classes


def _binary_sums(
    y_true: np.ndarray, y_pred: np.ndarray, score: Any, positive_label: str
) -> dict[str, float]:
    actual = y_true == positive_label
    predicted = y_pred == positive_label
    sums: dict[str, Any] = {
        "tp": int(np.sum(actual & predicted)),
        "fp": int(np.sum(~actual & predicted)),
        "tn": int(np.sum(~actual & ~predicted)),
        "fn": int(np.sum(actual & ~predicted)),
    }
    if score is not None:
        p = pd.to_numeric(pd.Series(score), errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(p)
        eps = np.finfo(float).eps
        positive = actual[ok]
        p = np.clip(p[ok], eps, 1 - eps)
        losses = np.where(positive, -np.log(p), -np.log1p(-p))
        sums["log_loss_sum"] = float(losses.sum())
        sums["n_scored"] = int(ok.sum())
        sums["brier_sum"] = float(((p - positive) ** 2).sum())
        sums["hist_pos"] = score_histogram(p[positive])
        sums["hist_neg"] = score_histogram(p[~positive])
    return sums


def score_bins(p: np.ndarray) -> np.ndarray:
    """Bin of each probability on SCORE_BINS equal bins of [0, 1] (1.0 in the last bin)."""
    clipped = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    return np.minimum((clipped * SCORE_BINS).astype(np.int64), SCORE_BINS - 1)


def score_histogram(p: np.ndarray) -> dict[str, int]:
    """Sparse counts per score bin, keyed by the bin number as text (mergeable with add_sums)."""
    counts = np.bincount(score_bins(p), minlength=SCORE_BINS)
    present = np.flatnonzero(counts)
    return {str(int(b)): int(counts[b]) for b in present}


def _dense(histogram: Mapping[str, float]) -> np.ndarray:
    dense = np.zeros(SCORE_BINS, dtype=float)
    for key, value in histogram.items():
        dense[int(key)] += float(value)
    return dense


def ranking_metrics(pos: np.ndarray, neg: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC (average precision), KS and Gini from per-class counts on score bins.

    Rows in the same bin count as ties: half a pair for ROC AUC, one threshold for PR AUC.
    """
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    if n_pos <= 0 or n_neg <= 0:
        return {}
    above = n_pos - np.cumsum(pos)
    auc = float(np.dot(neg, above + 0.5 * pos) / (n_pos * n_neg))
    tp = np.cumsum(pos[::-1])
    fp = np.cumsum(neg[::-1])
    seen = (pos[::-1] + neg[::-1]) > 0
    precision = tp[seen] / (tp[seen] + fp[seen])
    recall = tp[seen] / n_pos
    pr_auc = float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))
    ks = float(np.max(np.abs(np.cumsum(pos) / n_pos - np.cumsum(neg) / n_neg)))
    return {"roc_auc": auc, "pr_auc": pr_auc, "ks": ks, "gini": 2 * auc - 1}


def label_sums(
    y_true: Any, y_pred: Any, score: Any, task: str, positive_label: str | None = None
) -> dict[str, Any]:
    """Additive sums for the task's metrics over labelled rows.

    Classification: per-class true/predicted/correct counts; with a positive label also
    tp/fp/tn/fn and, given the positive-class probability, the log-loss sum.
    Regression: n, sum_abs_err, sum_sq_err, sum_y, sum_y2.
    """
    _check_task(task)
    if task == "regression":
        y = pd.to_numeric(pd.Series(y_true), errors="coerce").to_numpy(dtype=float)
        pred = pd.to_numeric(pd.Series(y_pred), errors="coerce").to_numpy(dtype=float)
        known = np.isfinite(y) & np.isfinite(pred)
        y, pred = y[known], pred[known]
        error = y - pred
        nonzero = y != 0
        return {
            "n": len(y),
            "sum_abs_err": float(np.abs(error).sum()),
            "sum_sq_err": float((error * error).sum()),
            "sum_y": float(y.sum()),
            "sum_y2": float((y * y).sum()),
            "sum_ape": float(np.abs(error[nonzero] / y[nonzero]).sum()),
            "n_ape": int(nonzero.sum()),
        }
    truth, predicted = as_labels(y_true), as_labels(y_pred)
    sums: dict[str, Any] = {
        "n": len(truth),
        "correct": int(np.sum(truth == predicted)),
        "classes": _class_sums(truth, predicted),
    }
    if positive_label is not None:
        sums.update(_binary_sums(truth, predicted, score, str(positive_label)))
    return sums


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def _f1(precision: float, recall: float) -> float:
    return _ratio(2 * precision * recall, precision + recall)


def _macro(classes: Mapping[str, Mapping[str, int]]) -> dict[str, float]:
    precisions = [_ratio(c["correct"], c["pred"]) for c in classes.values()]
    recalls = [_ratio(c["correct"], c["true"]) for c in classes.values()]
    f1s = [_ratio(2 * c["correct"], c["true"] + c["pred"]) for c in classes.values()]
    return {
        "precision": float(np.mean(precisions)) if precisions else 0.0,
        "recall": float(np.mean(recalls)) if recalls else 0.0,
        "f1": float(np.mean(f1s)) if f1s else 0.0,
    }


def _classification_metrics(sums: Mapping[str, Any]) -> dict[str, float]:
    metrics = {"n": float(sums["n"]), "accuracy": _ratio(sums["correct"], sums["n"])}
    if "tp" in sums:
        precision = _ratio(sums["tp"], sums["tp"] + sums["fp"])
        recall = _ratio(sums["tp"], sums["tp"] + sums["fn"])
        metrics.update(precision=precision, recall=recall, f1=_f1(precision, recall))
    else:
        metrics.update(_macro(sums.get("classes", {})))
    if sums.get("n_scored"):
        metrics["log_loss"] = sums["log_loss_sum"] / sums["n_scored"]
        if "brier_sum" in sums:
            metrics["brier"] = sums["brier_sum"] / sums["n_scored"]
    if "hist_pos" in sums or "hist_neg" in sums:
        pos, neg = _dense(sums.get("hist_pos", {})), _dense(sums.get("hist_neg", {}))
        metrics.update(ranking_metrics(pos, neg))
    return metrics


def _regression_metrics(sums: Mapping[str, Any]) -> dict[str, float]:
    n = sums["n"]
    total = sums["sum_y2"] - sums["sum_y"] ** 2 / n if n else 0.0
    metrics = {
        "n": float(n),
        "mae": _ratio(sums["sum_abs_err"], n),
        "rmse": float(np.sqrt(_ratio(sums["sum_sq_err"], n))),
        "r2": 1 - sums["sum_sq_err"] / total if total > 0 else float("nan"),
    }
    if sums.get("n_ape"):
        metrics["mape"] = sums["sum_ape"] / sums["n_ape"]
    return metrics


def metrics_from_sums(sums: Mapping[str, Any], task: str) -> dict[str, float]:
    """The task's metrics from `label_sums` output (merged over any rows or windows)."""
    _check_task(task)
    if not sums or not sums.get("n"):
        return {}
    if task == "regression":
        return _regression_metrics(sums)
    return _classification_metrics(sums)


def cbpe_sums(scores: Any, predicted_positive: Any) -> dict[str, Any]:
    """What CBPE needs per window: counts and probability sums split by predicted class.

    `scores` are calibrated probabilities of the positive class.
    """
    p = np.asarray(scores, dtype=float)
    predicted = np.asarray(predicted_positive, dtype=bool)
    ok = np.isfinite(p)
    p, predicted = np.clip(p[ok], 0.0, 1.0), predicted[ok]
    return {
        "n": int(len(p)),
        "n_pred_pos": int(predicted.sum()),
        "sum_p_pred_pos": float(p[predicted].sum()),
        "sum_p_pred_neg": float(p[~predicted].sum()),
        "brier_sum": float((p * (1 - p)).sum()),
        "hist": score_histogram(p),
    }


def cbpe_estimate(
    score_sums_or_scores: Mapping[str, Any] | Any,
    predicted_positive: Any = None,
    *,
    threshold: float = 0.5,
) -> dict[str, float]:
    """Expected accuracy, precision, recall and F1 from calibrated probabilities (NannyML CBPE).

    Takes `cbpe_sums` output or raw probabilities (with the predicted class, else p >= threshold).
    Each row is a positive with probability p, so the expected confusion counts are sums of p.
    """
    if isinstance(score_sums_or_scores, Mapping):
        sums = score_sums_or_scores
    else:
        p = np.asarray(score_sums_or_scores, dtype=float)
        predicted = p >= threshold if predicted_positive is None else predicted_positive
        sums = cbpe_sums(p, predicted)
    if not sums.get("n"):
        return {}
    n, n_pos = sums["n"], sums["n_pred_pos"]
    tp, fn = sums["sum_p_pred_pos"], sums["sum_p_pred_neg"]
    fp, tn = n_pos - tp, (n - n_pos) - fn
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    estimate = {
        "n": float(n),
        "accuracy": _ratio(tp + tn, n),
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
    }
    if "brier_sum" in sums:
        estimate["brier"] = sums["brier_sum"] / n
    if "hist" in sums:
        counts = _dense(sums["hist"])
        centres = (np.arange(SCORE_BINS) + 0.5) / SCORE_BINS
        estimate.update(ranking_metrics(counts * centres, counts * (1 - centres)))
    return estimate


class LabelledWindow(Protocol):
    """What performance_table reads of a window aggregate."""

    @property
    def n_rows(self) -> int: ...

    @property
    def labels(self) -> Mapping[str, Any]: ...

    @property
    def cbpe(self) -> Mapping[str, Any]: ...


def performance_table(windows: Mapping[date, LabelledWindow], task: str) -> pd.DataFrame:
    """Per window: realised metrics where labels were joined, else the CBPE estimate."""
    _check_task(task)
    names = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    rows = []
    for start in sorted(windows):
        window = windows[start]
        realised = metrics_from_sums(window.labels, task)
        estimated = {} if realised or task == "regression" else cbpe_estimate(window.cbpe)
        source = "realised" if realised else "estimated" if estimated else "none"
        metrics = realised or estimated
        row: dict[str, Any] = {
            "window": start,
            "source": source,
            "n_rows": window.n_rows,
            "n_labelled": int(window.labels.get("n", 0)),
        }
        row.update({name: metrics.get(name, float("nan")) for name in names})
        rows.append(row)
    return pd.DataFrame(rows, columns=["window", "source", "n_rows", "n_labelled", *names])
