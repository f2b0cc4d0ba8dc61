import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from scipy import stats
from sklearn import metrics
from threadpoolctl import threadpool_limits

from core.demo import data as demo_data
from core.demo.data import (
    DemoModel,
    bike_demand_model,
    bikeshare_production_stream,
    credit_drift_episode,
    credit_production_stream,
    credit_risk_model,
    iris_or_breast_cancer_model,
    load_bikeshare,
)
from core.errors import InvalidInput, NotFound

DATA = Path(__file__).resolve().parents[2] / "data"
ALLOWED_SKOPS_TYPES = {
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
}


@pytest.fixture(autouse=True, scope="module")
def one_openmp_thread():
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def credit() -> DemoModel:
    return credit_risk_model(DATA)


@pytest.fixture(scope="module")
def bikes() -> DemoModel:
    return bike_demand_model(DATA)


@pytest.fixture(scope="module")
def cancer() -> DemoModel:
    return iris_or_breast_cancer_model()


@pytest.fixture(scope="module")
def bike_stream() -> pd.DataFrame:
    return bikeshare_production_stream(DATA)


@pytest.fixture(scope="module")
def credit_stream() -> pd.DataFrame:
    return credit_production_stream(DATA)


def goal_value(model: DemoModel, version) -> float:
    frame = version.evaluation
    truth = frame[model.target]
    features = frame[model.features]
    if model.goal_metric == "roc_auc":
        return metrics.roc_auc_score(truth, version.estimator.predict_proba(features)[:, 1])
    if model.goal_metric == "recall":
        return metrics.recall_score(truth, version.estimator.predict(features))
    assert model.goal_metric == "mae"
    return metrics.mean_absolute_error(truth, version.estimator.predict(features))


def goal_met(model: DemoModel, value: float) -> bool:
    if model.goal_operator == ">=":
        return value >= model.goal_target
    assert model.goal_operator == "<="
    return value <= model.goal_target


def test_credit_csv_regenerates_identically(tmp_path: Path):
    out = tmp_path / "credit.csv"
    script = DATA / "make_credit_risk.py"
    subprocess.run(
        [sys.executable, str(script), "--out", str(out)], check=True, capture_output=True
    )
    assert sha256(out) == sha256(DATA / "credit_risk.csv")


def test_credit_csv_shape_rate_and_mild_region_disparity():
    path = DATA / "credit_risk.csv"
    assert path.stat().st_size < 1_000_000
    frame = pd.read_csv(path)
    assert len(frame) == 6000
    assert 0.12 < frame["default"].mean() < 0.18
    assert set(frame["region"]) == {"north", "south", "east", "west"}
    by_region = frame.groupby("region")["default"].mean()
    assert 0.02 < by_region.max() - by_region.min() < 0.10
    assert 0.0 < frame["employment_years"].isna().mean() < 0.06
    assert frame.drop(columns="employment_years").notna().all().all()


@pytest.mark.parametrize("fixture", ["credit", "bikes", "cancer"])
def test_each_model_trains_predicts_and_versions_differ(request, fixture):
    model: DemoModel = request.getfixturevalue(fixture)
    assert model.risk_tier in {"low", "medium", "high"}
    assert len(model.versions) >= 3
    assert set(model.feature_types.values()) <= {"numeric", "categorical"}
    values = []
    for version in model.versions:
        assert list(version.estimator.feature_names_in_) == model.features
        assert model.target in version.train.columns and model.target in version.evaluation.columns
        if model.sensitive:
            assert model.sensitive in version.evaluation.columns
        predictions = version.estimator.predict(version.evaluation[model.features])
        assert len(predictions) == len(version.evaluation)
        assert version.code_ref.startswith("git:demo@") and version.notes and version.params_summary
        values.append(round(goal_value(model, version), 3))
    assert len(set(values)) == len(values), values
    verdicts = {goal_met(model, value) for value in values}
    assert verdicts == {True, False}, (model.name, values)


def test_categorical_features_are_strings_and_numeric_are_numbers(credit, bikes):
    for model in (credit, bikes):
        frame = model.versions[0].evaluation
        for name, kind in model.feature_types.items():
            assert pd.api.types.is_numeric_dtype(frame[name]) == (kind == "numeric"), name


def test_training_is_deterministic(cancer):
    again = iris_or_breast_cancer_model()
    for first, second in zip(cancer.versions, again.versions, strict=True):
        features = first.evaluation[cancer.features]
        np.testing.assert_array_equal(
            first.estimator.predict_proba(features), second.estimator.predict_proba(features)
        )


@pytest.mark.parametrize("fixture", ["credit", "bikes", "cancer"])
def test_estimators_round_trip_through_skops_with_few_trusted_types(request, fixture):
    model: DemoModel = request.getfixturevalue(fixture)
    for version in model.versions:
        payload = sio.dumps(version.estimator)
        untrusted = sio.get_untrusted_types(data=payload)
        assert set(untrusted) <= ALLOWED_SKOPS_TYPES
        loaded = sio.loads(payload, trusted=untrusted)
        features = version.evaluation[model.features]
        np.testing.assert_allclose(loaded.predict(features), version.estimator.predict(features))


