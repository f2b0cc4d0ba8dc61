"""Real models on real data for the demo: training and production streams, no database.

Three models, each with several versions trained on data that ships with the project
(``data/credit_risk.csv``, ``data/bikeshare_2011_hourly.csv``) or with scikit-learn
(the breast cancer set). Everything is seeded, so the same call gives the same models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from core.errors import InvalidInput, NotFound

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "data"
CREDIT_FILE = "credit_risk.csv"
BIKESHARE_FILE = "bikeshare_2011_hourly.csv"

CREDIT_TARGET = "default"
CREDIT_SENSITIVE = "region"
CREDIT_CATEGORICAL = ("loan_purpose", "home_ownership", "region")
CREDIT_NUMERIC = (
    "applicant_age",
    "income",
    "employment_years",
    "debt_to_income",
    "credit_history_months",
    "num_open_accounts",
    "loan_amount",
)
CREDIT_STREAM_START = date(2026, 7, 1)
CREDIT_DRIFT_LENGTH_DAYS = 21

BIKE_TARGET = "bikers"
BIKE_NUMERIC = ("hr", "weekday", "workingday", "holiday", "temp", "atemp", "hum", "windspeed")
BIKE_CATEGORICAL = ("weathersit",)
BIKE_TRAINING_MONTHS = (1, 2, 3)
BIKE_YEAR = 2011
BIKE_MONTHS = {
    "Jan": 1,
    "Feb": 2,
    "March": 3,
    "April": 4,
    "May": 5,
    "June": 6,
    "July": 7,
    "Aug": 8,
    "Sept": 9,
    "Oct": 10,
    "Nov": 11,
    "Dec": 12,
}

CANCER_TARGET = "malignant"

RANDOM_STATE = 42


@dataclass
class DemoVersion:
    estimator: Any
    train: pd.DataFrame
    evaluation: pd.DataFrame
    notes: str
    params_summary: str
    code_ref: str


@dataclass
class DemoModel:
    name: str
    purpose: str
    task: str
    risk_tier: str
    target: str
    sensitive: str | None
    goal_metric: str
    goal_operator: str
    goal_target: float
    tags: dict[str, str]
    feature_types: dict[str, str]
    versions: list[DemoVersion] = field(default_factory=list)

    @property
    def features(self) -> list[str]:
        return list(self.feature_types)


def _read_csv(data_dir: Path, name: str, hint: str) -> pd.DataFrame:
    path = Path(data_dir) / name
    if not path.is_file():
        raise NotFound(f"The demo data file {path} is missing. {hint}")
    return pd.read_csv(path)


def _require_columns(frame: pd.DataFrame, columns: list[str], source: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise InvalidInput(
            f"{source} lacks the column(s) {', '.join(missing)}; restore the file shipped "
            "with the project.",
            details=[f"found columns: {', '.join(map(str, frame.columns))}"],
        )


def _preprocessor(
    numeric: tuple[str, ...], categorical: tuple[str, ...], *, scale: bool
) -> ColumnTransformer:
    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    return ColumnTransformer(
        [
            ("numeric", Pipeline(numeric_steps), list(numeric)),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                list(categorical),
            ),
        ]
    )


def _pipeline(
    numeric: tuple[str, ...], categorical: tuple[str, ...], model: Any, *, scale: bool
) -> Pipeline:
    return Pipeline(
        [("prepare", _preprocessor(numeric, categorical, scale=scale)), ("model", model)]
    )


def _fit(estimator: Any, train: pd.DataFrame, target: str) -> Any:
    # One OpenMP thread: the small fits are fastest so, and stay fast on a busy machine.
    with threadpool_limits(limits=1, user_api="openmp"):
        return estimator.fit(train.drop(columns=[target]), train[target])


def _feature_types(numeric: tuple[str, ...], categorical: tuple[str, ...]) -> dict[str, str]:
    types = {name: "numeric" for name in numeric}
    types.update({name: "categorical" for name in categorical})
    return types


# --- credit risk -------------------------------------------------------------------------


def load_credit_risk(data_dir: Path = DEFAULT_DATA_DIR) -> pd.DataFrame:
    frame = _read_csv(data_dir, CREDIT_FILE, "Recreate it with: python data/make_credit_risk.py")
    columns = [*CREDIT_NUMERIC, *CREDIT_CATEGORICAL, CREDIT_TARGET]
    _require_columns(frame, columns, CREDIT_FILE)
    return frame.loc[:, columns]


def credit_splits(
    data_dir: Path = DEFAULT_DATA_DIR,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train (60 %), evaluation (20 %) and a held-out production pool (20 %), stratified."""
    frame = load_credit_risk(data_dir)
    train, rest = train_test_split(
        frame, test_size=0.4, random_state=RANDOM_STATE, stratify=frame[CREDIT_TARGET]
    )
    evaluation, pool = train_test_split(
        rest, test_size=0.5, random_state=RANDOM_STATE, stratify=rest[CREDIT_TARGET]
    )
    return (
        train.reset_index(drop=True),
        evaluation.reset_index(drop=True),
        pool.reset_index(drop=True),
    )


