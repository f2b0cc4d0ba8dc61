"""Mergeable per-window aggregates, counted at ingest on the reference's bins, and drift from them.

The monitoring page reads only these aggregates (stored as JSON), never raw inference rows.
Aggregating a batch chunk by chunk and merging gives the same result as aggregating it whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from core.errors import InvalidInput
from core.monitoring.performance import add_sums, cbpe_sums, label_sums
from core.monitoring.profile import (
    NUMERIC,
    PER_VALUE,
    PREDICTION,
    SCORE,
    FeatureReference,
    ReferenceProfile,
    category_labels,
    numeric_bin_index,
)
from core.monitoring.stats import (
    TEST_LABELS,
    DriftConfig,
    FeatureDrift,
    chi2_counts,
    choose_test,
    is_drifted,
    jensen_shannon_counts,
    ks_counts,
    ks_pvalue_asymptotic,
    normalising_std,
    psi_counts,
)

WINDOWS = {"D": "day", "W": "week (starting Monday)", "M": "month"}


@dataclass
class ColumnAggregate:
    """One column in one window: counts on the reference bins and summary sums."""

    count: int = 0
    missing: int = 0
    type_errors: int = 0
    counts: list[int] = field(default_factory=list)
    unseen: int = 0
    below: int = 0
    above: int = 0
    bin_sums: list[float] = field(default_factory=list)
    sum: float = 0.0
    sumsq: float = 0.0
    min: float | None = None
    max: float | None = None

    @property
    def out_of_range(self) -> int:
        return self.below + self.above

    def merge(self, other: ColumnAggregate) -> ColumnAggregate:
        return ColumnAggregate(
            count=self.count + other.count,
            missing=self.missing + other.missing,
            type_errors=self.type_errors + other.type_errors,
            counts=_add_lists(self.counts, other.counts),
            unseen=self.unseen + other.unseen,
            below=self.below + other.below,
            above=self.above + other.above,
            bin_sums=_add_lists(self.bin_sums, other.bin_sums),
            sum=self.sum + other.sum,
            sumsq=self.sumsq + other.sumsq,
            min=_pick(min, self.min, other.min),
            max=_pick(max, self.max, other.max),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnAggregate:
        return cls(**dict(data))


@dataclass
class WindowAggregate:
    """Everything monitoring shows for one window of one model version."""

    window_start: date
    n_rows: int = 0
    columns: dict[str, ColumnAggregate] = field(default_factory=dict)
    duplicate_ids: int = 0
    unexpected_columns: list[str] = field(default_factory=list)
    cbpe: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)

    def merge(self, other: WindowAggregate) -> WindowAggregate:
        if other.window_start != self.window_start:
            raise InvalidInput(
                f"Cannot merge the window of {other.window_start} into {self.window_start}."
            )
        columns = dict(self.columns)
        for name, column in other.columns.items():
            columns[name] = columns[name].merge(column) if name in columns else column
        return WindowAggregate(
            window_start=self.window_start,
            n_rows=self.n_rows + other.n_rows,
            columns=columns,
            duplicate_ids=self.duplicate_ids + other.duplicate_ids,
            unexpected_columns=sorted(set(self.unexpected_columns) | set(other.unexpected_columns)),
            cbpe=add_sums(self.cbpe, other.cbpe),
            labels=add_sums(self.labels, other.labels),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "window_start": self.window_start.isoformat(),
            "n_rows": self.n_rows,
            "columns": {name: column.to_dict() for name, column in self.columns.items()},
            "duplicate_ids": self.duplicate_ids,
            "unexpected_columns": list(self.unexpected_columns),
            "cbpe": dict(self.cbpe),
            "labels": dict(self.labels),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowAggregate:
        return cls(
            window_start=date.fromisoformat(data["window_start"]),
            n_rows=int(data["n_rows"]),
            columns={k: ColumnAggregate.from_dict(v) for k, v in data["columns"].items()},
            duplicate_ids=int(data.get("duplicate_ids", 0)),
            unexpected_columns=list(data.get("unexpected_columns", [])),
            cbpe=dict(data.get("cbpe", {})),
            labels=dict(data.get("labels", {})),
        )


def _add_lists(a: list[Any], b: list[Any]) -> list[Any]:
    if not a:
        return list(b)
    if not b:
        return list(a)
    return [x + y for x, y in zip(a, b, strict=True)]


def _pick(choose: Any, a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return float(choose(a, b))


class SeenIds:
    """Hashes of the prediction ids already seen in a batch (8 bytes per id, sorted)."""

    def __init__(self) -> None:
        self._hashes = np.empty(0, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self._hashes)

    def check_and_add(self, hashes: np.ndarray) -> np.ndarray:
        """True for each hash seen before (earlier in this call or in an earlier call)."""
        position = np.searchsorted(self._hashes, hashes)
        seen_before = np.zeros(len(hashes), dtype=bool)
        inside = position < len(self._hashes)
        seen_before[inside] = self._hashes[position[inside]] == hashes[inside]
        repeated = pd.Series(hashes).duplicated(keep="first").to_numpy()
        merged = np.sort(np.concatenate([self._hashes, np.unique(hashes)]), kind="stable")
        keep = np.ones(len(merged), dtype=bool)
        keep[1:] = merged[1:] != merged[:-1]
        self._hashes = merged[keep]
        return seen_before | repeated


def merge_windows(
    a: Mapping[date, WindowAggregate], b: Mapping[date, WindowAggregate]
) -> dict[date, WindowAggregate]:
    merged = dict(a)
    for start, window in b.items():
        merged[start] = merged[start].merge(window) if start in merged else window
    return merged


def window_starts(timestamps: pd.Series, window: str = "D") -> np.ndarray:
    """First day of each row's window as numpy datetime64[D]."""
    if window not in WINDOWS:
        raise InvalidInput(f"Unknown window '{window}'. Use one of: {', '.join(WINDOWS)}.")
    parsed = pd.to_datetime(timestamps, errors="coerce", utc=True)
    bad = parsed.isna().to_numpy()
    if bad.any():
        first = np.flatnonzero(bad)[:3].tolist()
        raise InvalidInput(
            f"{int(bad.sum())} row(s) have a missing or unreadable timestamp "
            f"(first at row(s) {', '.join(str(i + 1) for i in first)}).",
            details=["Give every row a timestamp such as 2026-01-31T12:00:00Z."],
        )
    days = parsed.dt.tz_convert(None).to_numpy().astype("datetime64[D]")
    if window == "M":
        return days.astype("datetime64[M]").astype("datetime64[D]")
    if window == "W":
        weekday = (days.astype(np.int64) + 3) % 7
        return days - weekday.astype("timedelta64[D]")
    return days


