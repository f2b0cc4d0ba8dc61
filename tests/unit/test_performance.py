import json
from datetime import date

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.errors import InvalidInput
from core.monitoring.performance import (
    add_sums,
    cbpe_estimate,
    cbpe_sums,
    label_sums,
    metrics_from_sums,
    performance_table,
)
from core.monitoring.profile import build_reference
from core.monitoring.windows import (
    WindowAggregate,
    aggregate_chunk,
    aggregate_labels,
    merge_windows,
)


@pytest.fixture(scope="module")
def cancer():
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.4, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    model.fit(x_train, y_train)
    return model, x_train, x_test, y_test


def test_binary_metrics_from_sums_equal_sklearn(cancer):
    model, _, x_test, y_test = cancer
    pred, proba = model.predict(x_test), model.predict_proba(x_test)[:, 1]
    halves = [slice(0, 100), slice(100, None)]
    sums = {}
    for part in halves:
        sums = add_sums(
            sums, label_sums(y_test.iloc[part], pred[part], proba[part], "classification", "1")
        )
    metrics = metrics_from_sums(sums, "classification")
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y_test, pred), abs=1e-12)
    assert metrics["precision"] == pytest.approx(precision_score(y_test, pred), abs=1e-12)
    assert metrics["recall"] == pytest.approx(recall_score(y_test, pred), abs=1e-12)
    assert metrics["f1"] == pytest.approx(f1_score(y_test, pred), abs=1e-12)
    assert metrics["log_loss"] == pytest.approx(log_loss(y_test, proba), abs=1e-12)
    assert sums["tp"] + sums["fp"] + sums["tn"] + sums["fn"] == len(y_test)


def test_multiclass_metrics_from_sums_equal_sklearn():
    x, y = load_iris(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, random_state=1)
    model = LogisticRegression(C=0.05, max_iter=500).fit(x_train, y_train)
    pred = model.predict(x_test)
    metrics = metrics_from_sums(label_sums(y_test, pred, None, "classification"), "classification")
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y_test, pred), abs=1e-12)
    for name, scorer in (
        ("precision", precision_score),
        ("recall", recall_score),
        ("f1", f1_score),
    ):
        expected = scorer(y_test, pred, average="macro", zero_division=0)
        assert metrics[name] == pytest.approx(expected, abs=1e-12)


def test_regression_metrics_from_sums_equal_sklearn():
    x, y = load_diabetes(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, random_state=2)
    pred = LinearRegression().fit(x_train, y_train).predict(x_test)
    sums = add_sums(
        label_sums(y_test[:50], pred[:50], None, "regression"),
        label_sums(y_test[50:], pred[50:], None, "regression"),
    )
    metrics = metrics_from_sums(sums, "regression")
    assert metrics["mae"] == pytest.approx(mean_absolute_error(y_test, pred), rel=1e-12)
    assert metrics["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y_test, pred)), rel=1e-12)
    assert metrics["r2"] == pytest.approx(r2_score(y_test, pred), rel=1e-9)


def test_labels_given_as_numbers_or_text_are_the_same_class():
    sums = label_sums(pd.Series([1.0, 0.0, 1.0]), ["1", "0", "0"], None, "classification", "1")
    assert (sums["tp"], sums["tn"], sums["fn"], sums["fp"]) == (1, 1, 1, 0)
    with pytest.raises(InvalidInput, match="task"):
        label_sums([1], [1], None, "ranking")


def test_cbpe_estimate_is_close_to_realised_accuracy_for_calibrated_probabilities(cancer):
    model, _, x_test, y_test = cancer
    proba = model.predict_proba(x_test)[:, 1]
    pred = model.predict(x_test)
    estimate = cbpe_estimate(cbpe_sums(proba, pred == 1))
    realised = metrics_from_sums(
        label_sums(y_test, pred, proba, "classification", "1"), "classification"
    )
    assert abs(estimate["accuracy"] - realised["accuracy"]) < 0.03
    assert abs(estimate["precision"] - realised["precision"]) < 0.05
    assert abs(estimate["recall"] - realised["recall"]) < 0.05
    assert cbpe_estimate(proba) == pytest.approx(estimate)
    overconfident = cbpe_estimate(np.where(proba > 0.5, 1.0, 0.0))
    assert overconfident["accuracy"] == 1.0


def test_performance_table_uses_labels_where_joined_and_estimates_elsewhere(cancer):
    model, x_train, x_test, y_test = cancer
    features = {name: "numeric" for name in x_train.columns}
    reference_pred = pd.Series(model.predict(x_train))
    profile = build_reference(
        x_train,
        features,
        prediction=reference_pred,
        score=pd.Series(model.predict_proba(x_train)[:, 1]),
    )
    assert profile.task == "classification" and profile.positive_label == "1"
    frame = x_test.reset_index(drop=True).copy()
    frame["prediction"] = model.predict(x_test)
    frame["score"] = model.predict_proba(x_test)[:, 1]
    frame["prediction_id"] = range(len(frame))
    frame["timestamp"] = np.where(np.arange(len(frame)) < 120, "2026-05-01", "2026-05-02")
    windows = aggregate_chunk(frame, profile)
    labelled = frame[frame["timestamp"] == "2026-05-01"].assign(label=y_test.to_numpy()[:120])
    windows = merge_windows(windows, aggregate_labels(labelled, profile))
    stored = {
        k: WindowAggregate.from_dict(json.loads(json.dumps(w.to_dict())))
        for k, w in windows.items()
    }
    table = performance_table(stored, "classification").set_index("window")
    assert table.loc[date(2026, 5, 1), "source"] == "realised"
    assert table.loc[date(2026, 5, 2), "source"] == "estimated"
    day1_pred = frame["prediction"][:120]
    assert table.loc[date(2026, 5, 1), "accuracy"] == pytest.approx(
        accuracy_score(y_test.to_numpy()[:120], day1_pred), abs=1e-12
    )
    assert table.loc[date(2026, 5, 1), "n_labelled"] == 120
    assert 0.85 < table.loc[date(2026, 5, 2), "accuracy"] <= 1.0


def _scores(rng, n, separation, ties=False):
    y = rng.random(n) < 0.3
    p = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + separation * y - 1)))
    if ties:  # a model that outputs few distinct scores (a shallow tree)
        p = np.round(p, 1)
    return y, p


