"""Drift statistics, their thresholds and the choice of test for a column.

Defaults are those of Evidently 0.7 (``DataDriftPreset``), so results read the same way:

* numeric column with more than ``few_unique`` (5) distinct values: Kolmogorov-Smirnov
  p-value (drift when p < 0.05) if the reference has at most ``small_reference_rows``
  (1,000) rows, else the Wasserstein-1 distance divided by the reference's standard
  deviation (population std, floored at 0.001; drift when >= 0.1);
* categorical column, or numeric with few distinct values: chi-square p-value
  (drift when p < 0.05) for small references, else the Jensen-Shannon distance
  (natural log, on the category frequencies; drift when >= 0.1);
* PSI on request (drift when >= 0.1, major when >= 0.2);
* the dataset drifts when at least half of its columns drift.

Where Quorum deliberately differs from Evidently:

* Chi-square is a two-sample test of homogeneity (Pearson, ``scipy.stats.chi2_contingency``
  on the 2 x K table of reference and current counts, categories empty in both dropped, no
  continuity correction). Evidently runs a one-sample goodness-of-fit test
  (``scipy.stats.chisquare``) that treats the reference proportions as exact; its sampling
  noise is then read as drift and undrifted columns are flagged once samples are large.
* PSI uses 10 bins at the reference's deciles (outer bins open-ended), so each bin holds a
  tenth of the reference. Evidently uses Sturges equal-width bins over both samples; on a
  skewed (lognormal) feature almost all mass falls into the first bins and a +0.5 sd shift
  goes unseen. Empty bins are floored at ``eps`` (1e-4) before the logarithm.
* Small references with a two-valued column use chi-square too (Evidently: a z-test of
  proportions); p-values drift when strictly below the threshold (Evidently's KS uses <=,
  which differs only at exact equality).
* Non-finite values (NaN, +-inf) are ignored by every test, as in Evidently; missing values
  are reported by data-quality checks instead.

The ``*_counts`` functions work on aligned histogram or category counts, as stored per
window at ingest. PSI, Jensen-Shannon and chi-square on counts equal the raw computation
when the bins are the same. Two are approximations, exact only for data on the bin grid:
``ks_counts`` takes the largest gap between the binned cumulative distributions, a lower
bound of the exact statistic (so its p-value is an upper bound) with the asymptotic
two-sided p-value (``scipy.stats.kstwo``); ``wasserstein_counts`` puts each bin's mass at
its centre.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sp_stats
from scipy.spatial import distance

from core.errors import InvalidInput

KINDS = ("numeric", "categorical")
TEST_NAMES = ("ks", "wasserstein", "chi2", "jensenshannon", "psi")
P_VALUE_TESTS = frozenset({"ks", "chi2"})
NUMERIC_ONLY_TESTS = frozenset({"ks", "wasserstein"})
TEST_LABELS: dict[str, str] = {
    "ks": "Kolmogorov-Smirnov p-value",
    "wasserstein": "Wasserstein distance (normalised by reference std)",
    "chi2": "chi-square p-value (two-sample)",
    "jensenshannon": "Jensen-Shannon distance",
    "psi": "population stability index (PSI)",
}
P_VALUE_TESTS = frozenset({"ks", "chi2"})
SHORT_TEST_LABELS: dict[str, str] = {
    "ks": "KS p-value",
    "wasserstein": "Wasserstein distance",
    "chi2": "chi-square p-value",
    "jensenshannon": "Jensen-Shannon distance",
    "psi": "PSI",
}
MIN_STD = 0.001
PSI_BINS = 10
PSI_EPS = 1e-4


@dataclass(frozen=True)
class DriftConfig:
    """Thresholds and test choices for one model; every field can be set per model."""

    wasserstein_threshold: float = 0.1
    ks_pvalue: float = 0.05
    chi2_pvalue: float = 0.05
    js_threshold: float = 0.1
    psi_threshold: float = 0.1
    psi_major: float = 0.2
    small_reference_rows: int = 1000
    few_unique: int = 5
    dataset_drift_share: float = 0.5
    overrides: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = _config_problems(self)
        if problems:
            raise InvalidInput(
                "The drift settings are not valid; correct them and save again.",
                details=problems,
            )
        object.__setattr__(self, "overrides", MappingProxyType(dict(self.overrides)))

    def to_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["overrides"] = dict(self.overrides)
        return values

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DriftConfig:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise InvalidInput(
                f"Unknown drift setting(s): {', '.join(unknown)}. "
                f"Known settings: {', '.join(known)}."
            )
        values: dict[str, Any] = {}
        for name, value in d.items():
            values[name] = _coerce_setting(name, known[name].type, value)
        return cls(**values)


def _coerce_setting(name: str, type_name: Any, value: Any) -> Any:
    try:
        if name == "overrides":
            return {str(k): str(v) for k, v in dict(value).items()}
        if type_name in ("int", int):
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError(value)
            return int(float(value))
        if isinstance(value, bool):
            raise ValueError(value)
        return float(value)
    except (TypeError, ValueError) as exc:
        kind = "a whole number" if type_name in ("int", int) else "a number"
        if name == "overrides":
            kind = "a mapping of column name to test name"
        raise InvalidInput(f"Drift setting '{name}' must be {kind}, got {value!r}.") from exc


def _config_problems(config: DriftConfig) -> list[str]:
    problems = []
    for name in ("ks_pvalue", "chi2_pvalue"):
        value = getattr(config, name)
        if not 0.0 < value < 1.0:
            problems.append(f"{name} must be between 0 and 1 (got {value})")
    for name in ("wasserstein_threshold", "js_threshold", "psi_threshold", "psi_major"):
        value = getattr(config, name)
        if not (np.isfinite(value) and value > 0):
            problems.append(f"{name} must be a positive number (got {value})")
    if config.psi_major < config.psi_threshold:
        problems.append(
            f"psi_major ({config.psi_major}) must be at least psi_threshold "
            f"({config.psi_threshold})"
        )
    if config.small_reference_rows < 1:
        problems.append(
            f"small_reference_rows must be at least 1 (got {config.small_reference_rows})"
        )
    if config.few_unique < 1:
        problems.append(f"few_unique must be at least 1 (got {config.few_unique})")
    if not 0.0 < config.dataset_drift_share <= 1.0:
        problems.append(
            f"dataset_drift_share must be above 0 and at most 1 (got {config.dataset_drift_share})"
        )
    for column, test in config.overrides.items():
        if test not in TEST_NAMES:
            problems.append(
                f"column '{column}': unknown test '{test}' (use one of {', '.join(TEST_NAMES)})"
            )
    return problems


@dataclass(frozen=True)
class FeatureDrift:
    """The drift verdict for one column, with the test used and why it was chosen."""

    column: str
    kind: str
    test: str
    reason: str
    value: float
    threshold: float
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "kind": self.kind,
            "test": self.test,
            "label": TEST_LABELS.get(self.test, self.test),
            "reason": self.reason,
            "value": float(self.value),
            "threshold": float(self.threshold),
            "drifted": bool(self.drifted),
        }


def threshold_for(test: str, config: DriftConfig) -> float:
    thresholds = {
        "ks": config.ks_pvalue,
        "chi2": config.chi2_pvalue,
        "wasserstein": config.wasserstein_threshold,
        "jensenshannon": config.js_threshold,
        "psi": config.psi_threshold,
    }
    if test not in thresholds:
        raise InvalidInput(f"Unknown drift test '{test}'. Use one of {', '.join(TEST_NAMES)}.")
    return thresholds[test]


def is_drifted(test: str, value: float, config: DriftConfig) -> tuple[bool, float]:
    """(drifted, threshold): p-values drift below the threshold, distances at or above it."""
    threshold = threshold_for(test, config)
    if not np.isfinite(value):
        return False, threshold
    if test in P_VALUE_TESTS:
        return bool(value < threshold), threshold
    return bool(value >= threshold), threshold


def psi_severity(value: float, config: DriftConfig) -> str:
    """'major', 'drift' or 'none' for a PSI value."""
    if value >= config.psi_major:
        return "major"
    if value >= config.psi_threshold:
        return "drift"
    return "none"


def choose_test(
    kind: str, n_unique: int, reference_rows: int, config: DriftConfig
) -> tuple[str, str]:
    """(test name, plain-words reason) by Evidently's default rules.

    ``n_unique`` counts the distinct non-missing values (Evidently counts them over the
    reference and current data together).
    """
    if kind not in KINDS:
        raise InvalidInput(f"Unknown column kind '{kind}'; use 'numeric' or 'categorical'.")
    small = reference_rows <= config.small_reference_rows
    size = (
        f"{reference_rows:,} reference rows "
        f"({'at most' if small else 'more than'} {config.small_reference_rows:,})"
    )
    if kind == "numeric" and n_unique > config.few_unique:
        what = f"numeric with {n_unique:,} distinct values and {size}"
        if small:
            return "ks", f"{what}: Kolmogorov-Smirnov test"
        return "wasserstein", f"{what}: Wasserstein distance"
    if kind == "numeric":
        what = (
            f"numeric with only {n_unique:,} distinct values "
            f"(at most {config.few_unique}) and {size}"
        )
    else:
        what = f"categorical with {n_unique:,} categories and {size}"
    if small:
        return "chi2", f"{what}: chi-square test"
    return "jensenshannon", f"{what}: Jensen-Shannon distance"


def _counts(name: str, values: ArrayLike) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise InvalidInput(f"The {name} must be a one-dimensional list of counts.")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise InvalidInput(f"The {name} must be finite and not negative.")
    return array


def _aligned(ref_counts: ArrayLike, cur_counts: ArrayLike) -> tuple[NDArray[np.float64], ...]:
    ref = _counts("reference counts", ref_counts)
    cur = _counts("current counts", cur_counts)
    if ref.shape != cur.shape:
        raise InvalidInput(
            f"Reference and current counts must use the same bins: got {ref.size} and "
            f"{cur.size} bins."
        )
    if ref.sum() <= 0:
        raise InvalidInput("The reference has no values in any bin; drift cannot be measured.")
    if cur.sum() <= 0:
        raise InvalidInput("The current data has no values in any bin; drift cannot be measured.")
    return ref, cur


def psi_counts(ref_counts: ArrayLike, cur_counts: ArrayLike, eps: float = PSI_EPS) -> float:
    """Population stability index; bin shares below ``eps`` are raised to ``eps``."""
    ref, cur = _aligned(ref_counts, cur_counts)
    p = np.maximum(ref / ref.sum(), eps)
    q = np.maximum(cur / cur.sum(), eps)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon_counts(ref_counts: ArrayLike, cur_counts: ArrayLike) -> float:
    """Jensen-Shannon distance (natural log) between the normalised counts."""
    ref, cur = _aligned(ref_counts, cur_counts)
    value = float(distance.jensenshannon(ref / ref.sum(), cur / cur.sum()))
    return 0.0 if np.isnan(value) else value


def chi2_counts(ref_counts: ArrayLike, cur_counts: ArrayLike) -> float:
    """p-value of Pearson's two-sample chi-square test of homogeneity on the 2 x K table."""
    ref, cur = _aligned(ref_counts, cur_counts)
    table = np.vstack([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    return float(sp_stats.chi2_contingency(table, correction=False).pvalue)


def ks_counts(ref_counts: ArrayLike, cur_counts: ArrayLike, n_ref: int, n_cur: int) -> float:
    """Approximate KS p-value from binned counts (largest gap of the binned CDFs)."""
    ref, cur = _aligned(ref_counts, cur_counts)
    if n_ref < 1 or n_cur < 1:
        raise InvalidInput("KS needs at least one reference and one current value.")
    gap = np.abs(np.cumsum(ref) / ref.sum() - np.cumsum(cur) / cur.sum())
    return ks_pvalue_asymptotic(float(gap.max()), n_ref, n_cur)


def ks_pvalue_asymptotic(statistic: float, n_ref: int, n_cur: int) -> float:
    """Two-sided asymptotic KS p-value, as ``scipy.stats.ks_2samp(method='asymp')``."""
    en = n_ref * n_cur / (n_ref + n_cur)
    return float(np.clip(sp_stats.kstwo.sf(statistic, np.round(en)), 0.0, 1.0))


def wasserstein_counts(
    bin_centers: ArrayLike, ref_counts: ArrayLike, cur_counts: ArrayLike, ref_std: float
) -> float:
    """Approximate normalised Wasserstein-1 distance, each bin's mass at its centre."""
    ref, cur = _aligned(ref_counts, cur_counts)
    centers = np.asarray(bin_centers, dtype=np.float64)
    if centers.shape != ref.shape:
        raise InvalidInput(
            f"Need one bin centre per bin: got {centers.size} centres for {ref.size} bins."
        )
    if not np.all(np.isfinite(centers)) or np.any(np.diff(centers) < 0):
        raise InvalidInput("Bin centres must be finite and in increasing order.")
    gap = np.abs(np.cumsum(ref) / ref.sum() - np.cumsum(cur) / cur.sum())
    distance_w1 = float(np.dot(gap[:-1], np.diff(centers)))
    return distance_w1 / normalising_std(ref_std)


def normalising_std(ref_std: float) -> float:
    """The reference std used to normalise Wasserstein, floored at 0.001 as in Evidently."""
    return max(float(ref_std), MIN_STD)


def reference_quantile_edges(reference: ArrayLike, n_bins: int = PSI_BINS) -> NDArray[np.float64]:
    """Interior PSI bin edges at the reference's quantiles (duplicates merged).

    Bin ``i`` holds ``edges[i-1] <= x < edges[i]``; the first and last bins are open.
    """
    values = np.asarray(reference, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise InvalidInput("The reference has no finite values to place PSI bins on.")
    return np.unique(np.quantile(values, np.arange(1, n_bins) / n_bins))


def bin_counts(
    values: ArrayLike, edges: ArrayLike, *, assume_sorted: bool = False
) -> NDArray[np.int64]:
    """Counts of ``values`` in the bins defined by interior ``edges`` (see above)."""
    array = np.asarray(values, dtype=np.float64)
    cuts = np.asarray(edges, dtype=np.float64)
    if not assume_sorted:
        array = np.sort(array[np.isfinite(array)])
    positions = np.searchsorted(array, cuts, side="left")
    return np.diff(np.concatenate(([0], positions, [array.size]))).astype(np.int64)


def format_p_value(p: float | None) -> str:
    """A p-value as people read it: "< 0.001" below one in a thousand, else three decimals
    ("0.042"); "—" when there is none."""
    if p is None or not math.isfinite(p):
        return "—"
    if p < 0.001:
        return "< 0.001"
    return f"{p:.3f}"


def format_statistic(test: str, value: float | None) -> str:
    """A drift test's value: p-values through `format_p_value`, distances to 3 significant
    digits."""
    if test in P_VALUE_TESTS:
        return format_p_value(value)
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.3g}"
