import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from core.errors import InvalidInput
from core.evaluation import (
    HIGHER_IS_BETTER,
    METRIC_LABELS,
    compare,
    data_hash,
    describe_goal,
    evaluate,
    goal_met,
    infer_task,
)


def split(loader):
    X, y = loader(return_X_y=True, as_frame=True)
    return train_test_split(X, y, test_size=0.4, random_state=0)


@pytest.fixture(scope="module")
def cancer():
    X_train, X_test, y_train, y_test = split(load_breast_cancer)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X_train, y_train)
    frame = X_test.assign(diagnosis=y_test.to_numpy())
    return model, frame, X_test, y_test


@pytest.fixture(scope="module")
def diabetes():
    X_train, X_test, y_train, y_test = split(load_diabetes)
    model = Ridge(alpha=0.5).fit(X_train, y_train)
    return model, X_test.assign(progression=y_test.to_numpy()), X_test, y_test


def assert_json_plain(result):
    text = json.dumps(result, allow_nan=False)
    assert json.loads(text) == result


def test_binary_metrics_equal_sklearn(cancer):
    model, frame, X_test, y_test = cancer
    result = evaluate(model, frame, "diagnosis", "binary_classification")
    pred, proba = model.predict(X_test), model.predict_proba(X_test)
    metrics = result["metrics"]
    assert metrics["accuracy"] == pytest.approx(skm.accuracy_score(y_test, pred))
    assert metrics["precision"] == pytest.approx(skm.precision_score(y_test, pred))
    assert metrics["recall"] == pytest.approx(skm.recall_score(y_test, pred))
    assert metrics["f1"] == pytest.approx(skm.f1_score(y_test, pred))
    assert metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(y_test, proba[:, 1]))
    assert metrics["log_loss"] == pytest.approx(skm.log_loss(y_test, proba))
    assert result["confusion_matrix"] == {
        "labels": [0, 1],
        "matrix": skm.confusion_matrix(y_test, pred).tolist(),
    }
    assert result["n_rows"] == len(frame) and result["positive_label"] == 1
    assert result["notes"] == []
    assert_json_plain(result)


def test_binary_curves_are_downsampled_and_match_sklearn(cancer):
    model, frame, X_test, y_test = cancer
    curves = evaluate(model, frame, "diagnosis", "binary_classification")["curves"]
    scores = model.predict_proba(X_test)[:, 1]
    fpr, tpr, _ = skm.roc_curve(y_test, scores)
    precision, _, _ = skm.precision_recall_curve(y_test, scores)
    roc, pr = curves["roc"], curves["pr"]
    assert len(roc["fpr"]) <= 200 and len(pr["precision"]) <= 200
    assert roc["fpr"][0] == fpr[0] and roc["tpr"][-1] == tpr[-1]
    assert len(pr["precision"]) == min(200, len(precision))
    assert len(curves["calibration"]["prob_pred"]) == len(curves["calibration"]["prob_true"])
    assert all(0 <= p <= 1 for p in curves["calibration"]["prob_true"])


def test_positive_label_changes_binary_metrics(cancer):
    model, frame, X_test, y_test = cancer
    result = evaluate(model, frame, "diagnosis", "binary_classification", positive_label=0)
    pred = model.predict(X_test)
    assert result["metrics"]["recall"] == pytest.approx(skm.recall_score(y_test, pred, pos_label=0))
    with pytest.raises(InvalidInput, match="positive label 7"):
        evaluate(model, frame, "diagnosis", "binary_classification", positive_label=7)


def test_model_without_predict_proba_says_so(cancer):
    _, frame, X_test, y_test = cancer
    svc = LinearSVC().fit(X_test, y_test)
    result = evaluate(svc, frame, "diagnosis", "binary_classification")
    assert result["metrics"]["roc_auc"] is None and result["metrics"]["log_loss"] is None
    assert result["curves"] is None
    assert any("predict_proba" in note for note in result["notes"])
    assert result["metrics"]["accuracy"] == pytest.approx(
        skm.accuracy_score(y_test, svc.predict(X_test))
    )
    assert_json_plain(result)