def test_bike_model_trained_on_winter_only(bikes):
    train = bikes.versions[0].train
    assert train["temp"].max() < 0.75
    raw = pd.read_csv(DATA / "bikeshare_2011_hourly.csv")
    winter_rows = raw["mnth"].isin(["Jan", "Feb", "March"]).sum()
    assert len(train) + len(bikes.versions[0].evaluation) == winter_rows


def test_bike_error_in_summer_is_clearly_worse(bikes, bike_stream):
    summer = bike_stream[bike_stream["timestamp"].dt.month.isin([7, 8])]
    assert summer["temp"].mean() > bikes.versions[0].train["temp"].mean() + 0.4
    for version in bikes.versions[1:]:
        own = goal_value(bikes, version)
        assert goal_met(bikes, own)
        summer_mae = metrics.mean_absolute_error(
            summer[bikes.target], version.estimator.predict(summer[bikes.features])
        )
        assert summer_mae > 3 * own
        assert not goal_met(bikes, summer_mae)


def test_bike_stream_columns_and_time_order(bikes, bike_stream):
    assert list(bike_stream.columns) == ["timestamp", "prediction_id", *bikes.features, "bikers"]
    stamps = bike_stream["timestamp"]
    assert stamps.is_monotonic_increasing and stamps.is_unique
    assert stamps.iloc[0] == pd.Timestamp("2011-04-01 00:00")
    assert stamps.iloc[-1] == pd.Timestamp("2011-12-31 23:00")
    assert sorted(stamps.dt.month.unique()) == list(range(4, 13))
    assert bike_stream["prediction_id"].is_unique
    raw = pd.read_csv(DATA / "bikeshare_2011_hourly.csv")
    assert len(bike_stream) == (~raw["mnth"].isin(["Jan", "Feb", "March"])).sum()


def test_bike_timestamps_match_the_file():
    raw = pd.read_csv(DATA / "bikeshare_2011_hourly.csv")
    frame = load_bikeshare(DATA)
    assert len(frame) == len(raw)
    july_fourth_noon = frame[frame["timestamp"] == pd.Timestamp("2011-07-04 12:00")].iloc[0]
    assert july_fourth_noon["mnth"] == "July" and july_fourth_noon["holiday"] == 1
    sept = frame[frame["mnth"] == "Sept"]["timestamp"]
    assert sept.min() == pd.Timestamp("2011-09-01 00:00")
    march = frame[frame["mnth"] == "March"]["timestamp"]
    assert march.max().month == 3 and march.min().day == 1


def test_credit_stream_columns_order_and_ids(credit, credit_stream):
    assert list(credit_stream.columns) == [
        "timestamp",
        "prediction_id",
        *credit.features,
        "default",
    ]
    assert credit_stream["timestamp"].is_monotonic_increasing
    assert credit_stream["prediction_id"].is_unique
    assert credit_stream["timestamp"].dt.normalize().nunique() == 120
    assert 8_000 < len(credit_stream) < 14_000


def test_credit_stream_has_a_drift_episode(credit, credit_stream):
    begin, end = credit_drift_episode()
    assert (end - begin).days == 21
    in_drift = (credit_stream["timestamp"] >= begin) & (credit_stream["timestamp"] < end)
    drifted, normal = credit_stream[in_drift], credit_stream[~in_drift]
    reference = credit.versions[0].evaluation
    assert stats.ks_2samp(drifted["debt_to_income"], reference["debt_to_income"]).pvalue < 1e-6
    assert stats.ks_2samp(drifted["income"], reference["income"]).pvalue < 1e-6
    assert drifted["debt_to_income"].mean() > normal["debt_to_income"].mean() + 0.08
    assert drifted["default"].mean() > normal["default"].mean() + 0.08
    assert stats.ks_2samp(normal["debt_to_income"], reference["debt_to_income"]).pvalue > 0.001


def test_credit_stream_never_reuses_training_or_evaluation_rows(credit, credit_stream):
    key = ["applicant_age", "income", "loan_amount", "credit_history_months", "debt_to_income"]
    seen = pd.concat([credit.versions[0].train, credit.versions[0].evaluation])[key]
    overlap = credit_stream[key].merge(seen.drop_duplicates(), on=key)
    assert len(overlap) == 0


def test_credit_stream_is_deterministic_and_seeded(credit_stream):
    again = credit_production_stream(DATA, days=30)
    pd.testing.assert_frame_equal(again, credit_production_stream(DATA, days=30))
    other = credit_production_stream(DATA, days=30, seed=8)
    assert len(other) != len(again) or not other["income"].equals(again["income"])


def test_missing_data_file_is_reported(tmp_path: Path):
    with pytest.raises(NotFound, match="make_credit_risk.py"):
        credit_risk_model(tmp_path)
    with pytest.raises(InvalidInput, match="days=0"):
        credit_production_stream(DATA, days=0)


def test_unknown_month_name_is_reported(tmp_path: Path):
    raw = pd.read_csv(DATA / "bikeshare_2011_hourly.csv").head(30)
    raw.loc[3, "mnth"] = "Januar"
    raw.to_csv(tmp_path / demo_data.BIKESHARE_FILE, index=False)
    with pytest.raises(InvalidInput, match="Januar"):
        load_bikeshare(tmp_path)
