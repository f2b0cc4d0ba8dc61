"""Charts read by people: axis titles in words, thresholds inside the axis range, drift red
and no drift green with the statistic named, p-values as "< 0.001", the model's output named
as such, partial windows marked, one x range for stacked charts."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from core import charts
from core.monitoring.profile import PREDICTION, SCORE, column_label
from core.monitoring.stats import format_p_value, format_statistic

CODE_NAMES = ("goal_value", "drift_share", "n_rows", "window", "Score", "__prediction__")


@pytest.mark.parametrize(
    ("p", "shown"),
    [
        (9e-13, "< 0.001"),
        (0.0, "< 0.001"),
        (0.000999, "< 0.001"),
        (0.001, "0.001"),
        (0.04217, "0.042"),
        (1.0, "1.000"),
        (None, "—"),
        (float("nan"), "—"),
    ],
)
def test_p_values_read_as_people_write_them(p, shown):
    assert format_p_value(p) == shown


def test_statistics_format_by_their_test():
    assert format_statistic("ks", 0.0000000000009) == "< 0.001"
    assert format_statistic("chi2", 0.2) == "0.200"
    assert format_statistic("psi", 0.123456) == "0.123"
    assert format_statistic("wasserstein", 12.3456) == "12.3"
    assert format_statistic("jensenshannon", float("inf")) == "—"


def test_the_models_outputs_are_named_for_what_they_are():
    assert column_label(PREDICTION) == "Prediction (model output)"
    assert column_label(SCORE) == "Score (model output)"
    assert column_label("age") == "age"


def _weeks(n: int = 10) -> pd.DataFrame:
    start = date(2026, 1, 5)
    return pd.DataFrame(
        {
            "window": [start + timedelta(weeks=i) for i in range(n)],
            "goal_value": np.linspace(0.84, 0.86, n),
            "drift_share": [0.0, 0.1, 0.0, 0.2, 0.1, 0.0, 0.1, 0.3, 0.2, 0.1][:n],
            "n_rows": [1000.0] * (n - 1) + [280.0],
            "partial": [False] * (n - 1) + [True],
            "n_rows_anomaly": [False] * n,
        }
    )


def _reads_like_code(fig) -> bool:
    axes = {fig.layout.xaxis.title.text, fig.layout.yaxis.title.text}
    return bool(axes & set(CODE_NAMES)) or "_" in _all_titles(fig) or "Score" in axes


def _all_titles(fig) -> str:
    return " ".join(
        str(t)
        for t in (fig.layout.title.text, fig.layout.xaxis.title.text, fig.layout.yaxis.title.text)
    )


def test_axis_titles_are_words_with_units():
    fig = charts.time_series(
        _weeks(),
        "window",
        "n_rows",
        "Predictions per window",
        x_title="Window (start of each week)",
        y_title="Predictions (rows per week)",
        partial_col="partial",
    )
    assert fig.layout.xaxis.title.text == "Window (start of each week)"
    assert fig.layout.yaxis.title.text == "Predictions (rows per week)"
    assert not _reads_like_code(fig)


def test_a_threshold_far_from_the_values_stays_inside_the_axis():
    fig = charts.time_series(_weeks(), "window", "goal_value", "ROC AUC", threshold=0.78)
    low, high = fig.layout.yaxis.range
    assert low < 0.78 < high, "the goal line is visible"
    assert low < 0.84 and high > 0.86, "so are the values"
    above = charts.time_series(_weeks(), "window", "goal_value", "MAE", threshold=25.0)
    assert above.layout.yaxis.range[1] > 25.0
    band = charts.time_series(_weeks(), "window", "goal_value", "x", threshold=(0.5, 0.95))
    assert band.layout.yaxis.range[0] < 0.5 and band.layout.yaxis.range[1] > 0.95


def test_shares_are_percentages_and_the_threshold_says_so():
    fig = charts.time_series(
        _weeks(), "window", "drift_share", "Share", threshold=0.5, percent=True
    )
    assert fig.layout.yaxis.tickformat == ".0%"
    assert fig.layout.annotations[0].text == "threshold 50%"
    assert fig.layout.yaxis.range[1] > 0.5


def test_a_partial_window_is_marked_and_not_an_anomaly():
    fig = charts.time_series(
        _weeks(), "window", "n_rows", "Rows", anomalies_col="n_rows_anomaly", partial_col="partial"
    )
    names = [t.name for t in fig.data]
    assert "Partial window (still filling)" in names
    partial = fig.data[names.index("Partial window (still filling)")]
    assert list(partial.x) == [date(2026, 3, 9)]
    assert "partial" in partial.hovertemplate
    assert len(fig.data[names.index("Anomaly")].x) == 0


def test_stacked_charts_share_one_x_range():
    weeks = _weeks()
    later = weeks.assign(window=weeks["window"] + timedelta(weeks=2))
    span = charts.shared_x_range(weeks, later)
    low, high = span
    assert low < pd.Timestamp(date(2026, 1, 5)) and high > pd.Timestamp(date(2026, 3, 23))
    assert (pd.Timestamp(date(2026, 1, 5)) - low).days < 3, "padded, not stretched"
    figs = [
        charts.time_series(frame, "window", "goal_value", "x", x_range=span)
        for frame in (weeks, later)
    ]
    assert figs[0].layout.xaxis.range == figs[1].layout.xaxis.range
    assert charts.shared_x_range(pd.DataFrame()) is None


def _drift_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "window": ["2026-03-02", "2026-03-02", "2026-03-09", "2026-03-09"],
            "feature": ["age", PREDICTION, "age", PREDICTION],
            "test": ["ks", "chi2", "ks", "chi2"],
            "value": [9e-13, 0.6, 0.4, 0.0004],
            "threshold": [0.05, 0.05, 0.05, 0.05],
            "drifted": [True, False, False, True],
        }
    )


def test_drift_is_red_and_no_drift_green_with_the_statistic_named():
    fig = charts.drift_heatmap(_drift_frame(), partial=["2026-03-09"])
    heat = fig.data[0]
    z = np.asarray(heat.z, dtype=float)
    assert z.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    colours = {stop: colour for stop, colour in heat.colorscale}
    assert colours[0.0] == "#2E8B57" and colours[1.0] == "#C0392B"  # green none, red drift
    assert (heat.zmin, heat.zmax) == (0, 1)
    assert list(heat.colorbar.ticktext) == ["No drift", "Drift"]
    assert heat.colorbar.title.text != "Score"
    assert list(heat.y) == ["age (KS p-value)", "Prediction (model output) (chi-square p-value)"]
    assert list(heat.x) == ["2026-03-02", "2026-03-09 (partial)"]
    words = np.asarray(heat.customdata)
    assert words[0][0] == "KS p-value < 0.001, threshold 0.050: drift"
    assert words[1][1] == "chi-square p-value < 0.001, threshold 0.050: drift"
    assert words[1][0] == "chi-square p-value 0.600, threshold 0.050: no drift"
    assert not _reads_like_code(fig)