def test_multiclass_metrics_equal_sklearn():
    X_train, X_test, y_train, y_test = split(load_iris)
    model = LogisticRegression(max_iter=1000).fit(X_train, y_train)
    result = evaluate(
        model, X_test.assign(species=y_test.to_numpy()), "species", infer_task(y_test)
    )
    pred, proba = model.predict(X_test), model.predict_proba(X_test)
    metrics = result["metrics"]
    assert result["task"] == "multiclass_classification"
    assert metrics["f1"] == pytest.approx(skm.f1_score(y_test, pred, average="macro"))
    assert metrics["precision"] == pytest.approx(skm.precision_score(y_test, pred, average="macro"))
    assert metrics["recall"] == pytest.approx(skm.recall_score(y_test, pred, average="macro"))
    assert metrics["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y_test, proba, multi_class="ovr", average="macro")
    )
    assert metrics["log_loss"] == pytest.approx(skm.log_loss(y_test, proba))
    assert len(result["confusion_matrix"]["matrix"]) == 3
    assert result["fairness"] is None
    assert_json_plain(result)


def test_regression_metrics_equal_sklearn(diabetes):
    model, frame, X_test, y_test = diabetes
    result = evaluate(model, frame, "progression", infer_task(frame["progression"]))
    pred = model.predict(X_test)
    metrics = result["metrics"]
    assert result["task"] == "regression"
    assert metrics["mae"] == pytest.approx(skm.mean_absolute_error(y_test, pred))
    assert metrics["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y_test, pred)))
    assert metrics["r2"] == pytest.approx(skm.r2_score(y_test, pred))
    histogram = result["residuals"]["histogram"]
    assert sum(histogram["counts"]) == len(frame)
    assert len(histogram["edges"]) == len(histogram["counts"]) + 1
    scatter = result["residuals"]["pred_vs_actual"]
    assert len(scatter["actual"]) == len(scatter["predicted"]) == len(frame)
    assert result["confusion_matrix"] is None
    assert_json_plain(result)


def test_regression_scatter_is_sampled_to_2000_points():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=5000), "b": rng.normal(size=5000)})
    y = 3 * X["a"] - X["b"] + rng.normal(size=5000)
    model = Ridge().fit(X, y)
    result = evaluate(model, X.assign(y=y), "y", "regression", sensitive=None)
    assert len(result["residuals"]["pred_vs_actual"]["actual"]) == 2000
    assert len(result["residuals"]["histogram"]["counts"]) <= 50


def memorising_model(x, predictions):
    train = pd.DataFrame({"x": x})
    return DecisionTreeClassifier(random_state=0).fit(train, predictions)


def test_fairness_on_a_small_frame_with_known_values():
    frame = pd.DataFrame(
        {
            "x": range(8),
            "group": ["a"] * 4 + ["b"] * 4,
            "y": [1, 1, 0, 0, 1, 1, 0, 0],
        }
    )
    model = memorising_model(frame["x"], [1, 0, 1, 0, 1, 1, 1, 0])
    result = evaluate(model, frame, "y", "binary_classification", sensitive="group")
    by_group = {s["group"]: s for s in result["slices"]}
    assert by_group["a"]["n"] == 4
    assert by_group["a"]["selection_rate"] == 0.5
    assert (by_group["a"]["tpr"], by_group["a"]["fpr"]) == (0.5, 0.5)
    assert by_group["b"]["selection_rate"] == 0.75
    assert (by_group["b"]["tpr"], by_group["b"]["fpr"]) == (1.0, 0.5)
    assert by_group["b"]["metrics"]["accuracy"] == 0.75
    fairness = result["fairness"]
    assert fairness["sensitive"] == "group"
    assert fairness["demographic_parity_difference"] == pytest.approx(0.25)
    assert fairness["equalized_odds_difference"] == pytest.approx(0.5)