def credit_risk_model(data_dir: Path = DEFAULT_DATA_DIR) -> DemoModel:
    """Loan default scorer: logistic baseline, then two boosted-tree versions."""
    train, evaluation, _ = credit_splits(data_dir)
    num, cat = CREDIT_NUMERIC, CREDIT_CATEGORICAL
    v1 = _pipeline(
        num,
        cat,
        LogisticRegression(max_iter=1000, class_weight="balanced", C=1.0),
        scale=True,
    )
    v2 = _pipeline(
        num,
        cat,
        GradientBoostingClassifier(
            n_estimators=150, max_depth=3, learning_rate=0.05, random_state=RANDOM_STATE
        ),
        scale=False,
    )
    v3 = _pipeline(
        num,
        cat,
        HistGradientBoostingClassifier(
            max_iter=250,
            learning_rate=0.04,
            max_depth=3,
            class_weight="balanced",
            random_state=RANDOM_STATE,
        ),
        scale=False,
    )
    versions = [
        DemoVersion(
            estimator=_fit(v1, train, CREDIT_TARGET),
            train=train,
            evaluation=evaluation,
            notes=(
                "Baseline: logistic regression on scaled numeric features and one-hot "
                "categories, balanced class weights. Linear, so it misses the sharp rise "
                "in risk above 40 % debt-to-income."
            ),
            params_summary="LogisticRegression(C=1.0, class_weight=balanced, max_iter=1000)",
            code_ref="git:demo@credit-v1",
        ),
        DemoVersion(
            estimator=_fit(v2, train, CREDIT_TARGET),
            train=train,
            evaluation=evaluation,
            notes=(
                "Gradient boosting captures the debt-to-income threshold and the renter "
                "interaction: ROC AUC up about five points. Unweighted, so at the default "
                "0.5 threshold it flags fewer defaults (recall falls)."
            ),
            params_summary=(
                "GradientBoostingClassifier(n_estimators=150, max_depth=3, learning_rate=0.05)"
            ),
            code_ref="git:demo@credit-v2",
        ),
        DemoVersion(
            estimator=_fit(v3, train, CREDIT_TARGET),
            train=train,
            evaluation=evaluation,
            notes=(
                "Histogram gradient boosting with balanced class weights: at the default "
                "threshold it catches far more defaults than v2 (recall from about 32 % to "
                "56 %) for under a point of ROC AUC."
            ),
            params_summary=(
                "HistGradientBoostingClassifier(max_iter=250, learning_rate=0.04, "
                "max_depth=3, class_weight=balanced)"
            ),
            code_ref="git:demo@credit-v3",
        ),
    ]
    return DemoModel(
        name="credit-default-scorer",
        purpose=(
            "Scores consumer loan applications by their probability of default within 12 "
            "months; the score supports, and never replaces, the underwriter's decision."
        ),
        task="binary_classification",
        risk_tier="high",
        target=CREDIT_TARGET,
        sensitive=CREDIT_SENSITIVE,
        goal_metric="roc_auc",
        goal_operator=">=",
        goal_target=0.78,
        tags={"region": "eu", "sector": "banking", "use_case": "creditworthiness"},
        feature_types=_feature_types(num, cat),
        versions=versions,
    )


