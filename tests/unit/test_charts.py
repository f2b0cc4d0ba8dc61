import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.svm import LinearSVC

from core import charts
from core.evaluation import compare, evaluate


@pytest.fixture(scope="module")
def binary_results():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :6]
    frame = X.assign(target=y.to_numpy(), size=np.where(X["mean radius"] > 14, "big", "<b>small"))
    strong = LogisticRegression(max_iter=3000).fit(X, y)
    weak = LogisticRegression(max_iter=3000, C=0.001).fit(X, y)
    kwargs = {"sensitive": "size"}
    return {
        "candidate": evaluate(strong, frame, "target", "binary_classification", **kwargs),
        "champion": evaluate(weak, frame, "target", "binary_classification", **kwargs),
        "no_proba": evaluate(LinearSVC().fit(X, y), frame, "target", "binary_classification"),
    }


@pytest.fixture(scope="module")
def regression_result():
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return evaluate(Ridge().fit(X, y), X.assign(y=y.to_numpy()), "y", "regression")


def trace_summary(fig):
    return [(type(t).__name__, t.name) for t in fig.data]


def test_roc_curves_overlay_candidate_and_champion(binary_results):
    named = {k: binary_results[k] for k in ("candidate", "champion")}
    fig = charts.roc_curves(named)
    summary = trace_summary(fig)
    assert len(summary) == 3
    assert summary[0] == ("Scatter", "Chance")
    assert summary[1][1].startswith("candidate (AUC 0.9")
    assert summary[2][1].startswith("champion (AUC")
    assert fig.layout.xaxis.title.text == "False positive rate"
    assert fig.layout.title.text == "ROC curve"
    assert fig.data[1].line.color != fig.data[2].line.color
    assert len(fig.data[1].x) <= 200


def test_roc_without_probabilities_explains_itself(binary_results):
    fig = charts.roc_curves({"svm": binary_results["no_proba"]})
    assert trace_summary(fig) == [("Scatter", "Chance")]
    assert "no predicted probabilities" in fig.layout.annotations[0].text


def test_pr_and_calibration_curves(binary_results):
    named = {k: binary_results[k] for k in ("candidate", "champion")}
    pr = charts.pr_curves(named)
    assert trace_summary(pr) == [("Scatter", "candidate"), ("Scatter", "champion")]
    assert pr.layout.yaxis.title.text == "Precision"
    calibration = charts.calibration_curves(named)
    assert [t.name for t in calibration.data] == ["Perfectly calibrated", "candidate", "champion"]
    assert calibration.data[1].mode == "lines+markers"


def test_confusion_matrix(binary_results):
    fig = charts.confusion_matrix(binary_results["candidate"])
    assert trace_summary(fig) == [("Heatmap", "Confusion matrix")]
    heatmap = fig.data[0]
    assert list(heatmap.x) == ["0", "1"]
    matrix = binary_results["candidate"]["confusion_matrix"]["matrix"]
    assert np.array_equal(np.asarray(heatmap.z), np.asarray(matrix))
    assert np.asarray(heatmap.customdata).sum(axis=1) == pytest.approx([1.0, 1.0])
    assert fig.layout.yaxis.title.text == "Actual"


def test_residuals(regression_result):
    fig = charts.residuals(regression_result)
    assert trace_summary(fig) == [
        ("Bar", "Residuals"),
        ("Scatter", "Rows"),
        ("Scatter", "Perfect prediction"),
    ]
    assert sum(fig.data[0].y) == regression_result["n_rows"]
    assert fig.layout.xaxis2.title.text == "Actual"


def test_metric_bars(binary_results):
    rows = compare(binary_results["candidate"], binary_results["champion"])
    fig = charts.metric_bars(rows)
    assert trace_summary(fig) == [("Bar", "Candidate"), ("Bar", "Champion")]
    assert list(fig.data[0].x) == [row["label"] for row in rows]
    assert fig.data[0].y[0] == pytest.approx(rows[0]["candidate"])
    assert fig.layout.barmode == "group"
    assert rows[0]["sentence"] in fig.data[0].customdata[0]