def test_fairness_uses_the_larger_of_tpr_and_fpr_gaps_and_keeps_missing_groups():
    frame = pd.DataFrame(
        {
            "x": range(6),
            "group": ["a", "a", "a", None, None, None],
            "y": [1, 0, 0, 1, 0, 0],
        }
    )
    model = memorising_model(frame["x"], [1, 0, 0, 1, 1, 1])
    result = evaluate(model, frame, "y", "binary_classification", sensitive="group")
    groups = [s["group"] for s in result["slices"]]
    assert groups == ["(missing)", "a"]
    assert result["fairness"]["equalized_odds_difference"] == pytest.approx(1.0)
    assert result["fairness"]["demographic_parity_difference"] == pytest.approx(2 / 3)


def test_regression_slices_have_metrics_per_group(diabetes):
    model, frame, _, _ = diabetes
    with_sex = frame.assign(band=np.where(frame["sex"] > 0, "high", "low"))
    result = evaluate(model, with_sex, "progression", "regression", sensitive="band")
    assert {s["group"] for s in result["slices"]} == {"high", "low"}
    assert sum(s["n"] for s in result["slices"]) == len(frame)
    assert all("rmse" in s["metrics"] for s in result["slices"])
    assert result["fairness"] is None


def test_hashes_are_stable_and_sensitive_to_change(cancer):
    model, frame, _, _ = cancer
    first = evaluate(model, frame, "diagnosis", "binary_classification")
    again = evaluate(
        model, frame[list(reversed(frame.columns))], "diagnosis", "binary_classification"
    )
    assert first["data_hash"] == again["data_hash"]
    assert first["predictions_hash"] == again["predictions_hash"]
    changed = frame.copy()
    changed.iloc[0, 0] += 1
    assert data_hash(changed) != first["data_hash"]
    assert len(first["predictions_hash"]) == 64


def test_bad_evaluation_inputs_are_refused(cancer):
    model, frame, _, _ = cancer
    with pytest.raises(InvalidInput, match="target column 'nope'"):
        evaluate(model, frame, "nope", "binary_classification")
    with pytest.raises(InvalidInput, match="lacks model features: mean radius"):
        evaluate(model, frame.drop(columns=["mean radius"]), "diagnosis", "binary_classification")
    with_nan = frame.assign(diagnosis=frame["diagnosis"].astype(float))
    with_nan.iloc[3, with_nan.columns.get_loc("diagnosis")] = np.nan
    with pytest.raises(InvalidInput, match="empty values"):
        evaluate(model, with_nan, "diagnosis", "binary_classification")
    with pytest.raises(InvalidInput, match="Unknown task"):
        evaluate(model, frame, "diagnosis", "clustering")
    with pytest.raises(InvalidInput, match="could not score"):
        evaluate(
            model, frame.assign(**{"mean radius": "big"}), "diagnosis", "binary_classification"
        )


def test_infer_task():
    assert infer_task(pd.Series([0, 1, 1, 0])) == "binary_classification"
    assert infer_task(pd.Series(["yes", "no"])) == "binary_classification"
    assert infer_task(pd.Series(["a", "b", "c"])) == "multiclass_classification"
    assert infer_task(pd.Series([0, 1, 2, 2])) == "multiclass_classification"
    assert infer_task(pd.Series([0.5, 1.25, 3.0])) == "regression"
    assert infer_task(pd.Series(range(100))) == "regression"
    with pytest.raises(InvalidInput, match="at least two outcomes"):
        infer_task(pd.Series([1, 1, 1], name="churn"))


def test_labels_and_directions_cover_the_same_metrics():
    assert set(HIGHER_IS_BETTER) <= set(METRIC_LABELS)
    assert HIGHER_IS_BETTER["rmse"] is False and HIGHER_IS_BETTER["recall"] is True


def rows_by_name(rows):
    return {row["name"]: row for row in rows}