@pytest.mark.parametrize("separation,ties", [(0.5, False), (2.0, False), (4.0, False), (2.0, True)])
def test_ranking_metrics_from_merged_histograms_match_sklearn(separation, ties):
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    rng = np.random.default_rng(3)
    y, p = _scores(rng, 20_000, separation, ties)
    labels, predicted = np.where(y, "Yes", "No"), np.where(p >= 0.5, "Yes", "No")
    sums = {}
    for part in np.array_split(np.arange(len(y)), 7):
        sums = add_sums(
            sums, label_sums(labels[part], predicted[part], p[part], "classification", "Yes")
        )
    metrics = metrics_from_sums(json.loads(json.dumps(sums)), "classification")
    assert abs(metrics["roc_auc"] - roc_auc_score(y, p)) <= 0.002
    assert abs(metrics["pr_auc"] - average_precision_score(y, p)) <= 0.002
    assert metrics["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert metrics["gini"] == pytest.approx(2 * metrics["roc_auc"] - 1)
    cdf_gap = max(abs((p[y] <= t).mean() - (p[~y] <= t).mean()) for t in np.unique(np.round(p, 3)))
    assert abs(metrics["ks"] - cdf_gap) <= 0.01


def test_estimated_auc_from_scores_matches_the_realised_one_when_calibrated():
    rng = np.random.default_rng(5)
    p = rng.beta(2, 5, 50_000)
    y = rng.random(len(p)) < p  # labels drawn from the scores: calibrated by construction
    estimate = cbpe_estimate(cbpe_sums(p, p >= 0.5))
    from sklearn.metrics import roc_auc_score

    assert abs(estimate["roc_auc"] - roc_auc_score(y, p)) <= 0.01
    assert estimate["brier"] == pytest.approx(np.mean((p - y) ** 2), abs=0.003)


def test_regression_mape_equals_sklearn_on_nonzero_targets():
    from sklearn.metrics import mean_absolute_percentage_error

    rng = np.random.default_rng(2)
    y = rng.gamma(2.0, 10.0, 3_000)
    pred = y * rng.normal(1.0, 0.1, len(y))
    sums = add_sums(
        label_sums(y[:1000], pred[:1000], None, "regression"),
        label_sums(y[1000:], pred[1000:], None, "regression"),
    )
    metrics = metrics_from_sums(sums, "regression")
    assert metrics["mape"] == pytest.approx(mean_absolute_percentage_error(y, pred), rel=1e-12)
