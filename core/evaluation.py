"""Evaluate a fitted scikit-learn model on a table; compare versions; check business goals.

Every result is plain JSON: Python floats, ints, strings, lists and dicts, with None for
anything undefined (NaN, a metric that cannot be computed).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from core.errors import InvalidInput

BINARY = "binary_classification"
MULTICLASS = "multiclass_classification"
REGRESSION = "regression"
TASKS = (BINARY, MULTICLASS, REGRESSION)

MAX_CURVE_POINTS = 200
MAX_SCATTER_POINTS = 2000
MAX_HISTOGRAM_BINS = 50
MAX_SLICE_GROUPS = 50
MAX_CLASSES_FOR_INFERENCE = 20
MISSING_GROUP = "(missing)"

METRIC_LABELS: dict[str, str] = {
    "accuracy": "Accuracy",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1",
    "roc_auc": "ROC AUC",
    "log_loss": "Log loss",
    "mae": "MAE",
    "rmse": "RMSE",
    "r2": "R²",
    "selection_rate": "Selection rate",
    "tpr": "True positive rate",
    "fpr": "False positive rate",
}
HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "roc_auc": True,
    "log_loss": False,
    "mae": False,
    "rmse": False,
    "r2": True,
}
POINT_METRICS = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc", "r2"})
OPERATORS: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    ">=": ("at least", lambda value, target: value >= target),
    "<=": ("at most", lambda value, target: value <= target),
    ">": ("above", lambda value, target: value > target),
    "<": ("below", lambda value, target: value < target),
}


def infer_task(y: pd.Series) -> str:
    """Guess the task from the target: two values -> binary, few labels -> multiclass."""
    present = y.dropna()
    distinct = present.nunique()
    if distinct < 2:
        raise InvalidInput(
            f"The target column '{y.name}' has {distinct} distinct value(s); "
            "a model needs at least two outcomes to be evaluated."
        )
    if distinct == 2:
        return BINARY
    if not pd.api.types.is_numeric_dtype(present) or pd.api.types.is_bool_dtype(present):
        return MULTICLASS
    values = present.to_numpy(dtype=float)
    whole = bool(np.all(values == np.round(values)))
    return MULTICLASS if whole and distinct <= MAX_CLASSES_FOR_INFERENCE else REGRESSION


def evaluate(
    estimator: Any,
    df: pd.DataFrame,
    target: str,
    task: str,
    *,
    sensitive: str | None = None,
    positive_label: Any = None,
) -> dict[str, Any]:
    """Score a trusted, in-process `estimator` on `df` (uploaded models are scored in the
    sandbox and evaluated with `evaluate_predictions`)."""
    _check_task(task)
    _require_columns(df, target, sensitive)
    X = _features(estimator, df, target, sensitive)
    y_pred = _predict(estimator, X)
    proba = _probabilities(estimator, X) if task != REGRESSION else None
    learned = getattr(estimator, "classes_", None)
    return evaluate_predictions(
        df,
        target,
        task,
        y_pred=y_pred,
        proba=proba,
        classes=learned,
        sensitive=sensitive,
        positive_label=positive_label,
    )


def feature_frame(
    df: pd.DataFrame, feature_names: list[str] | None, target: str, sensitive: str | None
) -> tuple[pd.DataFrame, bool]:
    """The columns a model is given, and whether it is given them as a bare array."""
    if feature_names is not None:
        missing = [n for n in feature_names if n not in df.columns]
        if missing:
            raise InvalidInput(
                "The evaluation data lacks model features: " + ", ".join(map(str, missing)) + "."
            )
        return df[list(feature_names)], False
    dropped = [target] + ([sensitive] if sensitive is not None else [])
    return df.drop(columns=dropped), True


def thresholded(
    prediction: np.ndarray, proba: np.ndarray | None, classes: Any, threshold: float | None
) -> np.ndarray:
    """A binary classifier's predictions at the version's decision threshold: its positive
    (second) class where that class's probability is at least `threshold`. Unchanged when no
    threshold is set, the model gives no probabilities or has other than two classes."""
    if threshold is None or proba is None or classes is None or len(classes) != 2:
        return np.asarray(prediction)
    if proba.ndim != 2 or proba.shape[1] != 2:
        return np.asarray(prediction)
    labels = np.asarray(list(classes), dtype=object)
    chosen = np.where(proba[:, 1] >= threshold, labels[1], labels[0])
    known = np.asarray(prediction)
    return chosen.astype(known.dtype) if known.dtype != object else chosen


def check_threshold(value: Any) -> float | None:
    """A decision threshold as entered: empty for none, else a probability strictly between
    0 and 1."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"The decision threshold {value!r} is not a number; give a probability such as 0.3."
        ) from None
    if not 0.0 < number < 1.0:
        raise InvalidInput(
            f"The decision threshold {number:g} is outside (0, 1); give a probability such as 0.3."
        )
    return number


