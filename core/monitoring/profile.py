"""Reference profile of a model version: the fixed bins every production window is counted on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from core.errors import InvalidInput
from core.monitoring.stats import reference_quantile_edges

FINE_BINS = 50
PSI_BINS = 10
TOP_CATEGORIES = 50
MAX_KNOWN_CATEGORIES = 10_000
OTHER = "__other__"
NUMERIC = "numeric"
CATEGORICAL = "categorical"
PREDICTION = "__prediction__"
SCORE = "__score__"
COLUMN_LABELS = {PREDICTION: "Prediction (model output)", SCORE: "Score (model output)"}

SMALL_REFERENCE_ROWS = 1000
DISCRETE = "discrete"
PER_VALUE = "per_value"
QUANTILE = "quantile"


@dataclass
class FeatureReference:
    """One column of the reference: its bins, its counts on them and its summary statistics.

    Numeric bins are `[below min] + interior bins + [above max]`; see `numeric_bin_index`.
    Categorical bins are `categories` (top categories, then `__other__`).
    """

    name: str
    kind: str
    n: int
    missing_rate: float
    n_unique: int
    edges: list[float] = field(default_factory=list)
    binning: str = ""
    centers: list[float] = field(default_factory=list)
    psi_edges: list[float] = field(default_factory=list)
    psi_group: list[int] = field(default_factory=list)
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    categories: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)

    @property
    def n_bins(self) -> int:
        return len(self.counts)

    @property
    def n_psi_bins(self) -> int:
        return len(self.psi_edges) + 1

    def psi_counts(self, counts: np.ndarray) -> np.ndarray:
        """Coarse PSI counts, summed from counts on this column's fine bins."""
        if not self.psi_group:
            return np.asarray(counts, dtype=float)
        group = np.asarray(self.psi_group)
        return np.bincount(group, weights=np.asarray(counts, float), minlength=self.n_psi_bins)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureReference:
        return cls(**dict(data))


@dataclass
class ReferenceProfile:
    """Everything monitoring needs from the reference data, small enough to store as JSON."""

    n_rows: int
    features: dict[str, FeatureReference]
    prediction: FeatureReference | None = None
    score: FeatureReference | None = None
    task: str | None = None
    positive_label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_rows": self.n_rows,
            "features": {name: ref.to_dict() for name, ref in self.features.items()},
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "score": self.score.to_dict() if self.score else None,
            "task": self.task,
            "positive_label": self.positive_label,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        def optional(key: str) -> FeatureReference | None:
            value = data.get(key)
            return FeatureReference.from_dict(value) if value else None

        return cls(
            n_rows=int(data["n_rows"]),
            features={k: FeatureReference.from_dict(v) for k, v in data["features"].items()},
            prediction=optional("prediction"),
            score=optional("score"),
            task=data.get("task"),
            positive_label=data.get("positive_label"),
        )


GRID_CELLS = 16_384  # cells of the lookup grid between the first and last edge
GRID_MIN_VALUES = 4_096  # below this many values the plain search is as fast