def credit_drift_episode(
    days: int = 120, start: date = CREDIT_STREAM_START
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First day and the day after the last day of the stream's drift episode."""
    first = int(days * 0.55)
    length = min(CREDIT_DRIFT_LENGTH_DAYS, max(days - first, 0))
    begin = pd.Timestamp(start) + pd.Timedelta(days=first)
    return begin, begin + pd.Timedelta(days=length)


def _stress_weights(pool: pd.DataFrame) -> np.ndarray:
    dti = pool["debt_to_income"].to_numpy(dtype=float)
    log_income = np.log(pool["income"].to_numpy(dtype=float))
    z_dti = (dti - dti.mean()) / dti.std()
    z_income = (log_income - log_income.mean()) / log_income.std()
    weights = np.exp(0.8 * z_dti - 0.6 * z_income)
    return weights / weights.sum()


def credit_production_stream(
    data_dir: Path = DEFAULT_DATA_DIR,
    days: int = 120,
    seed: int = 7,
    *,
    start: date = CREDIT_STREAM_START,
) -> pd.DataFrame:
    """Daily application batches with labels, drawn from applicants no version trained on.

    During the drift episode (see ``credit_drift_episode``) applications come mostly from
    stressed borrowers (higher debt-to-income, lower income), as after a rate rise: the
    feature distributions and the default rate shift, and the labels stay the real ones.
    """
    if days < 1:
        raise InvalidInput(f"The credit stream needs at least one day; got days={days}.")
    _, _, pool = credit_splits(data_dir)
    rng = np.random.default_rng(seed)
    uniform = np.full(len(pool), 1 / len(pool))
    stressed = _stress_weights(pool)
    drift_begin, drift_end = credit_drift_episode(days, start)
    batches = []
    for offset in range(days):
        day = pd.Timestamp(start) + pd.Timedelta(days=offset)
        volume = 100 if day.dayofweek < 5 else 55
        count = int(rng.poisson(volume))
        in_drift = drift_begin <= day < drift_end
        rows = rng.choice(len(pool), size=count, p=stressed if in_drift else uniform)
        batch = pool.iloc[rows].reset_index(drop=True)
        seconds = np.sort(rng.integers(7 * 3600, 22 * 3600, size=count))
        batch.insert(0, "timestamp", day + pd.to_timedelta(seconds, unit="s"))
        ids = [f"credit-{day:%Y%m%d}-{index:04d}" for index in range(count)]
        batch.insert(1, "prediction_id", ids)
        batches.append(batch)
    return pd.concat(batches, ignore_index=True)


# --- bike demand -------------------------------------------------------------------------


def load_bikeshare(data_dir: Path = DEFAULT_DATA_DIR) -> pd.DataFrame:
    """The 2011 hourly rentals with a ``timestamp`` column, sorted by time.

    In this file ``day`` is the day of the year (1-365), checked against ``mnth``.
    """
    frame = _read_csv(data_dir, BIKESHARE_FILE, "Copy it back from the project's data folder.")
    _require_columns(
        frame, ["mnth", "day", *BIKE_NUMERIC, *BIKE_CATEGORICAL, BIKE_TARGET], BIKESHARE_FILE
    )
    unknown = sorted(set(frame["mnth"].astype(str)) - set(BIKE_MONTHS))
    if unknown:
        raise InvalidInput(
            f"{BIKESHARE_FILE} has month names that are not recognised: {', '.join(unknown)}.",
            details=[f"expected one of {', '.join(BIKE_MONTHS)}"],
        )
    day_of_year = frame["day"].astype(int)
    stamps = (
        pd.Timestamp(BIKE_YEAR, 1, 1)
        + pd.to_timedelta(day_of_year - 1, unit="D")
        + pd.to_timedelta(frame["hr"].astype(int), unit="h")
    )
    mismatched = frame.loc[stamps.dt.month != frame["mnth"].map(BIKE_MONTHS), ["mnth", "day"]]
    if not mismatched.empty:
        first = mismatched.iloc[0]
        raise InvalidInput(
            f"{BIKESHARE_FILE}: day {first['day']} of the year does not fall in month "
            f"{first['mnth']} ({len(mismatched)} such rows); restore the shipped file."
        )
    frame = frame.assign(timestamp=stamps, hr=frame["hr"].astype(int))
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


def _bike_columns(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.loc[:, [*BIKE_NUMERIC, *BIKE_CATEGORICAL, BIKE_TARGET]].reset_index(drop=True)


def bike_demand_model(data_dir: Path = DEFAULT_DATA_DIR) -> DemoModel:
    """Hourly rentals forecaster trained on January to March 2011 only."""
    frame = load_bikeshare(data_dir)
    winter = _bike_columns(frame[frame["timestamp"].dt.month.isin(BIKE_TRAINING_MONTHS)])
    train, evaluation = train_test_split(winter, test_size=0.25, random_state=RANDOM_STATE)
    train, evaluation = train.reset_index(drop=True), evaluation.reset_index(drop=True)
    num, cat = BIKE_NUMERIC, BIKE_CATEGORICAL
    v1 = _pipeline(num, cat, Ridge(alpha=1.0), scale=True)
    v2 = _pipeline(
        num,
        cat,
        RandomForestRegressor(
            n_estimators=60, min_samples_leaf=3, random_state=RANDOM_STATE, n_jobs=1
        ),
        scale=False,
    )
    v3 = _pipeline(
        num,
        cat,
        HistGradientBoostingRegressor(
            loss="poisson", max_iter=300, learning_rate=0.08, random_state=RANDOM_STATE
        ),
        scale=False,
    )
    versions = [
        DemoVersion(
            estimator=_fit(v1, train, BIKE_TARGET),
            train=train,
            evaluation=evaluation,
            notes=(
                "Linear baseline on weather and calendar features; it cannot represent the "
                "morning and evening commuter peaks."
            ),
            params_summary="Ridge(alpha=1.0)",
            code_ref="git:demo@bikes-v1",
        ),
        DemoVersion(
            estimator=_fit(v2, train, BIKE_TARGET),
            train=train,
            evaluation=evaluation,
            notes="Random forest learns the hourly profile per working day: MAE roughly halved.",
            params_summary="RandomForestRegressor(n_estimators=60, min_samples_leaf=3)",
            code_ref="git:demo@bikes-v2",
        ),
        DemoVersion(
            estimator=_fit(v3, train, BIKE_TARGET),
            train=train,
            evaluation=evaluation,
            notes=(
                "Histogram gradient boosting with a Poisson loss, suited to counts. Trained "
                "on January to March 2011 like the earlier versions."
            ),
            params_summary=(
                "HistGradientBoostingRegressor(loss=poisson, max_iter=300, learning_rate=0.08)"
            ),
            code_ref="git:demo@bikes-v3",
        ),
    ]
    return DemoModel(
        name="bike-demand-forecaster",
        purpose=(
            "Forecasts hourly bike rentals per station network so operations can plan "
            "rebalancing trucks and staff."
        ),
        task="regression",
        risk_tier="medium",
        target=BIKE_TARGET,
        sensitive=None,
        goal_metric="mae",
        goal_operator="<=",
        goal_target=25.0,
        tags={"region": "us", "sector": "mobility", "use_case": "demand_forecasting"},
        feature_types=_feature_types(num, cat),
        versions=versions,
    )


def bikeshare_production_stream(data_dir: Path = DEFAULT_DATA_DIR) -> pd.DataFrame:
    """April to December 2011 hourly traffic with labels, sorted by time."""
    frame = load_bikeshare(data_dir)
    later = frame[frame["timestamp"].dt.month > max(BIKE_TRAINING_MONTHS)]
    stream = _bike_columns(later)
    stream.insert(0, "timestamp", later["timestamp"].to_numpy())
    ids = [f"bikes-{stamp:%Y%m%d%H}" for stamp in later["timestamp"]]
    stream.insert(1, "prediction_id", ids)
    return stream


# --- breast cancer -----------------------------------------------------------------------


def _breast_cancer_frame() -> pd.DataFrame:
    bundle = load_breast_cancer(as_frame=True)
    features = bundle.data.rename(columns=lambda name: str(name).replace(" ", "_"))
    return features.assign(**{CANCER_TARGET: (bundle.target == 0).astype(int)})


def iris_or_breast_cancer_model() -> DemoModel:
    """Low-risk benchmark classifier on scikit-learn's bundled breast cancer data."""
    frame = _breast_cancer_frame()
    train, evaluation = train_test_split(
        frame, test_size=0.3, random_state=RANDOM_STATE, stratify=frame[CANCER_TARGET]
    )
    train, evaluation = train.reset_index(drop=True), evaluation.reset_index(drop=True)
    num = tuple(column for column in frame.columns if column != CANCER_TARGET)
    v1 = Pipeline([("model", DecisionTreeClassifier(max_depth=2, random_state=RANDOM_STATE))])
    v2 = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(C=0.5))])
    v3 = Pipeline(
        [
            (
                "model",
                RandomForestClassifier(
                    n_estimators=40, max_depth=4, random_state=RANDOM_STATE, n_jobs=1
                ),
            )
        ]
    )
    specs = [
        (v1, "DecisionTreeClassifier(max_depth=2)", "Two-level tree, easy to read."),
        (
            v2,
            "StandardScaler + LogisticRegression(C=0.5)",
            "Regularised logistic regression on all 30 measurements.",
        ),
        (
            v3,
            "RandomForestClassifier(n_estimators=40, max_depth=4)",
            "Shallow random forest, compared with the logistic version.",
        ),
    ]
    versions = [
        DemoVersion(
            estimator=_fit(estimator, train, CANCER_TARGET),
            train=train,
            evaluation=evaluation,
            notes=notes,
            params_summary=params,
            code_ref=f"git:demo@cancer-v{index}",
        )
        for index, (estimator, params, notes) in enumerate(specs, start=1)
    ]
    return DemoModel(
        name="tumour-benchmark-classifier",
        purpose=(
            "Teaching benchmark on the public Wisconsin breast cancer data, used to show the "
            "review workflow; not used for any clinical decision."
        ),
        task="binary_classification",
        risk_tier="low",
        target=CANCER_TARGET,
        sensitive=None,
        goal_metric="recall",
        goal_operator=">=",
        goal_target=0.9,
        tags={"region": "us", "sector": "research", "use_case": "benchmark"},
        feature_types=dict.fromkeys(num, "numeric"),
        versions=versions,
    )


def demo_models(data_dir: Path = DEFAULT_DATA_DIR) -> list[DemoModel]:
    """All demo models, in the order the seed registers them."""
    return [
        credit_risk_model(data_dir),
        bike_demand_model(data_dir),
        iris_or_breast_cancer_model(),
    ]


breast_cancer_model = iris_or_breast_cancer_model
