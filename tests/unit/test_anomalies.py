import numpy as np
import pandas as pd
import pytest

from core.monitoring.anomalies import flag_anomalies, robust_zscores


def noisy_trend(n: int = 90, seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    days = pd.date_range("2026-01-01", periods=n, freq="D")
    return pd.Series(0.05 + 0.001 * np.arange(n) + rng.normal(0, 0.002, n), index=days)


def test_an_injected_spike_is_flagged():
    series = noisy_trend()
    series.iloc[60] += 0.05
    flags = flag_anomalies(series)
    assert flags.iloc[60]
    assert flags.sum() == 1


def test_a_smooth_trend_is_not_flagged():
    assert not flag_anomalies(noisy_trend()).any()
    steady_rise = pd.Series(np.linspace(0, 10, 90) ** 1.2)
    assert not flag_anomalies(steady_rise).any()


def test_scores_are_causal_and_need_history():
    values = noisy_trend().to_numpy()
    base = robust_zscores(values)
    changed = values.copy()
    changed[50:] += 10
    after = robust_zscores(changed)
    np.testing.assert_array_equal(base[:50], after[:50])
    assert abs(after[50]) > 100
    assert np.isnan(base[:3]).all() and np.isfinite(base[3:]).all()
    flags = flag_anomalies(pd.Series(changed), min_history=7)
    assert flags.iloc[50] and not flags.iloc[:7].any()


def test_constant_history_and_missing_values():
    scores = robust_zscores([1.0, 1.0, 1.0, 1.0, 1.0, 2.0, np.nan, 1.0])
    assert scores[4] == 0.0
    assert scores[5] == np.inf
    assert np.isnan(scores[6])
    assert scores[7] == pytest.approx(0.0)
    flags = flag_anomalies(pd.Series([1.0] * 8 + [3.0], name="missing_rate"))
    assert flags.iloc[-1] and flags.name == "missing_rate"
