"""Data quality per window and column, from the stored window aggregates only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import pandas as pd

from core.monitoring.profile import NUMERIC, PREDICTION, SCORE, FeatureReference, ReferenceProfile
from core.monitoring.windows import ColumnAggregate, WindowAggregate

COLUMNS = [
    "window",
    "feature",
    "kind",
    "n_rows",
    "missing_rate",
    "reference_missing_rate",
    "out_of_range_rate",
    "unseen_category_rate",
    "type_errors",
    "duplicate_ids",
    "problems",
    "issues",
]


@dataclass(frozen=True)
class QualityThresholds:
    """When a quality figure counts as an issue; configurable per model."""

    missing_increase: float = 0.05
    out_of_range_rate: float = 0.01
    unseen_category_rate: float = 0.01
    type_errors: int = 0
    duplicate_ids: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QualityThresholds:
        return cls(**dict(data))


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _column_row(
    name: str, ref: FeatureReference, column: ColumnAggregate, limits: QualityThresholds
) -> dict[str, Any]:
    total = column.count + column.missing + column.type_errors
    missing_rate = _rate(column.missing, total)
    out_of_range_rate = _rate(column.out_of_range, column.count)
    unseen_rate = _rate(column.unseen, column.count)
    row: dict[str, Any] = {
        "feature": name,
        "kind": ref.kind,
        "n_rows": total,
        "missing_rate": missing_rate,
        "reference_missing_rate": ref.missing_rate,
        "out_of_range_rate": out_of_range_rate,
        "unseen_category_rate": unseen_rate,
        "type_errors": column.type_errors,
    }
    problems = []
    if missing_rate > ref.missing_rate + limits.missing_increase:
        problems.append(f"missing {missing_rate:.1%} (reference {ref.missing_rate:.1%})")
    if ref.kind == NUMERIC and out_of_range_rate > limits.out_of_range_rate:
        problems.append(
            f"{out_of_range_rate:.1%} outside the reference range [{ref.min:g}, {ref.max:g}]"
        )
    if ref.kind != NUMERIC and unseen_rate > limits.unseen_category_rate:
        problems.append(f"{unseen_rate:.1%} unseen categories")
    if column.type_errors > limits.type_errors:
        problems.append(f"{column.type_errors} value(s) of the wrong type")
    row["problems"] = "; ".join(problems)
    return row


def _checked_columns(profile: ReferenceProfile) -> dict[str, FeatureReference]:
    columns = dict(profile.features)
    for name, ref in ((PREDICTION, profile.prediction), (SCORE, profile.score)):
        if ref is not None:
            columns[name] = ref
    return columns


def _window_rows(
    profile: ReferenceProfile, start: date, window: WindowAggregate, limits: QualityThresholds
) -> list[dict[str, Any]]:
    rows = [
        _column_row(name, ref, window.columns[name], limits)
        for name, ref in _checked_columns(profile).items()
        if name in window.columns
    ]
    issues = sum(bool(row["problems"]) for row in rows)
    issues += window.duplicate_ids > limits.duplicate_ids
    issues += bool(window.unexpected_columns)
    for row in rows:
        row.update(window=start, duplicate_ids=window.duplicate_ids, issues=issues)
    return rows


def quality_table(
    profile: ReferenceProfile,
    windows: Mapping[date, WindowAggregate],
    thresholds: QualityThresholds | None = None,
) -> pd.DataFrame:
    """One row per window and column; `issues` counts the window's problems (duplicate ids
    and unexpected columns count once per window)."""
    limits = thresholds or QualityThresholds()
    rows = [
        row
        for start in sorted(windows)
        for row in _window_rows(profile, start, windows[start], limits)
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def window_issues(table: pd.DataFrame) -> pd.Series:
    """Issue count per window, for the health card and alerts."""
    return table.groupby("window")["issues"].first()
