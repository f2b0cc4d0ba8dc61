"""Column-by-column drift between a reference and a current frame, from raw rows.

Each column is read once, without copying the frame: numeric columns are sorted once and
every numeric test works on the two sorted arrays (exact Wasserstein-1 from the merged
order, Kolmogorov-Smirnov with ``scipy.stats.ks_2samp``, PSI on reference deciles);
categorical columns are reduced to category counts first. The tests, thresholds and their
choice are described in :mod:`core.monitoring.stats`. Non-finite and missing values are
left out of every test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import stats as sp_stats

from core.errors import InvalidInput
from core.monitoring.stats import (
    NUMERIC_ONLY_TESTS,
    TEST_LABELS,
    DriftConfig,
    FeatureDrift,
    bin_counts,
    chi2_counts,
    choose_test,
    is_drifted,
    jensen_shannon_counts,
    normalising_std,
    psi_counts,
    reference_quantile_edges,
)

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class DatasetDrift:
    """Per-column verdicts and whether the dataset as a whole drifted."""

    columns: list[FeatureDrift]
    share_drifted: float
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": [c.to_dict() for c in self.columns],
            "share_drifted": float(self.share_drifted),
            "drifted": bool(self.drifted),
            "n_columns": len(self.columns),
            "n_drifted": sum(1 for c in self.columns if c.drifted),
        }


def column_kinds(df: pd.DataFrame, few_unique: int = 5) -> dict[str, str]:
    """'numeric' or 'categorical' for each column that drift can be measured on.

    Floats are numeric; integers are numeric unless they take at most ``few_unique``
    distinct values; booleans, strings and categories are categorical. Other columns
    (dates, mixed objects) are left out.
    """
    kinds: dict[str, str] = {}
    for name in df.columns:
        series = df[name]
        dtype = series.dtype
        if pd.api.types.is_bool_dtype(dtype):
            kinds[str(name)] = "categorical"
        elif pd.api.types.is_float_dtype(dtype):
            kinds[str(name)] = "numeric"
        elif pd.api.types.is_integer_dtype(dtype):
            few = series.nunique(dropna=True) <= few_unique
            kinds[str(name)] = "categorical" if few else "numeric"
        elif isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype):
            kinds[str(name)] = "categorical"
    return kinds


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    config: DriftConfig = DriftConfig(),
    kinds: Mapping[str, str] | None = None,
) -> DatasetDrift:
    """Drift of every column of ``kinds`` (default: all supported reference columns)."""
    chosen = dict(kinds) if kinds is not None else column_kinds(reference, config.few_unique)
    _check_columns(reference, current, chosen)
    results = [
        _column_drift(name, kind, reference[name], current[name], config)
        for name, kind in chosen.items()
    ]
    n_drifted = sum(1 for r in results if r.drifted)
    share = n_drifted / len(results)
    return DatasetDrift(results, share, share >= config.dataset_drift_share)


def _check_columns(
    reference: pd.DataFrame, current: pd.DataFrame, kinds: Mapping[str, str]
) -> None:
    if not kinds:
        raise InvalidInput(
            "No column to measure drift on: the reference has no numeric or categorical columns."
        )
    bad_kinds = [f"'{c}' ({k})" for c, k in kinds.items() if k not in ("numeric", "categorical")]
    if bad_kinds:
        raise InvalidInput(
            "Column kinds must be 'numeric' or 'categorical'.", details=[", ".join(bad_kinds)]
        )
    for frame, label in ((reference, "reference"), (current, "current")):
        missing = [c for c in kinds if c not in frame.columns]
        if missing:
            raise InvalidInput(
                f"The {label} data lacks column(s) {', '.join(repr(c) for c in missing)}; "
                "upload data with every feature column.",
            )
    if len(current) == 0:
        raise InvalidInput("The current data has no rows; drift needs at least one row.")
    if len(reference) == 0:
        raise InvalidInput("The reference data has no rows; upload reference data first.")


def _column_drift(
    name: str, kind: str, ref: pd.Series, cur: pd.Series, config: DriftConfig
) -> FeatureDrift:
    forced = config.overrides.get(name)
    if forced in NUMERIC_ONLY_TESTS and kind != "numeric":
        raise InvalidInput(
            f"Column '{name}' is categorical, so the test '{forced}' set for it cannot be used; "
            "choose chi2, jensenshannon or psi.",
        )
    if kind == "numeric":
        test, reason, value = _numeric_drift(name, ref, cur, config, forced)
    else:
        test, reason, value = _categorical_drift(name, ref, cur, config, forced)
    drifted, threshold = is_drifted(test, value, config)
    return FeatureDrift(name, kind, test, reason, value, threshold, drifted)


def _forced_reason(forced: str) -> str:
    return f"set in the model's drift settings: {TEST_LABELS[forced]}"


def _finite_sorted(name: str, series: pd.Series, label: str) -> Floats:
    try:
        if series.dtype == np.float64:
            values = series.to_numpy()
        else:
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"Column '{name}' in the {label} data is declared numeric but holds non-numbers."
        ) from exc
    finite = np.isfinite(values)
    if not finite.all():
        values = values[finite]
    if values.size == 0:
        raise InvalidInput(
            f"Column '{name}' has no values in the {label} data (all missing); "
            "drift cannot be measured on it."
        )
    return np.sort(values)


def _numeric_drift(
    name: str, ref: pd.Series, cur: pd.Series, config: DriftConfig, forced: str | None
) -> tuple[str, str, float]:
    rs = _finite_sorted(name, ref, "reference")
    cs = _finite_sorted(name, cur, "current")
    merged, is_ref = _merge_sorted(rs, cs)
    steps = np.diff(merged)
    n_unique = int(np.count_nonzero(steps)) + 1
    if forced:
        test, reason = forced, _forced_reason(forced)
    else:
        test, reason = choose_test("numeric", n_unique, rs.size, config)
    if test == "wasserstein":
        std = normalising_std(float(np.std(rs)))
        return test, reason, _wasserstein_merged(steps, is_ref, rs.size, cs.size) / std
    if test == "ks":
        return test, reason, float(sp_stats.ks_2samp(rs, cs).pvalue)
    if test == "psi":
        edges = reference_quantile_edges(rs)
        ref_counts = bin_counts(rs, edges, assume_sorted=True)
        cur_counts = bin_counts(cs, edges, assume_sorted=True)
        return test, reason, psi_counts(ref_counts, cur_counts)
    ref_counts, cur_counts = _numeric_counts(rs, cs, merged, steps)
    if test == "chi2":
        return test, reason, chi2_counts(ref_counts, cur_counts)
    return test, reason, jensen_shannon_counts(ref_counts, cur_counts)


def _merge_sorted(rs: Floats, cs: Floats) -> tuple[Floats, NDArray[np.bool_]]:
    """Merge two sorted arrays; also flag which merged values come from the reference.

    A stable sort of two sorted runs is a single linear merge.
    """
    both = np.concatenate((rs, cs))
    order = np.argsort(both, kind="stable")
    merged = both[order]
    is_ref = order < rs.size
    return merged, is_ref


def _wasserstein_merged(steps: Floats, is_ref: NDArray[np.bool_], n_ref: int, n_cur: int) -> float:
    """Exact Wasserstein-1 from the merged order, as ``scipy.stats.wasserstein_distance``.

    Between consecutive merged values both empirical CDFs are the running counts; where
    values tie the step is zero, so ties need no special handling.
    """
    cdf_ref = np.cumsum(is_ref[:-1], dtype=np.float64)
    cdf_cur = np.arange(1, is_ref.size, dtype=np.float64)
    cdf_cur -= cdf_ref
    cdf_ref /= n_ref
    cdf_cur /= n_cur
    cdf_ref -= cdf_cur
    np.abs(cdf_ref, out=cdf_ref)
    return float(np.dot(cdf_ref, steps))


def _numeric_counts(
    rs: Floats, cs: Floats, merged: Floats, steps: Floats
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Counts per distinct value, or Sturges bins over both samples, as Evidently bins.

    Numeric columns with more than 20 distinct reference values only get here when
    chi-square or Jensen-Shannon is forced.
    """
    if int(np.count_nonzero(np.diff(rs))) + 1 <= 20:
        values = merged[np.concatenate(([True], steps != 0))]
        edges = values[1:]
    else:
        n_bins = int(np.ceil(np.log2(merged.size))) + 1
        edges = np.linspace(merged[0], merged[-1], n_bins + 1)[1:-1]
    return bin_counts(rs, edges, assume_sorted=True), bin_counts(cs, edges, assume_sorted=True)


