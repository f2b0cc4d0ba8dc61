"""Anomalies on metric series: a causal robust z-score against a rolling median and MAD."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

MAD_TO_SD = 0.6745
MEAN_AD_TO_SD = 1.253314


def _robust_z(value: float, history: np.ndarray) -> float:
    median = float(np.median(history))
    deviation = np.abs(history - median)
    mad = float(np.median(deviation))
    if mad > 0:
        return MAD_TO_SD * (value - median) / mad
    mean_ad = float(deviation.mean())
    if mean_ad > 0:
        return (value - median) / (MEAN_AD_TO_SD * mean_ad)
    return 0.0 if value == median else float(np.sign(value - median) * np.inf)


def robust_zscores(
    values: Sequence[float] | np.ndarray, window: int = 14, min_history: int = 3
) -> np.ndarray:
    """Modified z-score of each point against the median and MAD of the `window` points before it.

    Causal: point t uses only points before t. NaN where the value is missing or fewer than
    `min_history` earlier values exist. A change after a perfectly constant history is +-inf.
    """
    series = np.asarray(values, dtype=float)
    scores = np.full(len(series), np.nan)
    for t in range(len(series)):
        history = series[max(0, t - window) : t]
        history = history[np.isfinite(history)]
        if np.isfinite(series[t]) and len(history) >= max(min_history, 1):
            scores[t] = _robust_z(series[t], history)
    return scores


def flag_anomalies(
    series: pd.Series, *, threshold: float = 3.5, window: int = 14, min_history: int = 7
) -> pd.Series:
    """True where a point's robust z-score exceeds `threshold` in absolute value."""
    scores = robust_zscores(series.to_numpy(dtype=float), window, min_history)
    flags = np.abs(np.nan_to_num(scores, nan=0.0)) > threshold
    return pd.Series(flags, index=series.index, name=series.name)


def flag_complete_anomalies(
    series: pd.Series, partial: Sequence[bool] | np.ndarray, **options: float
) -> pd.Series:
    """Like `flag_anomalies`, but a partial window (one still filling, such as a week whose
    last days have no data yet) is never flagged and never serves as history for another:
    its count and averages are not comparable with those of complete windows."""
    mask = np.asarray(partial, dtype=bool)
    complete = series.astype(float).where(~mask)
    flags = flag_anomalies(complete, **options)  # type: ignore[arg-type]
    return flags & ~mask
