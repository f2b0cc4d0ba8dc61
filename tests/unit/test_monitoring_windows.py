import json
import math
from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import InvalidInput
from core.monitoring.drift import compute_drift
from core.monitoring.profile import (
    PER_VALUE,
    PREDICTION,
    QUANTILE,
    ReferenceProfile,
    build_reference,
    numeric_bin_index,
)
from core.monitoring.quality import QualityThresholds, quality_table, window_issues
from core.monitoring.stats import (
    DriftConfig,
    bin_counts,
    chi2_counts,
    jensen_shannon_counts,
    psi_counts,
)
from core.monitoring.windows import (
    SeenIds,
    WindowAggregate,
    aggregate_chunk,
    dataset_drift_by_window,
    dataset_drift_share,
    drift_table,
    merge_windows,
    window_drift,
)

TYPES = {"x": "numeric", "skew": "numeric", "level": "numeric", "city": "categorical"}
CITIES = [f"c{i}" for i in range(30)]


def reference_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "skew": rng.lognormal(size=n),
            "level": rng.integers(0, 4, size=n).astype(float),
            "city": rng.choice(
                CITIES, size=n, p=np.linspace(1, 2, 30) / np.linspace(1, 2, 30).sum()
            ),
        }
    )


def production_frame(n: int, seed: int = 1, shift: float = 0.0) -> pd.DataFrame:
    frame = reference_frame(n, seed)
    frame["x"] += shift
    frame["skew"] *= np.exp(shift)
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-03-01", tz="UTC")
    frame["timestamp"] = start + pd.to_timedelta(rng.uniform(0, 3 * 86400, size=n), unit="s")
    frame["prediction_id"] = [f"id{i}" for i in range(n)]
    frame["prediction"] = np.where(frame["x"] > 0, "yes", "no")
    frame["score"] = 1 / (1 + np.exp(-2 * frame["x"]))
    return frame


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    ref = reference_frame(20_000)
    pred = pd.Series(np.where(ref["x"] > 0, "yes", "no"))
    score = pd.Series(1 / (1 + np.exp(-2 * ref["x"])))
    return build_reference(ref, TYPES, prediction=pred, score=score)


def assert_close(a, b, path="") -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for key in a:
            assert_close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (path, a, b)
    else:
        assert a == b, (path, a, b)


def as_dicts(windows: dict[date, WindowAggregate]) -> dict[str, dict]:
    return {start.isoformat(): window.to_dict() for start, window in windows.items()}


PRODUCTION = production_frame(3_000)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(min_value=1, max_value=len(PRODUCTION) - 1), max_size=6))
def test_merging_chunk_aggregates_equals_aggregating_the_whole(profile, cuts):
    frame = PRODUCTION.copy()
    frame.loc[frame.index[::97], "prediction_id"] = "repeated"
    whole = aggregate_chunk(frame, profile, seen_ids=SeenIds())
    seen = SeenIds()
    bounds = [0, *sorted(set(cuts)), len(frame)]
    merged: dict[date, WindowAggregate] = {}
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        merged = merge_windows(merged, aggregate_chunk(frame.iloc[lo:hi], profile, seen_ids=seen))
    assert_close(as_dicts(merged), as_dicts(whole))
    assert sum(w.duplicate_ids for w in whole.values()) == len(frame.index[::97]) - 1


def test_rows_are_grouped_into_daily_weekly_and_monthly_windows(profile):
    daily = aggregate_chunk(PRODUCTION, profile)
    assert sorted(daily) == [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]
    assert sum(w.n_rows for w in daily.values()) == len(PRODUCTION)
    weekly = aggregate_chunk(PRODUCTION, profile, window="W")
    assert sorted(weekly) == [date(2026, 2, 23), date(2026, 3, 2)]
    monthly = aggregate_chunk(PRODUCTION, profile, window="M")
    assert list(monthly) == [date(2026, 3, 1)]


def raw_counts_on_psi_bins(profile, name, values):
    ref = profile.features[name]
    return bin_counts(values, ref.psi_edges)


def test_psi_from_aggregates_equals_raw_computation():
    ref_frame = reference_frame(20_000)
    profile = build_reference(ref_frame, TYPES)
    cur = production_frame(5_000, shift=0.5)
    window = next(iter(aggregate_chunk(cur.assign(timestamp="2026-03-01"), profile).values()))
    config = DriftConfig(overrides={"x": "psi", "skew": "psi", "level": "psi"})
    by_column = {r.column: r for r in window_drift(profile, window, config)}
    raw = {r.column: r for r in compute_drift(ref_frame, cur, config=config, kinds=TYPES).columns}
    for name in ("x", "skew"):
        assert by_column[name].test == "psi"
        assert abs(by_column[name].value - raw[name].value) < 1e-12
        direct = psi_counts(
            raw_counts_on_psi_bins(profile, name, ref_frame[name]),
            raw_counts_on_psi_bins(profile, name, cur[name]),
        )
        assert abs(by_column[name].value - direct) < 1e-12
    assert by_column["skew"].drifted and by_column["skew"].value > 0.1