def numeric_bin_index(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Bin of each finite value: 0 below edges[0], len(edges) above edges[-1], else interior.

    Interior bin i (1-based) is [edges[i-1], edges[i]); the last one is closed on the right.
    Large arrays go through a lookup grid (`_grid_bins`), which gives the same bins as the
    search four to five times faster.
    """
    if len(values) >= GRID_MIN_VALUES and len(edges) >= 2 and _grid_fits(edges):
        return _grid_bins(edges, values)
    return _searched_bins(edges, values)


def _grid_fits(edges: np.ndarray) -> bool:
    """Whether the grid's cell arithmetic stays finite: the edges span a positive, finite
    width whose cells are not narrower than the smallest normal float allows."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        span = float(edges[-1]) - float(edges[0])
        return bool(np.isfinite(span) and span > 0 and np.isfinite(GRID_CELLS / span))


def _searched_bins(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    index = np.searchsorted(edges[:-1], values, side="right")
    index[values > edges[-1]] = len(edges)
    return index


def _grid_bins(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Bins through a grid of equal cells over [edges[0], edges[-1]]: a value's cell is one
    multiply away, and a cell whose neighbourhood (one whole cell either side, far more than
    any rounding of the cell arithmetic) holds no edge has one bin for all its values. Values
    in the other cells, and outside the edges, are searched as before, so every bin is the
    one `_searched_bins` gives."""
    low, high = float(edges[0]), float(edges[-1])
    scale = GRID_CELLS / (high - low)
    cell_bin = _grid(np.asarray(edges, dtype=np.float64).tobytes())
    with np.errstate(over="ignore", invalid="ignore"):
        position = (values - low) * scale
    np.clip(position, 0, GRID_CELLS - 1, out=position)
    index = cell_bin[position.astype(np.intp)]
    unsure = np.flatnonzero(index < 0)
    if len(unsure):
        index[unsure] = _searched_bins(edges, values[unsure])
    return index


@lru_cache(maxsize=512)
def _grid(edges_bytes: bytes) -> np.ndarray:
    """Each grid cell's bin, or -1 where an edge lies within one cell of it (cached per set
    of edges: a batch reuses its reference's edges chunk after chunk)."""
    edges = np.frombuffer(edges_bytes, dtype=np.float64)
    low, high = float(edges[0]), float(edges[-1])
    scale = GRID_CELLS / (high - low)
    at_bounds = _searched_bins(edges, low + np.arange(GRID_CELLS + 1) / scale)
    shift = np.arange(GRID_CELLS)
    pure = at_bounds[np.maximum(shift - 1, 0)] == at_bounds[np.minimum(shift + 2, GRID_CELLS)]
    pure[0] = pure[-1] = False
    cell_bin = np.where(pure, at_bounds[shift], -1)
    cell_bin.flags.writeable = False
    return cell_bin


def category_labels(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Factorise a column into integer codes (-1 for missing) and its distinct values as text."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return np.asarray(codes), [str(u) for u in uniques]


def _numeric_edges(values: np.ndarray, psi_edges: np.ndarray) -> tuple[np.ndarray, str]:
    """Fine bin edges and how they were chosen.

    `discrete`: one bin centred on each of a few distinct values; `per_value`: small
    references get a bin starting at every distinct value (exact KS); else `quantile`.
    PSI decile edges are always among the fine edges, so PSI bins are unions of fine bins.
    """
    distinct = np.unique(values)
    if len(distinct) <= FINE_BINS + 1:
        middles = (distinct[:-1] + distinct[1:]) / 2
        return np.concatenate([distinct[:1], middles, distinct[-1:]]), DISCRETE
    if len(values) <= SMALL_REFERENCE_ROWS:
        top = np.nextafter(distinct[-1], np.inf)
        return np.unique(np.concatenate([distinct, [top], psi_edges])), PER_VALUE
    quantiles = np.quantile(values, np.linspace(0.0, 1.0, FINE_BINS + 1))
    return np.unique(np.concatenate([quantiles, psi_edges])), QUANTILE


def _psi_group(
    edges: np.ndarray, centers: np.ndarray, binning: str, psi_edges: np.ndarray
) -> list[int]:
    """Coarse PSI bin of each fine bin; PSI bins are unions of fine bins (exact for raw PSI)."""
    position = centers[1:-1] if binning == DISCRETE else edges[:-1]
    interior = np.searchsorted(psi_edges, position, side="right")
    return [0, *interior.tolist(), len(psi_edges)]


def _bin_centers(values: np.ndarray, index: np.ndarray, edges: np.ndarray) -> np.ndarray:
    n_bins = len(edges) + 1
    counts = np.bincount(index, minlength=n_bins)
    sums = np.bincount(index, weights=values, minlength=n_bins)
    middles = np.concatenate([edges[:1], (edges[:-1] + edges[1:]) / 2, edges[-1:]])
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), middles)
    return means


def numeric_reference(name: str, column: pd.Series) -> FeatureReference:
    numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    finite = numbers[np.isfinite(numbers)]
    if len(finite) == 0:
        raise InvalidInput(
            f"Reference column '{name}' has no numeric values.",
            details=["Declare it as categorical or provide reference rows with numbers in it."],
        )
    psi_edges = reference_quantile_edges(finite, PSI_BINS)
    edges, binning = _numeric_edges(finite, psi_edges)
    index = numeric_bin_index(edges, finite)
    centers = _bin_centers(finite, index, edges)
    return FeatureReference(
        name=name,
        kind=NUMERIC,
        n=len(finite),
        missing_rate=float(1 - len(finite) / max(len(numbers), 1)),
        n_unique=int(len(np.unique(finite))),
        edges=edges.tolist(),
        binning=binning,
        centers=centers.tolist(),
        psi_edges=psi_edges.tolist(),
        psi_group=_psi_group(edges, centers, binning, psi_edges),
        min=float(finite.min()),
        max=float(finite.max()),
        mean=float(finite.mean()),
        std=float(finite.std()),
        counts=np.bincount(index, minlength=len(edges) + 1).tolist(),
    )


def categorical_reference(name: str, column: pd.Series) -> FeatureReference:
    codes, labels = category_labels(column)
    present = codes[codes >= 0]
    label_counts = np.bincount(present, minlength=len(labels))
    order = np.argsort(-label_counts, kind="stable")
    top = [labels[i] for i in order[:TOP_CATEGORIES]]
    counts = [int(label_counts[i]) for i in order[:TOP_CATEGORIES]]
    counts.append(int(label_counts[order[TOP_CATEGORIES:]].sum()))
    return FeatureReference(
        name=name,
        kind=CATEGORICAL,
        n=len(present),
        missing_rate=float(1 - len(present) / max(len(codes), 1)),
        n_unique=len(labels),
        categories=[*top, OTHER],
        known=[labels[i] for i in order[:MAX_KNOWN_CATEGORIES]],
        counts=counts,
    )


def feature_reference(name: str, column: pd.Series, kind: str) -> FeatureReference:
    if kind == NUMERIC:
        return numeric_reference(name, column)
    if kind == CATEGORICAL:
        return categorical_reference(name, column)
    raise InvalidInput(
        f"Column '{name}' has type '{kind}'.",
        details=[f"Use '{NUMERIC}' or '{CATEGORICAL}'."],
    )


def _guess_task(prediction: pd.Series) -> str:
    if pd.api.types.is_float_dtype(prediction) and prediction.nunique() > 20:
        return "regression"
    return "classification"


def _guess_positive_label(prediction: pd.Series, score: pd.Series | None) -> str | None:
    labels = pd.unique(prediction.dropna())
    if len(labels) != 2:
        return None
    if score is not None:
        means = pd.Series(score.to_numpy(dtype=float)).groupby(prediction.to_numpy()).mean()
        return str(means.idxmax())
    return str(sorted(labels, key=str)[-1])


def build_reference(
    df: pd.DataFrame,
    feature_types: Mapping[str, str],
    *,
    prediction: pd.Series | None = None,
    score: pd.Series | None = None,
    task: str | None = None,
    positive_label: str | None = None,
) -> ReferenceProfile:
    """Profile the reference data; `feature_types` maps each column to numeric or categorical."""
    missing = [name for name in feature_types if name not in df.columns]
    if missing:
        raise InvalidInput(
            "The reference data lacks columns the model uses: " + ", ".join(missing) + ".",
            details=["Upload reference data with every feature column."],
        )
    features = {
        name: feature_reference(name, df[name], kind) for name, kind in feature_types.items()
    }
    prediction_ref = None
    if prediction is not None:
        task = task or _guess_task(prediction)
        kind = NUMERIC if task == "regression" else CATEGORICAL
        prediction_ref = feature_reference(PREDICTION, prediction, kind)
        if task == "classification" and positive_label is None:
            positive_label = _guess_positive_label(prediction, score)
    score_ref = numeric_reference(SCORE, score) if score is not None else None
    return ReferenceProfile(
        n_rows=len(df),
        features=features,
        prediction=prediction_ref,
        score=score_ref,
        task=task,
        positive_label=positive_label,
    )


def column_label(name: str) -> str:
    """A column as people read it: the model's own outputs named for what they are."""
    return COLUMN_LABELS.get(name, name)
