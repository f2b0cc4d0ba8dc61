"""Drift statistics: known values against scipy, choice of test, verdicts, edge cases."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from core.errors import InvalidInput
from core.monitoring.drift import DatasetDrift, column_kinds, compute_drift
from core.monitoring.stats import (
    TEST_LABELS,
    DriftConfig,
    FeatureDrift,
    bin_counts,
    chi2_counts,
    choose_test,
    is_drifted,
    jensen_shannon_counts,
    ks_counts,
    psi_counts,
    psi_severity,
    reference_quantile_edges,
    wasserstein_counts,
)

CONFIG = DriftConfig()


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def one_column(ref, cur, kind: str = "numeric", config: DriftConfig = CONFIG) -> FeatureDrift:
    result = compute_drift(
        pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}), config=config, kinds={"x": kind}
    )
    return result.columns[0]


# ------------------------------------------------------------------ known values vs scipy


def test_wasserstein_matches_scipy_normalised_by_reference_std():
    ref, cur = rng(1).normal(0, 2, 5000), rng(2).normal(0.3, 2, 20000)
    result = one_column(ref, cur)
    expected = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert result.test == "wasserstein"
    assert result.value == pytest.approx(expected, rel=1e-12)
    assert result.drifted is bool(expected >= 0.1)


def test_wasserstein_with_ties_matches_scipy():
    ref = np.round(rng(3).normal(50, 10, 3000))
    cur = np.round(rng(4).normal(52, 10, 7000))
    expected = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert one_column(ref, cur).value == pytest.approx(expected, rel=1e-12)


def test_ks_matches_scipy_for_small_reference():
    ref, cur = rng(5).normal(0, 1, 800), rng(6).normal(0.2, 1, 3000)
    result = one_column(ref, cur)
    assert result.test == "ks"
    assert result.value == pytest.approx(stats.ks_2samp(ref, cur).pvalue, rel=1e-12)
    assert result.threshold == 0.05


def test_jensen_shannon_matches_scipy_on_categories():
    ref = rng(7).choice(["a", "b", "c"], 5000, p=[0.5, 0.3, 0.2])
    cur = rng(8).choice(["a", "b", "c", "d"], 8000, p=[0.4, 0.3, 0.2, 0.1])
    result = one_column(ref, cur, "categorical")
    keys = ["a", "b", "c", "d"]
    p = np.array([np.sum(ref == k) for k in keys]) / ref.size
    q = np.array([np.sum(cur == k) for k in keys]) / cur.size
    assert result.test == "jensenshannon"
    assert result.value == pytest.approx(distance.jensenshannon(p, q), rel=1e-12)


def test_chi2_matches_two_sample_contingency_for_small_reference():
    ref = rng(9).choice(["a", "b", "c"], 600, p=[0.5, 0.3, 0.2])
    cur = rng(10).choice(["a", "b", "c"], 900, p=[0.4, 0.35, 0.25])
    table = np.array([[np.sum(s == k) for k in "abc"] for s in (ref, cur)])
    result = one_column(ref, cur, "categorical")
    assert result.test == "chi2"
    expected = stats.chi2_contingency(table, correction=False).pvalue
    assert result.value == pytest.approx(expected, rel=1e-12)


def test_counts_functions_known_values():
    ref, cur = np.array([10, 20, 30, 0]), np.array([12, 18, 25, 5])
    p, q = ref / ref.sum(), cur / cur.sum()
    p_eps = np.maximum(p, 1e-4)
    assert psi_counts(ref, cur) == pytest.approx(np.sum((q - p_eps) * np.log(q / p_eps)))
    assert jensen_shannon_counts(ref, cur) == pytest.approx(distance.jensenshannon(p, q))
    table = np.array([ref, cur])
    expected = stats.chi2_contingency(table, correction=False).pvalue
    assert chi2_counts(ref, cur) == pytest.approx(expected)
    assert chi2_counts([5, 5, 0], [7, 3, 0]) == pytest.approx(
        stats.chi2_contingency([[5, 5], [7, 3]], correction=False).pvalue
    )


# ------------------------------------------------------------------ choice of test


@pytest.mark.parametrize(
    ("kind", "n_unique", "rows", "expected"),
    [
        ("numeric", 6, 1000, "ks"),
        ("numeric", 6, 1001, "wasserstein"),
        ("numeric", 5, 1000, "chi2"),
        ("numeric", 5, 1001, "jensenshannon"),
        ("categorical", 50, 1000, "chi2"),
        ("categorical", 3, 1001, "jensenshannon"),
    ],
)
def test_choose_test_boundaries(kind, n_unique, rows, expected):
    test, reason = choose_test(kind, n_unique, rows, CONFIG)
    assert test == expected
    assert f"{rows:,} reference rows" in reason


def test_choose_test_reason_in_plain_words():
    test, reason = choose_test("numeric", 812, 100_000, CONFIG)
    assert test == "wasserstein"
    assert reason.startswith("numeric with 812 distinct values and 100,000 reference rows")
    assert reason.endswith("Wasserstein distance")
    with pytest.raises(InvalidInput, match="Unknown column kind"):
        choose_test("text", 3, 10, CONFIG)


def test_few_valued_numeric_uses_category_tests():
    ref = rng(11).choice([0.0, 1.0, 2.0], 3000)
    cur = rng(12).choice([0.0, 1.0, 2.0], 3000)
    result = one_column(ref, cur)
    assert result.test == "jensenshannon"
    assert "only 3 distinct values" in result.reason
    assert one_column(ref[:500], cur).test == "chi2"


# ------------------------------------------------------------------ better than the anchor


def test_two_sample_chi2_does_not_flag_undrifted_large_samples():
    truth = np.full(4, 0.25)
    ref = rng(13).multinomial(20_000, truth)
    cur = rng(14).multinomial(2_000_000, truth)
    one_sample = stats.chisquare(cur, ref * cur.sum() / ref.sum()).pvalue
    assert one_sample < 0.05
    assert chi2_counts(ref, cur) > 0.05


def test_psi_on_reference_deciles_catches_lognormal_half_sd_shift():
    ref = rng(15).lognormal(0, 1, 100_000)
    cur = rng(16).lognormal(0, 1, 200_000) + 0.5 * np.std(ref)
    config = DriftConfig(overrides={"x": "psi"})
    result = one_column(ref, cur, config=config)
    assert result.test == "psi"
    assert result.drifted and result.value >= 0.1
    both = np.concatenate([ref, cur])
    edges = np.histogram_bin_edges(both, bins="sturges")
    p = np.histogram(ref, edges)[0] / ref.size
    q = np.histogram(cur, edges)[0] / cur.size
    p, q = np.where(p == 0, 1e-4, p), np.where(q == 0, 1e-4, q)
    assert np.sum((p - q) * np.log(p / q)) < 0.1


def test_psi_severity_levels():
    assert psi_severity(0.05, CONFIG) == "none"
    assert psi_severity(0.1, CONFIG) == "drift"
    assert psi_severity(0.25, CONFIG) == "major"


# ------------------------------------------------------------------ counts equal raw


def test_counts_equal_raw_on_categories():
    ref = rng(17).choice(["a", "b", "c", "d"], 4000, p=[0.4, 0.3, 0.2, 0.1])
    cur = rng(18).choice(["a", "b", "c", "d"], 6000, p=[0.3, 0.3, 0.3, 0.1])
    ref_counts = np.array([np.sum(ref == k) for k in "abcd"])
    cur_counts = np.array([np.sum(cur == k) for k in "abcd"])
    for test, fn in (("psi", psi_counts), ("jensenshannon", jensen_shannon_counts)):
        raw = one_column(ref, cur, "categorical", DriftConfig(overrides={"x": test}))
        assert raw.value == pytest.approx(fn(ref_counts, cur_counts), rel=1e-12)
    raw = one_column(ref, cur, "categorical", DriftConfig(overrides={"x": "chi2"}))
    assert raw.value == pytest.approx(chi2_counts(ref_counts, cur_counts), rel=1e-12)


def test_psi_counts_equal_raw_on_reference_decile_bins():
    ref, cur = rng(19).gamma(2, 2, 5000), rng(20).gamma(2.3, 2, 8000)
    edges = reference_quantile_edges(ref)
    assert edges.size == 9
    expected = psi_counts(bin_counts(ref, edges), bin_counts(cur, edges))
    raw = one_column(ref, cur, config=DriftConfig(overrides={"x": "psi"}))
    assert raw.value == pytest.approx(expected, rel=1e-12)
    assert bin_counts(ref, edges).sum() == ref.size


def test_ks_and_wasserstein_counts_exact_when_each_value_has_its_bin():
    ref = rng(21).integers(0, 30, 4000).astype(float)
    cur = rng(22).integers(2, 32, 6000).astype(float)
    centers = np.arange(0, 32, dtype=float)
    ref_counts = np.array([np.sum(ref == v) for v in centers])
    cur_counts = np.array([np.sum(cur == v) for v in centers])
    ks_asymp = stats.ks_2samp(ref, cur, method="asymp").pvalue
    assert ks_counts(ref_counts, cur_counts, ref.size, cur.size) == pytest.approx(ks_asymp)
    expected = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert wasserstein_counts(centers, ref_counts, cur_counts, np.std(ref)) == pytest.approx(
        expected, rel=1e-9
    )


def test_counts_functions_reject_misaligned_or_empty_counts():
    with pytest.raises(InvalidInput, match="same bins"):
        psi_counts([1, 2, 3], [1, 2])
    with pytest.raises(InvalidInput, match="current data has no values"):
        jensen_shannon_counts([1, 2], [0, 0])
    with pytest.raises(InvalidInput, match="not negative"):
        chi2_counts([1, -2], [1, 2])


# ------------------------------------------------------------------ verdicts


def test_shifted_column_drifts_and_unshifted_does_not():
    r = rng(23)
    reference = pd.DataFrame({"steady": r.normal(0, 1, 20_000), "moved": r.normal(0, 1, 20_000)})
    current = pd.DataFrame({"steady": r.normal(0, 1, 50_000), "moved": r.normal(0.5, 1, 50_000)})
    result = compute_drift(reference, current)
    by_name = {c.column: c for c in result.columns}
    assert by_name["moved"].drifted and by_name["moved"].value > 0.4
    assert not by_name["steady"].drifted and by_name["steady"].value < 0.05


def test_dataset_drift_share():
    r = rng(24)
    reference = pd.DataFrame({f"c{i}": r.normal(0, 1, 5000) for i in range(4)})
    current = pd.DataFrame({f"c{i}": r.normal(1.0 if i < 2 else 0, 1, 5000) for i in range(4)})
    half = compute_drift(reference, current)
    assert half.share_drifted == 0.5 and half.drifted
    strict = compute_drift(reference, current, config=DriftConfig(dataset_drift_share=0.75))
    assert not strict.drifted
    one = compute_drift(
        reference, current[["c0", "c2", "c3"]], kinds={k: "numeric" for k in ["c0", "c2", "c3"]}
    )
    assert one.share_drifted == pytest.approx(1 / 3) and not one.drifted


def test_is_drifted_direction_and_thresholds():
    assert is_drifted("ks", 0.049, CONFIG) == (True, 0.05)
    assert is_drifted("ks", 0.05, CONFIG) == (False, 0.05)
    assert is_drifted("wasserstein", 0.1, CONFIG) == (True, 0.1)
    assert is_drifted("jensenshannon", 0.099, CONFIG) == (False, 0.1)
    assert is_drifted("psi", 0.1, CONFIG)[0]
    assert set(TEST_LABELS) == {"ks", "wasserstein", "chi2", "jensenshannon", "psi"}


# ------------------------------------------------------------------ overrides and settings


def test_override_forces_test_and_says_so():
    ref, cur = rng(25).normal(0, 1, 5000), rng(26).normal(0, 1, 5000)
    result = one_column(ref, cur, config=DriftConfig(overrides={"x": "ks"}))
    assert result.test == "ks"
    assert "drift settings" in result.reason
    assert result.value == pytest.approx(stats.ks_2samp(ref, cur).pvalue)


def test_numeric_only_override_on_categorical_column_is_refused():
    with pytest.raises(InvalidInput, match="'x' is categorical"):
        one_column(["a", "b"] * 10, ["a"] * 20, "categorical", DriftConfig(overrides={"x": "ks"}))


def test_config_validation_and_round_trip():
    config = DriftConfig(psi_threshold=0.15, overrides={"age": "psi"})
    assert DriftConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(InvalidInput, match="unknown test 'tv'"):
        DriftConfig(overrides={"age": "tv"})
    with pytest.raises(InvalidInput, match="Unknown drift setting"):
        DriftConfig.from_dict({"ks_threshold": 0.1})
    with pytest.raises(InvalidInput, match="ks_pvalue"):
        DriftConfig(ks_pvalue=1.5)
    with pytest.raises(InvalidInput, match="whole number"):
        DriftConfig.from_dict({"few_unique": 2.5})


# ------------------------------------------------------------------ missing values and errors


def test_nan_and_inf_are_ignored():
    ref = rng(27).normal(0, 1, 3000)
    cur = rng(28).normal(0.2, 1, 4000)
    cur_dirty = np.concatenate([cur, [np.nan] * 100, [np.inf, -np.inf]])
    ref_dirty = np.concatenate([[np.nan] * 10, ref])
    assert one_column(ref_dirty, cur_dirty).value == one_column(ref, cur).value
    cats = np.array(["a", "b", None, "a"] * 500, dtype=object)
    result = one_column(cats, cats, "categorical")
    assert "2 categories" in result.reason and result.value == pytest.approx(0.0, abs=1e-7)


def test_all_missing_current_column_is_a_clear_error():
    reference = pd.DataFrame({"income": rng(29).normal(0, 1, 100)})
    current = pd.DataFrame({"income": [np.nan] * 50})
    with pytest.raises(InvalidInput, match="'income' has no values in the current data"):
        compute_drift(reference, current)
    with pytest.raises(InvalidInput, match="current data has no rows"):
        compute_drift(reference, current.iloc[:0])
    with pytest.raises(InvalidInput, match="lacks column"):
        compute_drift(reference, pd.DataFrame({"other": [1.0]}))


# ------------------------------------------------------------------ kinds and output


def test_column_kinds():
    df = pd.DataFrame(
        {
            "f": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5],
            "many_ints": [1, 2, 3, 4, 5, 6, 7],
            "few_ints": [1, 2, 1, 2, 1, 2, 1],
            "flag": [True, False] * 3 + [True],
            "s": list("abcabca"),
            "cat": pd.Categorical(list("xyxyxyx")),
            "when": pd.date_range("2024-01-01", periods=7),
        }
    )
    assert column_kinds(df) == {
        "f": "numeric",
        "many_ints": "numeric",
        "few_ints": "categorical",
        "flag": "categorical",
        "s": "categorical",
        "cat": "categorical",
    }


def test_category_dtype_and_to_dict():
    ref = pd.Categorical(rng(30).choice(["a", "b", "c"], 3000), categories=["a", "b", "c", "z"])
    cur = pd.Categorical(rng(31).choice(["a", "b"], 3000), categories=["a", "b", "c", "z"])
    result = compute_drift(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}))
    assert isinstance(result, DatasetDrift)
    column = result.columns[0]
    assert column.test == "jensenshannon" and column.drifted
    assert "3 categories" in column.reason
    data = json.loads(json.dumps(result.to_dict()))
    assert data["n_drifted"] == 1 and data["columns"][0]["label"] == "Jensen-Shannon distance"