def evaluate_predictions(
    df: pd.DataFrame,
    target: str,
    task: str,
    *,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    classes: Any,
    sensitive: str | None = None,
    positive_label: Any = None,
) -> dict[str, Any]:
    """Metrics, curves, slices and fairness as JSON, from a model's predictions on `df`."""
    _check_task(task)
    _require_columns(df, target, sensitive)
    y_true = df[target].to_numpy()
    y_pred = np.asarray(y_pred)
    notes: list[str] = []
    result: dict[str, Any] = {"task": task, "n_rows": len(df), "target": target, "notes": notes}
    if task == REGRESSION:
        result.update(_regression_result(y_true, y_pred))
    else:
        known = None if classes is None else np.asarray(classes)
        result.update(_classification_result(known, proba, y_true, y_pred, task, positive_label))
        notes.extend(result.pop("_notes"))
    if sensitive is not None:
        groups = df[sensitive]
        result["slices"] = _slices(groups, y_true, y_pred, result, notes)
        result["fairness"] = _fairness(result["slices"], sensitive, task)
    else:
        result["slices"] = []
        result["fairness"] = None
    result["predictions_hash"] = _array_hash(y_pred)
    result["data_hash"] = data_hash(df)
    return _plain(result)


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise InvalidInput(f"Unknown task {task!r}; use one of {', '.join(TASKS)}.")