def test_jensen_shannon_and_chi2_from_aggregates_equal_raw_computation():
    config = DriftConfig()
    for n_ref, test in ((20_000, "jensenshannon"), (800, "chi2")):
        ref_frame = reference_frame(n_ref)
        profile = build_reference(ref_frame, TYPES)
        cur = production_frame(4_000, shift=0.2)
        window = next(iter(aggregate_chunk(cur.assign(timestamp="2026-03-01"), profile).values()))
        ours = {r.column: r for r in window_drift(profile, window, config)}
        raw = {
            r.column: r for r in compute_drift(ref_frame, cur, config=config, kinds=TYPES).columns
        }
        for name in ("city", "level"):
            assert ours[name].test == raw[name].test == test
            assert abs(ours[name].value - raw[name].value) < 1e-12


def test_counts_on_fine_bins_equal_raw_counts(profile):
    window = aggregate_chunk(PRODUCTION.assign(timestamp="2026-03-01"), profile)[date(2026, 3, 1)]
    ref = profile.features["x"]
    raw = np.bincount(numeric_bin_index(np.asarray(ref.edges), PRODUCTION["x"].to_numpy()))
    raw = np.pad(raw, (0, ref.n_bins - len(raw)))
    assert window.columns["x"].counts == raw.tolist()
    js = jensen_shannon_counts(ref.counts, raw)
    chi = chi2_counts(ref.counts, raw)
    assert jensen_shannon_counts(ref.counts, window.columns["x"].counts) == pytest.approx(
        js, abs=1e-12
    )
    assert chi2_counts(ref.counts, window.columns["x"].counts) == pytest.approx(chi, abs=1e-12)


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.2, 1.0])
def test_wasserstein_and_ks_from_bins_are_close_to_raw(shift):
    config = DriftConfig()
    for n_ref, test, tolerance in ((50_000, "wasserstein", 0.006), (800, "ks", 1e-9)):
        ref_frame = reference_frame(n_ref, seed=3)
        profile = build_reference(ref_frame, TYPES)
        assert profile.features["x"].binning == (QUANTILE if n_ref > 1000 else PER_VALUE)
        cur = production_frame(20_000, seed=4, shift=shift)
        window = next(iter(aggregate_chunk(cur.assign(timestamp="2026-03-01"), profile).values()))
        ours = {r.column: r for r in window_drift(profile, window, config)}
        raw = {
            r.column: r for r in compute_drift(ref_frame, cur, config=config, kinds=TYPES).columns
        }
        for name in ("x", "skew"):
            assert ours[name].test == raw[name].test == test
            assert abs(ours[name].value - raw[name].value) <= tolerance
            assert ours[name].drifted == raw[name].drifted


def test_quality_counts_missing_out_of_range_unseen_type_errors_and_duplicates(profile):
    frame = production_frame(200).assign(timestamp="2026-03-05T10:00:00Z")
    frame["x"] = frame["x"].astype(object)
    frame.loc[0:2, "x"] = -100.0
    frame.loc[3:4, "x"] = 100.0
    frame.loc[5:8, "x"] = None
    frame.loc[9, "x"] = "abc"
    frame.loc[10, "x"] = float("inf")
    frame.loc[0:4, "city"] = "atlantis"
    frame.loc[5:6, "city"] = None
    frame.loc[20:22, "prediction_id"] = "same"
    frame["note"] = "extra column"
    window = aggregate_chunk(frame, profile)[date(2026, 3, 5)]
    x, city = window.columns["x"], window.columns["city"]
    assert (x.below, x.above, x.missing, x.type_errors, x.count) == (3, 2, 4, 2, 194)
    assert (city.unseen, city.missing, city.count) == (5, 2, 198)
    assert window.duplicate_ids == 2
    assert window.unexpected_columns == ["note"]
    table = quality_table(profile, {window.window_start: window})
    row = table.set_index("feature").loc["x"]
    assert row["missing_rate"] == pytest.approx(4 / 200)
    assert row["out_of_range_rate"] == pytest.approx(5 / 194)
    assert "outside the reference range" in row["problems"] and "wrong type" in row["problems"]
    city_row = table.set_index("feature").loc["city"]
    assert city_row["unseen_category_rate"] == pytest.approx(5 / 198)
    assert window_issues(table).loc[date(2026, 3, 5)] == 4
    lenient = QualityThresholds(out_of_range_rate=0.5, unseen_category_rate=0.5, type_errors=5)
    assert (
        window_issues(quality_table(profile, {window.window_start: window}, lenient)).iloc[0] == 2
    )


def test_clean_window_has_no_quality_issues(profile):
    windows = aggregate_chunk(PRODUCTION, profile)
    table = quality_table(profile, windows)
    assert set(table["feature"]) == {*TYPES, PREDICTION, "__score__"}
    assert (table["issues"] == 0).all()