def test_slice_metrics_escapes_group_names(binary_results):
    fig = charts.slice_metrics(binary_results["candidate"], "selection_rate")
    assert trace_summary(fig) == [("Bar", "Selection rate")]
    assert list(fig.data[0].x) == ["&lt;b&gt;small", "big"]
    recall = charts.slice_metrics(binary_results["candidate"], "recall")
    assert len(recall.data[0].y) == 2
    assert recall.layout.title.text == "Recall by size"
    assert len(recall.layout.shapes) == 1


def test_slice_metrics_without_slices(regression_result):
    fig = charts.slice_metrics(regression_result, "rmse")
    assert len(fig.data) == 0
    assert "No slices" in fig.layout.annotations[0].text


def test_time_series_with_threshold_and_anomalies():
    frame = pd.DataFrame(
        {
            "day": pd.date_range("2026-01-01", periods=30, freq="D"),
            "psi": np.linspace(0, 0.3, 30),
            "alert": [False] * 27 + [True] * 3,
        }
    )
    fig = charts.time_series(
        frame, "day", "psi", "PSI <i>daily</i>", threshold=0.2, anomalies_col="alert"
    )
    assert trace_summary(fig) == [("Scatter", "psi"), ("Scatter", "Anomaly")]
    assert len(fig.data[1].x) == 3
    assert fig.layout.title.text == "PSI &lt;i&gt;daily&lt;/i&gt;"
    assert fig.layout.shapes[0].y0 == 0.2
    band = charts.time_series(frame, "day", "psi", "PSI", threshold=(0.05, 0.15))
    assert len(band.data) == 1
    assert (band.layout.shapes[0].y0, band.layout.shapes[0].y1) == (0.05, 0.15)


def test_time_series_large_uses_webgl_and_downsamples():
    n = 300_000
    rng = np.random.default_rng(0)
    values = rng.normal(size=n)
    values[123_457] = 50.0
    frame = pd.DataFrame({"t": np.arange(n), "v": values, "flag": values > 4})
    fig = charts.time_series(frame, "t", "v", "Big", anomalies_col="flag")
    line = fig.data[0]
    assert isinstance(line, go.Scattergl)
    assert len(line.y) <= 100_000
    assert max(line.y) == 50.0 and min(line.y) == values.min()
    assert 123_457 in set(fig.data[1].x)


def test_min_max_indices_keep_extremes_in_order():
    values = np.array([5.0, 1.0, np.nan, 9.0, 2.0, 3.0, 7.0, 0.0, 4.0, 6.0])
    keep = charts.min_max_indices(values, 2)
    assert list(keep) == sorted(keep)
    assert {1, 3, 7}.issubset(set(keep.tolist()))
    assert len(charts.min_max_indices(values, 10)) == 10


def test_drift_heatmap():
    frame = pd.DataFrame(
        {
            "window": ["w1", "w1", "w2", "w2"],
            "feature": ["age", "<script>x</script>", "age", "<script>x</script>"],
            "test": ["ks", "psi", "ks", "psi"],
            "value": [0.01, 0.3, 0.02, 0.5],
            "threshold": [0.05, 0.1, 0.05, 0.1],
            "drifted": [True, True, True, True],
        }
    )
    fig = charts.drift_heatmap(frame)
    assert trace_summary(fig) == [("Heatmap", "Drift")]
    assert np.asarray(fig.data[0].z).shape == (2, 2)
    assert "&lt;script&gt;x&lt;/script&gt; (PSI)" in list(fig.data[0].y)
    assert all("<script>" not in str(y) for y in fig.data[0].y)


def test_distribution_compare_bins_and_categories():
    binned = charts.distribution_compare([0, 1, 2, 4], [10, 30, 60], [20, 20, 60], "Income")
    assert trace_summary(binned) == [("Bar", "Reference"), ("Bar", "Current")]
    assert list(binned.data[0].y) == pytest.approx([0.1, 0.3, 0.6])
    assert list(binned.data[0].x) == pytest.approx([0.5, 1.5, 3.0])
    categories = charts.distribution_compare(["a", "b"], [1, 3], [0, 0], "City")
    assert list(categories.data[0].x) == ["a", "b"]
    assert list(categories.data[1].y) == [0.0, 0.0]
    assert categories.layout.barmode == "group"
    assert categories.layout.title.text == "City"
