"""P3: drift and quality for 90 daily windows, from stored aggregates vs from raw rows.

A model with 25 features (20 numeric, 5 categorical), a 100,000-row reference and 90 days of
production data (20,000 rows a day by default). The aggregates are built once, as ingest
would, and stored as JSON text. Then, repeated:

(a) what the monitoring page does: parse the stored profile and 90 window aggregates from
    JSON, compute the drift table and the data-quality table;
(b) the baseline: recompute drift (``core.monitoring.drift.compute_drift``) and the same
    quality figures (missing, out-of-range, unseen categories, duplicate ids) from the raw
    rows of every window, already in memory (reading them from a database would add more).

    .venv/bin/python benchmarks/windows_p3.py --repeat 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from core.monitoring.drift import compute_drift
from core.monitoring.profile import NUMERIC, ReferenceProfile, build_reference
from core.monitoring.quality import quality_table
from core.monitoring.stats import DriftConfig
from core.monitoring.windows import WindowAggregate, aggregate_chunk, drift_table

N_NUMERIC, N_CATEGORICAL = 20, 5
START = date(2026, 1, 1)
LEVELS = [f"level_{k}" for k in range(12)]


def feature_types() -> dict[str, str]:
    types = {f"num_{i:02d}": "numeric" for i in range(N_NUMERIC)}
    types.update({f"cat_{j}": "categorical" for j in range(N_CATEGORICAL)})
    return types


def make_rows(n: int, rng: np.random.Generator, drift: float) -> pd.DataFrame:
    columns: dict[str, Any] = {}
    for i in range(N_NUMERIC):
        base = rng.lognormal(0, 0.5, n) if i % 4 == 0 else rng.normal(i, 1 + i / 10, n)
        columns[f"num_{i:02d}"] = base + drift * (i % 3 == 0)
    for j in range(N_CATEGORICAL):
        weights = np.linspace(1, 1 + j + drift * 3, len(LEVELS))
        columns[f"cat_{j}"] = rng.choice(LEVELS, size=n, p=weights / weights.sum())
    frame = pd.DataFrame(columns)
    frame.loc[rng.random(n) < 0.01, "num_01"] = np.nan
    return frame


def make_days(days: int, rows_per_day: int, seed: int) -> dict[date, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    frames = {}
    for d in range(days):
        day = START + timedelta(days=d)
        frame = make_rows(rows_per_day, rng, drift=0.5 if 40 <= d < 55 else 0.0)
        frame["timestamp"] = pd.Timestamp(day) + pd.to_timedelta(
            rng.uniform(0, 86_399, rows_per_day), unit="s"
        )
        frame["prediction_id"] = np.arange(rows_per_day) + d * rows_per_day
        frames[day] = frame
    return frames


def store(profile: ReferenceProfile, days: dict[date, pd.DataFrame]) -> tuple[str, dict[str, str]]:
    stored = {}
    for day, frame in days.items():
        (window,) = aggregate_chunk(frame, profile).values()
        stored[day.isoformat()] = json.dumps(window.to_dict(), allow_nan=False)
    return json.dumps(profile.to_dict(), allow_nan=False), stored


def from_aggregates(profile_json: str, stored: dict[str, str], config: DriftConfig) -> tuple:
    profile = ReferenceProfile.from_dict(json.loads(profile_json))
    windows = {
        date.fromisoformat(day): WindowAggregate.from_dict(json.loads(text))
        for day, text in stored.items()
    }
    return drift_table(profile, windows, config), quality_table(profile, windows)


def raw_quality(profile: ReferenceProfile, frame: pd.DataFrame) -> dict[str, Any]:
    figures: dict[str, Any] = {"duplicate_ids": int(frame["prediction_id"].duplicated().sum())}
    for name, ref in profile.features.items():
        column = frame[name]
        figures[f"{name}.missing_rate"] = float(column.isna().mean())
        if ref.kind == NUMERIC:
            outside = (column < ref.min) | (column > ref.max)
            figures[f"{name}.out_of_range_rate"] = float(outside.mean())
        else:
            unseen = column.notna() & ~column.isin(ref.known)
            figures[f"{name}.unseen_rate"] = float(unseen.mean())
    return figures


def from_raw(
    reference: pd.DataFrame,
    profile: ReferenceProfile,
    days: dict[date, pd.DataFrame],
    config: DriftConfig,
) -> list:
    kinds = feature_types()
    return [
        (compute_drift(reference, frame, config=config, kinds=kinds), raw_quality(profile, frame))
        for frame in days.values()
    ]


def timed(repeat: int, run: Callable[[], Any]) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--rows-per-day", type=int, default=20_000)
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    config = DriftConfig()
    reference = make_rows(args.reference_rows, np.random.default_rng(1), drift=0.0)
    profile = build_reference(reference, feature_types())
    days = make_days(args.days, args.rows_per_day, seed=2)
    started = time.perf_counter()
    profile_json, stored = store(profile, days)
    ingest_seconds = time.perf_counter() - started
    stored_bytes = sum(len(text) for text in stored.values())

    drift, quality = from_aggregates(profile_json, stored, config)
    raw = from_raw(reference, profile, days, config)
    agree = _verdicts_agree(drift, raw)

    fast = timed(args.repeat, lambda: from_aggregates(profile_json, stored, config))
    slow = timed(args.repeat, lambda: from_raw(reference, profile, days, config))
    ratio_min = min(slow) / min(fast)
    ratio_median = statistics.median(slow) / statistics.median(fast)
    print(
        f"P3: {args.days} daily windows x {args.rows_per_day:,} rows, "
        f"{N_NUMERIC} numeric + {N_CATEGORICAL} categorical features, "
        f"{args.reference_rows:,} reference rows"
    )
    print(
        f"aggregates built once in {ingest_seconds:.2f} s; stored JSON {stored_bytes / 1e6:.2f} MB"
    )
    print(f"drift rows {len(drift)}, quality rows {len(quality)}, verdicts agree {agree:.1%}")
    print(
        f"(a) from stored aggregates: min {min(fast) * 1e3:.1f} ms, "
        f"median {statistics.median(fast) * 1e3:.1f} ms"
    )
    print(
        f"(b) recomputed from raw rows: min {min(slow):.2f} s, median {statistics.median(slow):.2f} s"
    )
    print(f"ratio (b)/(a): min {ratio_min:.0f}x, median {ratio_median:.0f}x (bar: >= 100x)")


def _verdicts_agree(drift: pd.DataFrame, raw: list) -> float:
    ours = drift.set_index(["window", "feature"])["drifted"]
    same = total = 0
    for day, (result, _) in zip(sorted(ours.index.get_level_values(0).unique()), raw, strict=True):
        for column in result.columns:
            total += 1
            same += bool(ours.loc[(day, column.column)]) == column.drifted
    return same / total


if __name__ == "__main__":
    main()