def test_compare_sentences_in_points_and_units():
    candidate = {"metrics": {"recall": 0.831, "accuracy": 0.9, "rmse": 87.6, "log_loss": 0.3}}
    champion = {"metrics": {"recall": 0.8, "accuracy": 0.92, "rmse": 100.0, "log_loss": 0.25}}
    rows = rows_by_name(compare(candidate, champion))
    assert rows["recall"]["sentence"] == "Recall rose 3.1 points (better)"
    assert rows["recall"]["better"] is True
    assert rows["recall"]["delta"] == pytest.approx(0.031)
    assert rows["accuracy"]["sentence"] == "Accuracy fell 2.0 points (worse)"
    assert rows["accuracy"]["better"] is False
    assert rows["rmse"]["sentence"] == "RMSE fell 12.4% (better; lower is better)"
    assert rows["rmse"]["better"] is True
    assert rows["log_loss"]["sentence"] == "Log loss rose 20.0% (worse; lower is better)"
    assert rows["log_loss"]["better"] is False
    assert rows["recall"]["label"] == "Recall"
    assert [r["name"] for r in compare(candidate, champion)][0] == "accuracy"


def test_compare_sentences_say_better_or_worse_whichever_way_the_metric_points():
    candidate = {"log_loss": 0.22, "mae": 3.5, "r2": 0.7, "lift": 2.0, "rmse": 0.4}
    champion = {"log_loss": 0.25, "mae": 0.0, "r2": 0.75, "lift": 1.5, "rmse": 0.4}
    rows = rows_by_name(compare(candidate, champion))
    assert rows["log_loss"]["sentence"] == "Log loss fell 12.0% (better; lower is better)"
    assert rows["mae"]["sentence"] == "MAE rose 3.5 (worse; lower is better)"
    assert rows["r2"]["sentence"] == "R² fell 5.0 points (worse)"
    assert rows["lift"]["sentence"] == "lift rose 33.3%" and rows["lift"]["better"] is None
    assert rows["rmse"]["sentence"] == "RMSE unchanged"


def test_compare_unchanged_missing_and_unshared():
    candidate = {"f1": 0.7, "roc_auc": None, "mae": 3.0}
    champion = {"f1": 0.7, "roc_auc": 0.9, "r2": 0.5}
    rows = rows_by_name(compare(candidate, champion))
    assert set(rows) == {"f1", "roc_auc"}
    assert rows["f1"]["sentence"] == "F1 unchanged" and rows["f1"]["better"] is None
    assert rows["roc_auc"]["delta"] is None
    assert "no value for candidate" in rows["roc_auc"]["sentence"]


def test_compare_real_results(diabetes):
    model, frame, X_test, y_test = diabetes
    weaker = Ridge(alpha=50).fit(X_test, y_test)
    rows = rows_by_name(
        compare(
            evaluate(model, frame, "progression", "regression"),
            evaluate(weaker, frame, "progression", "regression"),
        )
    )
    assert set(rows) == {"mae", "rmse", "r2"}
    assert rows["rmse"]["better"] is True
    assert rows["rmse"]["sentence"].startswith("RMSE fell")


@pytest.mark.parametrize(
    ("operator", "target", "expected"),
    [
        (">=", 0.8, True),
        (">=", 0.83, True),
        (">", 0.83, False),
        ("<=", 0.9, True),
        ("<", 0.83, False),
        ("<", 0.9, True),
    ],
)
def test_goal_met(operator, target, expected):
    assert goal_met({"recall": 0.83}, "recall", operator, target) is expected


def test_goal_met_unknown_values_and_operator():
    assert goal_met({"metrics": {"recall": 0.83}}, "recall", ">=", 0.8) is True
    assert goal_met({"recall": None}, "recall", ">=", 0.8) is None
    assert goal_met({}, "recall", ">=", 0.8) is None
    with pytest.raises(InvalidInput, match="Unknown goal operator"):
        goal_met({"recall": 0.83}, "recall", "=>", 0.8)


def test_describe_goal():
    assert describe_goal("recall", ">=", 0.8, 0.83) == (
        "Recall is 0.83, goal is at least 0.80: met."
    )
    assert describe_goal("rmse", "<", 50, 53.2) == "RMSE is 53.20, goal is below 50.00: not met."
    assert describe_goal("recall", ">=", 0.8, 0.7996) == (
        "Recall is 0.7996, goal is at least 0.8000: not met."
    )
    assert describe_goal("f1", ">", 0.9, None) == (
        "F1 is not available, goal is above 0.90: cannot tell."
    )