def _categorical_drift(
    name: str, ref: pd.Series, cur: pd.Series, config: DriftConfig, forced: str | None
) -> tuple[str, str, float]:
    ref_counts, cur_counts = _category_counts(name, ref, cur)
    if forced:
        test, reason = forced, _forced_reason(forced)
    else:
        test, reason = choose_test("categorical", ref_counts.size, int(ref_counts.sum()), config)
    if test == "chi2":
        return test, reason, chi2_counts(ref_counts, cur_counts)
    if test == "psi":
        return test, reason, psi_counts(ref_counts, cur_counts)
    return test, reason, jensen_shannon_counts(ref_counts, cur_counts)


def _category_counts(
    name: str, ref: pd.Series, cur: pd.Series
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Aligned counts over the categories seen in either sample (missing values left out)."""
    ref_vc = _value_counts(ref)
    cur_vc = _value_counts(cur)
    for vc, label in ((ref_vc, "reference"), (cur_vc, "current")):
        if vc.sum() == 0:
            raise InvalidInput(
                f"Column '{name}' has no values in the {label} data (all missing); "
                "drift cannot be measured on it."
            )
    keys = ref_vc.index.union(cur_vc.index, sort=False)
    ref_counts = ref_vc.reindex(keys, fill_value=0).to_numpy(dtype=np.int64)
    cur_counts = cur_vc.reindex(keys, fill_value=0).to_numpy(dtype=np.int64)
    return ref_counts, cur_counts


def _value_counts(series: pd.Series) -> pd.Series:
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        per_code = np.bincount(codes[codes >= 0], minlength=len(series.cat.categories))
        used = per_code > 0
        return pd.Series(per_code[used], index=series.cat.categories[used])
    counts = series.value_counts(dropna=True, sort=False)
    return counts[counts > 0]