def compare(candidate: Mapping[str, Any], champion: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per metric both results have: values, delta, whether better, and a sentence."""
    cand, champ = _metrics_of(candidate), _metrics_of(champion)
    shared = [m for m in METRIC_LABELS if m in cand and m in champ]
    shared += sorted(m for m in cand.keys() & champ.keys() if m not in METRIC_LABELS)
    return [_comparison_row(m, cand[m], champ[m]) for m in shared]


def goal_met(metrics: Mapping[str, Any], metric: str, operator: str, target: float) -> bool | None:
    """True or False when the metric is known, None when it is missing or undefined."""
    check = _operator(operator)[1]
    value = _metrics_of(metrics).get(metric)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return bool(check(float(value), float(target)))


def describe_goal(metric: str, operator: str, target: float, value: float | None) -> str:
    """Plain words: "Recall is 0.83, goal is at least 0.80: met." """
    words, check = _operator(operator)
    label = METRIC_LABELS.get(metric, metric)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{label} is not available, goal is {words} {target:.2f}: cannot tell."
    value_text, target_text = _goal_numbers(float(value), float(target))
    verdict = "met" if check(float(value), float(target)) else "not met"
    return f"{label} is {value_text}, goal is {words} {target_text}: {verdict}."


def data_hash(df: pd.DataFrame) -> str:
    """SHA-256 of the frame with columns in name order, independent of the row index."""
    ordered = df[sorted(df.columns, key=str)]
    digest = hashlib.sha256()
    digest.update(json.dumps([str(c) for c in ordered.columns]).encode())
    digest.update(pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _require_columns(df: pd.DataFrame, target: str, sensitive: str | None) -> None:
    for role, column in (("target", target), ("sensitive", sensitive)):
        if column is not None and column not in df.columns:
            raise InvalidInput(f"The {role} column '{column}' is not in the evaluation data.")
    if len(df) == 0:
        raise InvalidInput("The evaluation data has no rows.")
    if df[target].isna().any():
        raise InvalidInput(
            f"The target column '{target}' has empty values; every row needs a known outcome."
        )


def _features(estimator: Any, df: pd.DataFrame, target: str, sensitive: str | None) -> Any:
    names = getattr(estimator, "feature_names_in_", None)
    frame, as_array = feature_frame(
        df, None if names is None else [str(n) for n in names], target, sensitive
    )
    if names is not None:
        frame = df[list(names)]
    return frame.to_numpy() if as_array else frame


def _predict(estimator: Any, X: Any) -> np.ndarray:
    try:
        return np.asarray(estimator.predict(X))
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise InvalidInput(
            f"The model could not score the evaluation data ({exc}). Check that the columns "
            "and their types match what the model was trained on."
        ) from exc


def _probabilities(estimator: Any, X: Any) -> np.ndarray | None:
    if not hasattr(estimator, "predict_proba"):
        return None
    try:
        return np.asarray(estimator.predict_proba(X), dtype=float)
    except (AttributeError, NotImplementedError, ValueError, TypeError):
        return None


def _classification_result(
    learned: np.ndarray | None,
    proba: np.ndarray | None,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    task: str,
    positive: Any,
) -> dict[str, Any]:
    classes = _classes(learned, y_true, y_pred)
    notes: list[str] = []
    if proba is None:
        notes.append(
            "The model gives no probabilities (no predict_proba), so ROC AUC, log loss and "
            "the ROC, precision-recall and calibration curves are not available."
        )
    elif proba.shape[1] != len(classes):
        proba = None
        notes.append("The model's probabilities do not match its classes; curves are skipped.")
    unknown = sorted(set(y_true.tolist()) - set(classes.tolist()), key=str)
    if unknown:
        notes.append(
            "The target has labels the model never learned: "
            + ", ".join(map(str, unknown[:5]))
            + "; they count as errors."
        )
    if task == BINARY:
        return _binary_result(y_true, y_pred, classes, proba, positive, notes)
    return _multiclass_result(y_true, y_pred, classes, proba, notes)


def _classes(learned: np.ndarray | None, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    if learned is not None:
        return np.asarray(learned)
    return np.asarray(sorted(set(y_true.tolist()) | set(y_pred.tolist()), key=str))


def _positive_label(classes: np.ndarray, positive: Any) -> Any:
    if positive is not None:
        if positive not in classes.tolist():
            raise InvalidInput(
                f"The positive label {positive!r} is not one of the model's classes: "
                + ", ".join(map(str, classes.tolist()))
                + "."
            )
        return positive
    if len(classes) != 2:
        raise InvalidInput(
            f"A binary evaluation needs a model with two classes; this one has {len(classes)}."
        )
    return classes.tolist()[1]


def _binary_result(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: np.ndarray,
    proba: np.ndarray | None,
    positive: Any,
    notes: list[str],
) -> dict[str, Any]:
    pos = _positive_label(classes, positive)
    scores = None if proba is None else proba[:, classes.tolist().index(pos)]
    metrics = _binary_metrics(y_true, y_pred, pos, scores)
    metrics["log_loss"] = _log_loss(y_true, proba, classes)
    if scores is not None and metrics["roc_auc"] is None:
        notes.append("ROC AUC needs both outcomes in the evaluation data; only one is present.")
    return {
        "positive_label": pos,
        "metrics": metrics,
        "confusion_matrix": _confusion(y_true, y_pred, classes),
        "curves": None if scores is None else _binary_curves(y_true == pos, scores),
        "_notes": notes,
    }


def _binary_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, pos: Any, scores: np.ndarray | None
) -> dict[str, Any]:
    actual, predicted = y_true == pos, y_pred == pos
    return {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "precision": skm.precision_score(actual, predicted, zero_division=0),
        "recall": skm.recall_score(actual, predicted, zero_division=0),
        "f1": skm.f1_score(actual, predicted, zero_division=0),
        "roc_auc": _roc_auc(actual, scores),
    }


def _roc_auc(actual: np.ndarray, scores: np.ndarray | None) -> float | None:
    if scores is None or len(np.unique(actual)) < 2:
        return None
    return float(skm.roc_auc_score(actual, scores))


def _log_loss(y_true: np.ndarray, proba: np.ndarray | None, classes: np.ndarray) -> Any:
    if proba is None or not set(y_true.tolist()) <= set(classes.tolist()):
        return None
    return skm.log_loss(y_true, proba, labels=classes)


def _multiclass_result(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: np.ndarray,
    proba: np.ndarray | None,
    notes: list[str],
) -> dict[str, Any]:
    labels = classes.tolist()
    metrics = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "precision": skm.precision_score(
            y_true, y_pred, labels=labels, average="macro", zero_division=0
        ),
        "recall": skm.recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
        "f1": skm.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
        "roc_auc": _multiclass_auc(y_true, proba, classes, notes),
        "log_loss": _log_loss(y_true, proba, classes),
    }
    return {
        "positive_label": None,
        "metrics": metrics,
        "confusion_matrix": _confusion(y_true, y_pred, classes),
        "curves": None,
        "_notes": notes,
    }


def _multiclass_auc(
    y_true: np.ndarray, proba: np.ndarray | None, classes: np.ndarray, notes: list[str]
) -> float | None:
    if proba is None:
        return None
    if set(np.unique(y_true).tolist()) != set(classes.tolist()):
        notes.append("ROC AUC needs every class in the evaluation data; some are absent.")
        return None
    return float(skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro"))


def _confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray) -> dict[str, Any]:
    labels = classes.tolist()
    matrix = skm.confusion_matrix(y_true, y_pred, labels=labels)
    return {"labels": labels, "matrix": matrix.tolist()}


def _binary_curves(actual: np.ndarray, scores: np.ndarray) -> dict[str, Any] | None:
    if len(np.unique(actual)) < 2:
        return None
    fpr, tpr, _ = skm.roc_curve(actual, scores)
    precision, recall, _ = skm.precision_recall_curve(actual, scores)
    prob_true, prob_pred = calibration_curve(actual, scores, n_bins=10, strategy="uniform")
    roc_keep = _curve_indices(len(fpr))
    pr_keep = _curve_indices(len(precision))
    return {
        "roc": {"fpr": fpr[roc_keep], "tpr": tpr[roc_keep]},
        "pr": {"precision": precision[pr_keep], "recall": recall[pr_keep]},
        "calibration": {"prob_pred": prob_pred, "prob_true": prob_true},
    }


def _curve_indices(length: int, limit: int = MAX_CURVE_POINTS) -> np.ndarray:
    if length <= limit:
        return np.arange(length)
    return np.unique(np.linspace(0, length - 1, limit).round().astype(int))


def _regression_result(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    actual = _as_float(y_true, "target")
    predicted = _as_float(y_pred, "prediction")
    return {
        "positive_label": None,
        "metrics": _regression_metrics(actual, predicted),
        "confusion_matrix": None,
        "curves": None,
        "residuals": _residuals(actual, predicted),
    }


def _as_float(values: np.ndarray, what: str) -> np.ndarray:
    try:
        return values.astype(float)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"A regression needs a numeric {what}; found values such as {values[0]!r}."
        ) from exc


def _regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    return {
        "mae": skm.mean_absolute_error(actual, predicted),
        "rmse": skm.root_mean_squared_error(actual, predicted),
        "r2": skm.r2_score(actual, predicted) if len(actual) > 1 else None,
    }


def _residuals(actual: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    residual = actual - predicted
    edges = np.histogram_bin_edges(residual, bins="auto")
    if len(edges) > MAX_HISTOGRAM_BINS + 1:
        edges = np.histogram_bin_edges(residual, bins=MAX_HISTOGRAM_BINS)
    counts, edges = np.histogram(residual, bins=edges)
    sample = _sample_indices(len(actual), MAX_SCATTER_POINTS)
    return {
        "histogram": {"edges": edges, "counts": counts},
        "pred_vs_actual": {"actual": actual[sample], "predicted": predicted[sample]},
    }


def _sample_indices(length: int, limit: int) -> np.ndarray:
    if length <= limit:
        return np.arange(length)
    return np.sort(np.random.default_rng(0).choice(length, size=limit, replace=False))


def _slices(
    groups: pd.Series,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    result: Mapping[str, Any],
    notes: list[str],
) -> list[dict[str, Any]]:
    keys = groups.astype(object).where(groups.notna(), MISSING_GROUP).astype(str).to_numpy()
    names = sorted(set(keys.tolist()))
    if len(names) > MAX_SLICE_GROUPS:
        raise InvalidInput(
            f"The sensitive column '{groups.name}' has {len(names)} distinct values; choose a "
            f"column with at most {MAX_SLICE_GROUPS} groups (bin numeric values first)."
        )
    if result["task"] == MULTICLASS:
        notes.append("Selection and error rates per group are given for binary models only.")
    return [_slice(name, y_true[keys == name], y_pred[keys == name], result) for name in names]


def _slice(
    name: str, y_true: np.ndarray, y_pred: np.ndarray, result: Mapping[str, Any]
) -> dict[str, Any]:
    row: dict[str, Any] = {"group": name, "n": len(y_true)}
    task = result["task"]
    if task == REGRESSION:
        row["metrics"] = _regression_metrics(y_true.astype(float), y_pred.astype(float))
        return row
    if task == MULTICLASS:
        row["metrics"] = {"accuracy": skm.accuracy_score(y_true, y_pred)}
        row.update(selection_rate=None, tpr=None, fpr=None)
        return row
    pos = result["positive_label"]
    row["metrics"] = _binary_metrics(y_true, y_pred, pos, None)
    del row["metrics"]["roc_auc"]
    row.update(_group_rates(y_true == pos, y_pred == pos))
    return row


def _group_rates(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    positives, negatives = actual.sum(), (~actual).sum()
    return {
        "selection_rate": float(predicted.mean()),
        "tpr": float((actual & predicted).sum() / positives) if positives else None,
        "fpr": float((~actual & predicted).sum() / negatives) if negatives else None,
    }


def _fairness(slices: list[dict[str, Any]], sensitive: str, task: str) -> dict[str, Any] | None:
    if task != BINARY:
        return None
    tpr_gap = _spread(s["tpr"] for s in slices)
    fpr_gap = _spread(s["fpr"] for s in slices)
    gaps = [g for g in (tpr_gap, fpr_gap) if g is not None]
    return {
        "sensitive": sensitive,
        "demographic_parity_difference": _spread(s["selection_rate"] for s in slices),
        "equalized_odds_difference": max(gaps) if gaps else None,
        "true_positive_rate_difference": tpr_gap,
        "false_positive_rate_difference": fpr_gap,
    }


def _spread(values: Any) -> float | None:
    known = [v for v in values if v is not None]
    return float(max(known) - min(known)) if known else None


def _array_hash(values: np.ndarray) -> str:
    if values.dtype.kind in "biuf":
        payload = np.ascontiguousarray(values).tobytes()
    else:
        payload = json.dumps([str(v) for v in values.tolist()]).encode()
    return hashlib.sha256(values.dtype.kind.encode() + payload).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def _metrics_of(result: Mapping[str, Any]) -> Mapping[str, Any]:
    inner = result.get("metrics")
    return inner if isinstance(inner, Mapping) else result


def _comparison_row(metric: str, candidate: Any, champion: Any) -> dict[str, Any]:
    label = METRIC_LABELS.get(metric, metric)
    row = {"name": metric, "label": label, "candidate": candidate, "champion": champion}
    if candidate is None or champion is None:
        missing = "candidate" if candidate is None else "champion"
        return row | {"delta": None, "better": None, "sentence": f"{label}: no value for {missing}"}
    delta = float(candidate) - float(champion)
    direction = HIGHER_IS_BETTER.get(metric)
    better = None if delta == 0 or direction is None else (delta > 0) == direction
    return row | {
        "delta": delta,
        "better": better,
        "sentence": _delta_sentence(metric, label, delta, float(champion), better),
    }


def _delta_sentence(
    metric: str, label: str, delta: float, champion: float, better: bool | None
) -> str:
    """ "Recall rose 3.1 points (better)", "Log loss fell 12.0% (better; lower is better)"."""
    if delta == 0:
        return f"{label} unchanged"
    verb = "rose" if delta > 0 else "fell"
    if metric in POINT_METRICS:
        points = abs(delta) * 100
        size = f"{points:.1f} points" if points >= 0.05 else "less than 0.1 points"
    else:
        size = f"{abs(delta) / abs(champion) * 100:.1f}%" if champion else _fmt(abs(delta))
    verdict = {True: "better", False: "worse", None: ""}[better]
    if verdict and HIGHER_IS_BETTER.get(metric) is False:
        verdict += "; lower is better"
    return f"{label} {verb} {size}" + (f" ({verdict})" if verdict else "")


def _fmt(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 1:
        return f"{value:.1f}"
    return "0" if magnitude == 0 else f"{value:.3g}"


def _goal_numbers(value: float, target: float) -> tuple[str, str]:
    for decimals in (2, 3, 4, 6):
        value_text, target_text = f"{value:.{decimals}f}", f"{target:.{decimals}f}"
        if value_text != target_text or value == target:
            return value_text, target_text
    return repr(value), repr(target)


def _operator(operator: str) -> tuple[str, Callable[[float, float], bool]]:
    if operator not in OPERATORS:
        raise InvalidInput(
            f"Unknown goal operator {operator!r}; use one of {', '.join(OPERATORS)}."
        )
    return OPERATORS[operator]