def window_last_day(start: date, window: str = "D") -> date:
    """The last day a window starting on `start` covers."""
    if window == "W":
        return start + timedelta(days=6)
    if window == "M":
        following = date(start.year + start.month // 12, start.month % 12 + 1, 1)
        return following - timedelta(days=1)
    return start


def partial_windows(
    starts: Sequence[date], window: str, data_until: date | None, today: date
) -> list[bool]:
    """For each window start, whether the window is still partial: its last day is after the
    latest day any data was seen (`data_until`), or not over yet (today or later)."""
    covered = (
        min(data_until, today - timedelta(days=1)) if data_until else today - timedelta(days=1)
    )
    return [window_last_day(start, window) > covered for start in starts]


def _check_columns(chunk: pd.DataFrame, profile: ReferenceProfile, timestamp_col: str) -> None:
    required = [timestamp_col, *profile.features]
    missing = [name for name in required if name not in chunk.columns]
    if missing:
        raise InvalidInput(
            "The data lacks column(s) the model needs: " + ", ".join(missing) + ".",
            details=["Add them, or check the header spelling and the model's feature list."],
        )


@dataclass
class _Grouping:
    index: np.ndarray
    n_windows: int
    bounds: np.ndarray | None = None  # where each window starts, when rows come in window order


def _group_rows(starts: np.ndarray) -> tuple[np.ndarray, _Grouping]:
    """Distinct window starts and each row's window number, in linear time."""
    days = starts.astype(np.int64)
    if len(days) == 0:
        return starts[:0], _Grouping(index=np.zeros(0, dtype=np.int64), n_windows=0)
    first = days.min()
    offsets = days - first
    present = np.flatnonzero(np.bincount(offsets))
    lookup = np.zeros(present[-1] + 1, dtype=np.int64)
    lookup[present] = np.arange(len(present))
    distinct = (present + first).astype("datetime64[D]")
    index = lookup[offsets]
    bounds = None
    if (index[1:] >= index[:-1]).all():
        bounds = np.concatenate([[0], np.flatnonzero(index[1:] != index[:-1]) + 1])
    return distinct, _Grouping(index=index, n_windows=len(present), bounds=bounds)


def _window_extremes(
    values: np.ndarray, valid: np.ndarray, group: _Grouping
) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest valid value per window (inf and -inf where a window has none):
    one reduction per window run when rows come in window order (the usual, time-ordered
    file), else unbuffered per-row updates."""
    if group.bounds is None:
        lows = np.full(group.n_windows, np.inf)
        highs = np.full(group.n_windows, -np.inf)
        np.minimum.at(lows, group.index[valid], values[valid])
        np.maximum.at(highs, group.index[valid], values[valid])
        return lows, highs
    kept = np.where(valid, values, np.nan)
    lows = np.fmin.reduceat(kept, group.bounds)
    highs = np.fmax.reduceat(kept, group.bounds)
    return np.where(np.isnan(lows), np.inf, lows), np.where(np.isnan(highs), -np.inf, highs)


def _window_counts(group: _Grouping, mask: np.ndarray) -> np.ndarray:
    return np.bincount(group.index[mask], minlength=group.n_windows)


def _histograms(bins: np.ndarray, n_bins: int, group: _Grouping, mask: np.ndarray) -> np.ndarray:
    flat = group.index[mask] * n_bins + bins
    counts = np.bincount(flat, minlength=group.n_windows * n_bins)
    return counts.reshape(group.n_windows, n_bins)


def _numbers(column: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, missing, type_errors) of a column that should hold numbers."""
    missing = column.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        values = column.to_numpy(dtype=float, na_value=np.nan)
    else:
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    type_errors = ~missing & ~np.isfinite(values)
    return values, missing, type_errors


def _numeric_columns(
    column: pd.Series, ref: FeatureReference, group: _Grouping
) -> list[ColumnAggregate]:
    values, missing, type_errors = _numbers(column)
    valid = np.isfinite(values)
    x = values[valid]
    edges = np.asarray(ref.edges)
    bins = numeric_bin_index(edges, x)
    n_bins = len(edges) + 1
    flat = group.index[valid] * n_bins + bins
    size = group.n_windows * n_bins
    hist = np.bincount(flat, minlength=size).reshape(group.n_windows, n_bins)
    bin_sums = np.bincount(flat, weights=x, minlength=size).reshape(group.n_windows, n_bins)
    lows, highs = _window_extremes(values, valid, group)
    # invalid rows weigh 0.0: the same sums, added in the same order, without two gathers
    kept = np.where(valid, values, 0.0)
    sums = np.bincount(group.index, weights=kept, minlength=group.n_windows)
    sumsq = np.bincount(group.index, weights=kept * kept, minlength=group.n_windows)
    missing_n = _window_counts(group, missing)
    errors_n = _window_counts(group, type_errors)
    return [
        ColumnAggregate(
            count=int(hist[w].sum()),
            missing=int(missing_n[w]),
            type_errors=int(errors_n[w]),
            counts=hist[w].tolist(),
            below=int(hist[w, 0]),
            above=int(hist[w, -1]),
            bin_sums=bin_sums[w].tolist(),
            sum=float(sums[w]),
            sumsq=float(sumsq[w]),
            min=float(lows[w]) if np.isfinite(lows[w]) else None,
            max=float(highs[w]) if np.isfinite(highs[w]) else None,
        )
        for w in range(group.n_windows)
    ]


def _category_lookup(labels: list[str], ref: FeatureReference) -> tuple[np.ndarray, np.ndarray]:
    position = {name: i for i, name in enumerate(ref.categories[:-1])}
    known = set(ref.known)
    other = len(ref.categories) - 1
    lookup = np.array([position.get(label, other) for label in labels], dtype=np.int64)
    unseen = np.array([label not in known for label in labels], dtype=bool)
    return lookup, unseen


def _categorical_columns(
    column: pd.Series, ref: FeatureReference, group: _Grouping
) -> list[ColumnAggregate]:
    codes, labels = category_labels(column)
    lookup, unseen_label = _category_lookup(labels, ref)
    valid = codes >= 0
    bins = lookup[codes[valid]]
    hist = _histograms(bins, len(ref.categories), group, valid)
    unseen = np.zeros(len(codes), dtype=bool)
    unseen[valid] = unseen_label[codes[valid]]
    unseen_n = _window_counts(group, unseen)
    missing_n = _window_counts(group, ~valid)
    return [
        ColumnAggregate(
            count=int(hist[w].sum()),
            missing=int(missing_n[w]),
            counts=hist[w].tolist(),
            unseen=int(unseen_n[w]),
        )
        for w in range(group.n_windows)
    ]


def _column_aggregates(
    column: pd.Series, ref: FeatureReference, group: _Grouping
) -> list[ColumnAggregate]:
    if ref.kind == NUMERIC:
        return _numeric_columns(column, ref, group)
    return _categorical_columns(column, ref, group)


def _duplicates(
    chunk: pd.DataFrame, id_col: str, group: _Grouping, seen: SeenIds | None
) -> np.ndarray:
    if id_col not in chunk.columns:
        return np.zeros(group.n_windows, dtype=np.int64)
    ids = chunk[id_col]
    if seen is None:
        repeated = ids.duplicated(keep="first").to_numpy()
    else:
        hashes = pd.util.hash_pandas_object(ids.astype(str), index=False).to_numpy()
        repeated = seen.check_and_add(hashes)
    return _window_counts(group, repeated)


def aggregate_chunk(
    chunk: pd.DataFrame,
    profile: ReferenceProfile,
    *,
    timestamp_col: str = "timestamp",
    window: str = "D",
    id_col: str = "prediction_id",
    prediction_col: str = "prediction",
    score_col: str = "score",
    label_col: str = "label",
    seen_ids: SeenIds | None = None,
    count_duplicates: bool = True,
) -> dict[date, WindowAggregate]:
    """Aggregates of one chunk of inference rows, one per window the rows fall in.

    Pass the same `seen_ids` for every chunk of a batch to count duplicate ids across chunks;
    `count_duplicates=False` where the ids are known to be distinct (the server's ingest: its
    id index refuses a batch that repeats one).
    """
    _check_columns(chunk, profile, timestamp_col)
    starts, group = _group_rows(window_starts(chunk[timestamp_col], window))
    columns: dict[str, list[ColumnAggregate]] = {
        name: _column_aggregates(chunk[name], ref, group) for name, ref in profile.features.items()
    }
    outputs = {PREDICTION: (prediction_col, profile.prediction), SCORE: (score_col, profile.score)}
    for key, (name, ref) in outputs.items():
        if ref is not None and name in chunk.columns:
            columns[key] = _column_aggregates(chunk[name], ref, group)
    duplicates = (
        _duplicates(chunk, id_col, group, seen_ids)
        if count_duplicates
        else np.zeros(group.n_windows, dtype=np.int64)
    )
    known = {timestamp_col, id_col, prediction_col, score_col, label_col, *profile.features}
    unexpected = sorted(str(c) for c in chunk.columns if c not in known)
    cbpe = _cbpe_by_window(chunk, profile, group, prediction_col, score_col)
    labels = _labels_by_window(chunk, profile, group, prediction_col, score_col, label_col)
    counts = np.bincount(group.index, minlength=group.n_windows)
    return {
        pd.Timestamp(start).date(): WindowAggregate(
            window_start=pd.Timestamp(start).date(),
            n_rows=int(counts[w]),
            columns={name: per_window[w] for name, per_window in columns.items()},
            duplicate_ids=int(duplicates[w]),
            unexpected_columns=unexpected,
            cbpe=cbpe[w],
            labels=labels[w],
        )
        for w, start in enumerate(starts)
    }


def _cbpe_by_window(
    chunk: pd.DataFrame,
    profile: ReferenceProfile,
    group: _Grouping,
    prediction_col: str,
    score_col: str,
) -> list[dict[str, Any]]:
    if profile.task != "classification" or score_col not in chunk.columns:
        return [{} for _ in range(group.n_windows)]
    scores = pd.to_numeric(chunk[score_col], errors="coerce").to_numpy(dtype=float)
    predicted = _predicted_positive(chunk, profile, prediction_col, scores)
    return [
        cbpe_sums(scores[group.index == w], predicted[group.index == w])
        for w in range(group.n_windows)
    ]


def _predicted_positive(
    chunk: pd.DataFrame, profile: ReferenceProfile, prediction_col: str, scores: np.ndarray
) -> np.ndarray:
    if prediction_col in chunk.columns and profile.positive_label is not None:
        return (chunk[prediction_col].astype(str) == profile.positive_label).to_numpy()
    return scores >= 0.5


def _labels_by_window(
    chunk: pd.DataFrame,
    profile: ReferenceProfile,
    group: _Grouping,
    prediction_col: str,
    score_col: str,
    label_col: str,
) -> list[dict[str, Any]]:
    needed = {label_col, prediction_col}
    if profile.task is None or not needed <= set(chunk.columns):
        return [{} for _ in range(group.n_windows)]
    frame = chunk[chunk[label_col].notna()]
    kept = group.index[chunk[label_col].notna().to_numpy()]
    has_score = score_col in frame.columns
    result: list[dict[str, Any]] = []
    for w in range(group.n_windows):
        rows = frame[kept == w]
        if rows.empty:
            result.append({})
            continue
        score = rows[score_col] if has_score else None
        result.append(
            label_sums(
                rows[label_col], rows[prediction_col], score, profile.task, profile.positive_label
            )
        )
    return result


def aggregate_labels(
    joined: pd.DataFrame,
    profile: ReferenceProfile,
    *,
    timestamp_col: str = "timestamp",
    window: str = "D",
    prediction_col: str = "prediction",
    score_col: str = "score",
    label_col: str = "label",
) -> dict[date, WindowAggregate]:
    """Label-only aggregates for labels joined to their predictions (windowed by prediction time).

    Merge them into the stored windows with `merge_windows`.
    """
    starts, group = _group_rows(window_starts(joined[timestamp_col], window))
    labels = _labels_by_window(joined, profile, group, prediction_col, score_col, label_col)
    return {
        pd.Timestamp(start).date(): WindowAggregate(
            window_start=pd.Timestamp(start).date(), labels=labels[w]
        )
        for w, start in enumerate(starts)
    }


def _drift_value(test: str, ref: FeatureReference, column: ColumnAggregate) -> float:
    ref_counts = np.asarray(ref.counts, dtype=float)
    cur_counts = np.asarray(column.counts, dtype=float)
    if test == "psi":
        return psi_counts(ref.psi_counts(ref_counts), ref.psi_counts(cur_counts))
    if test == "jensenshannon":
        return jensen_shannon_counts(ref_counts, cur_counts)
    if test == "chi2":
        return chi2_counts(ref_counts, cur_counts)
    if test == "ks" and ref.binning == PER_VALUE:
        statistic = binned_ks_statistic(ref_counts, cur_counts)
        return ks_pvalue_asymptotic(statistic, ref.n, column.count)
    if test == "ks":
        return ks_counts(ref_counts, cur_counts, ref.n, column.count)
    return binned_wasserstein(ref, column) / normalising_std(ref.std or 0.0)


def binned_ks_statistic(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """KS statistic when every bin starts at a reference value and holds no other one.

    Then the reference CDF is flat inside a bin, so the largest gap in it is at one of its
    ends; both ends are known from the counts, which makes the statistic exact for current
    values that do not tie with reference values.
    """
    ref_cdf = np.cumsum(ref_counts) / ref_counts.sum()
    cur_cdf = np.cumsum(cur_counts) / cur_counts.sum()
    at_edges = np.abs(ref_cdf - cur_cdf).max()
    shifted = np.abs(ref_cdf[1:] - cur_cdf[:-1]).max() if len(ref_cdf) > 1 else 0.0
    return float(max(at_edges, shifted))


def window_centers(column: ColumnAggregate, fallback: np.ndarray) -> np.ndarray:
    """Mean of the window's values in each bin (the fallback where the bin is empty)."""
    counts = np.asarray(column.counts, dtype=float)
    sums = np.asarray(column.bin_sums, dtype=float)
    return np.where(counts > 0, sums / np.maximum(counts, 1), fallback)


def binned_wasserstein(ref: FeatureReference, column: ColumnAggregate) -> float:
    """Wasserstein-1 with each sample's mass in a bin placed at that sample's mean in the bin."""
    centers = np.asarray(ref.centers, dtype=float)
    return weighted_wasserstein(
        centers, window_centers(column, centers), np.asarray(ref.counts), np.asarray(column.counts)
    )


def weighted_wasserstein(
    u: np.ndarray, v: np.ndarray, u_weights: np.ndarray, v_weights: np.ndarray
) -> float:
    """Wasserstein-1 between two weighted point sets, as `scipy.stats.wasserstein_distance`."""
    u_order, v_order = np.argsort(u), np.argsort(v)
    u, v = u[u_order], v[v_order]
    points = np.sort(np.concatenate([u, v]))
    u_cum = np.concatenate([[0.0], np.cumsum(u_weights[u_order], dtype=float)])
    v_cum = np.concatenate([[0.0], np.cumsum(v_weights[v_order], dtype=float)])
    u_cdf = u_cum[np.searchsorted(u, points[:-1], side="right")] / u_cum[-1]
    v_cdf = v_cum[np.searchsorted(v, points[:-1], side="right")] / v_cum[-1]
    return float(np.dot(np.abs(u_cdf - v_cdf), np.diff(points)))


def _drift_test(
    name: str, ref: FeatureReference, reference_rows: int, config: DriftConfig
) -> tuple[str, str]:
    if name in config.overrides:
        test = config.overrides[name]
        return test, f"set in the model's drift settings: {TEST_LABELS[test]}"
    return choose_test(ref.kind, ref.n_unique, reference_rows, config)


def column_drift(
    name: str,
    ref: FeatureReference,
    column: ColumnAggregate,
    config: DriftConfig,
) -> FeatureDrift | None:
    """Drift of one column in one window, or None when the window has no values for it."""
    if column.count == 0 or ref.n == 0:
        return None
    test, reason = _drift_test(name, ref, ref.n, config)
    if ref.kind != NUMERIC and test in ("ks", "wasserstein"):
        raise InvalidInput(
            f"Column '{name}' is categorical, so the test '{test}' set for it cannot be used; "
            "choose chi2, jensenshannon or psi.",
        )
    value = _drift_value(test, ref, column)
    drifted, threshold = is_drifted(test, value, config)
    return FeatureDrift(name, ref.kind, test, reason, value, threshold, drifted)


def _monitored(profile: ReferenceProfile) -> dict[str, FeatureReference]:
    columns = dict(profile.features)
    if profile.prediction is not None:
        columns[PREDICTION] = profile.prediction
    if profile.score is not None:
        columns[SCORE] = profile.score
    return columns


def window_drift(
    profile: ReferenceProfile, agg: WindowAggregate, config: DriftConfig
) -> list[FeatureDrift]:
    """Drift of every feature, of the prediction and of the score in one window, from its
    counts only (the dataset share counts features alone: see `dataset_drift_share`)."""
    results = []
    for name, ref in _monitored(profile).items():
        column = agg.columns.get(name)
        if column is None:
            continue
        result = column_drift(name, ref, column, config)
        if result is not None:
            results.append(result)
    return results


def dataset_drift_share(results: list[FeatureDrift]) -> float:
    """Share of drifted feature columns (the prediction is reported but not counted)."""
    features = [r for r in results if r.column not in (PREDICTION, SCORE)]
    if not features:
        return 0.0
    return sum(r.drifted for r in features) / len(features)


def drift_table(
    profile: ReferenceProfile, windows: Mapping[date, WindowAggregate], config: DriftConfig
) -> pd.DataFrame:
    """Long form, one row per window and column: the heat map's data."""
    rows = [
        {"window": start, **result.to_dict()}
        for start in sorted(windows)
        for result in window_drift(profile, windows[start], config)
    ]
    columns = ["window", "column", "kind", "test", "label", "reason", "value", "threshold"]
    table = pd.DataFrame(rows, columns=[*columns, "drifted"])
    return table.rename(columns={"column": "feature"})


def dataset_drift_by_window(table: pd.DataFrame, config: DriftConfig) -> pd.DataFrame:
    """Per window: share of drifted features and whether the dataset drifted."""
    features = table[~table["feature"].isin([PREDICTION, SCORE])]
    share = features.groupby("window")["drifted"].mean().rename("drift_share").reset_index()
    share["dataset_drifted"] = share["drift_share"] >= config.dataset_drift_share
    return share