def test_missing_columns_and_bad_timestamps_are_refused(profile):
    with pytest.raises(InvalidInput, match="city"):
        aggregate_chunk(PRODUCTION.drop(columns=["city"]), profile)
    bad = PRODUCTION.head(5).assign(timestamp=["2026-01-01", "never", None, "2026-01-02", "x"])
    with pytest.raises(InvalidInput, match="3 row"):
        aggregate_chunk(bad, profile)


def test_drift_table_flags_the_shifted_window_and_records_the_test(profile):
    quiet = aggregate_chunk(production_frame(4_000, seed=7).assign(timestamp="2026-03-01"), profile)
    loud = production_frame(4_000, seed=8, shift=1.0).assign(timestamp="2026-03-02")
    windows = merge_windows(quiet, aggregate_chunk(loud, profile))
    config = DriftConfig()
    table = drift_table(profile, windows, config)
    assert set(table.columns) >= {"window", "feature", "test", "value", "threshold", "drifted"}
    day1 = table[table["window"] == date(2026, 3, 1)].set_index("feature")
    day2 = table[table["window"] == date(2026, 3, 2)].set_index("feature")
    assert not day1["drifted"].any()
    assert day2.loc["x", "drifted"] and day2.loc[PREDICTION, "drifted"]
    assert day2.loc["x", "test"] == "wasserstein" and "Wasserstein" in day2.loc["x", "reason"]
    shares = dataset_drift_by_window(table, config).set_index("window")
    assert shares.loc[date(2026, 3, 2), "drift_share"] == pytest.approx(0.5)
    assert shares.loc[date(2026, 3, 2), "dataset_drifted"]
    assert dataset_drift_share(window_drift(profile, windows[date(2026, 3, 1)], config)) == 0.0


def test_categorical_column_refuses_a_numeric_only_override(profile):
    window = next(iter(aggregate_chunk(PRODUCTION, profile).values()))
    with pytest.raises(InvalidInput, match="city"):
        window_drift(profile, window, DriftConfig(overrides={"city": "ks"}))


def test_profile_and_windows_survive_a_json_round_trip(profile):
    text = json.dumps(profile.to_dict(), allow_nan=False)
    restored = ReferenceProfile.from_dict(json.loads(text))
    assert restored == profile
    windows = aggregate_chunk(PRODUCTION.assign(label=PRODUCTION["prediction"]), profile)
    stored = {k.isoformat(): json.dumps(w.to_dict(), allow_nan=False) for k, w in windows.items()}
    loaded = {
        date.fromisoformat(k): WindowAggregate.from_dict(json.loads(v)) for k, v in stored.items()
    }
    assert loaded == windows
    assert drift_table(restored, loaded, DriftConfig()).equals(
        drift_table(profile, windows, DriftConfig())
    )


def test_reference_keeps_top_categories_and_groups_the_rest():
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"shop": rng.choice([f"s{i}" for i in range(80)], size=5_000)})
    ref = build_reference(frame, {"shop": "categorical"}).features["shop"]
    assert len(ref.categories) == 51 and ref.categories[-1] == "__other__"
    assert sum(ref.counts) == 5_000 and ref.n_unique == 80 and len(ref.known) == 80
    with pytest.raises(InvalidInput, match="lacks"):
        build_reference(frame, {"shop": "categorical", "age": "numeric"})


def test_the_bin_lookup_grid_gives_every_value_the_searched_bin() -> None:
    """Large arrays are binned through a grid; on edges, one ulp either side of each edge,
    heavy tails, values far outside and per-value edge sets, every bin equals the search's."""
    from core.monitoring import profile

    rng = np.random.default_rng(7)
    for _ in range(60):
        scale = rng.uniform(1e-3, 1e3)
        edges = np.unique(
            np.quantile(rng.standard_t(3, 3000) * scale, np.linspace(0, 1, rng.integers(3, 1200)))
        )
        values = np.concatenate(
            [
                rng.standard_t(3, 6000) * scale,
                edges,
                np.nextafter(edges, np.inf),
                np.nextafter(edges, -np.inf),
                [1e308, -1e308, edges[0] - scale, edges[-1] + scale],
            ]
        )
        assert len(values) >= profile.GRID_MIN_VALUES
        searched = profile._searched_bins(edges, values)
        assert np.array_equal(numeric_bin_index(edges, values), searched)
        assert searched.min() == 0 and searched.max() == len(edges)
    huge, tiny = np.array([-1e308, 0.0, 1e308]), np.array([0.0, 5e-324, 1e-323])
    for edges in (huge, tiny):  # spans whose cell arithmetic would overflow: searched instead
        values = np.concatenate([rng.normal(size=5000), edges, [1e300, -1e300]])
        assert np.array_equal(
            numeric_bin_index(edges, values), profile._searched_bins(edges, values)
        )
