"""Aggregates from Spark (local mode) against a real server: the same rows give the same windows
whether Quorum ingests them or a Spark job aggregates them and sends only the aggregates."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import sys
from collections.abc import Iterator
from typing import Any

import pytest

pyspark = pytest.importorskip("pyspark")  # in the test extra; the job's own dependency

from pyspark.sql import SparkSession  # noqa: E402

from core.client.spark import send_window_aggregates, window_aggregates  # noqa: E402
from core.errors import InvalidInput, PermissionDenied  # noqa: E402
from core.sdk import Client  # noqa: E402
from tests.fixtures.quorum_server import FEATURES, QuorumServer, fitted, frame, production  # noqa: E402

MODEL = "spark-scorer"
SERVER_ENV, SPARK_ENV = "staging", "production"


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    os.environ["PYSPARK_PYTHON"] = sys.executable  # workers run this interpreter (pandas, core)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("quorum-tests")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.python.worker.reuse", "true")
        .config("spark.sql.session.timeZone", "America/New_York")  # must not shift windows
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuorumServer]:
    """As the package's server, with a longer start-up allowance: this module also runs a JVM."""
    quorum = QuorumServer(tmp_path_factory.mktemp("quorum-server"))
    quorum.prepare()
    try:
        quorum.start(timeout=300)
        yield quorum
    finally:
        quorum.stop()


@pytest.fixture(scope="module")
def people(server: QuorumServer) -> Iterator[dict[str, Client]]:
    clients = {who: Client(server.url, token) for who, token in server.tokens.items()}
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture(scope="module")
def scored(people: dict[str, Client]) -> Any:
    """v1 live in staging and production; 2,000 scored rows over 14 days with labels."""
    dana, riley = people["dana"], people["riley"]
    dana.create_model(MODEL, "risk-analytics", "binary_classification", target="y")
    estimator = fitted(0)
    dana.register_version(MODEL, estimator, frame(3), target="y", submit=True)
    riley.approve(MODEL, 1, "fine")
    for env in (SERVER_ENV, SPARK_ENV):
        riley.promote(MODEL, 1, env, "both")
    rows = production(2000)
    rows["prediction"] = estimator.predict(rows[FEATURES])
    rows["score"] = estimator.predict_proba(rows[FEATURES])[:, 1]
    rows.loc[rows.index[::97], "income"] = None  # some missing values
    return rows


def _windows(server: QuorumServer, env: str) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(server.db_path) as conn:
        found = conn.execute(
            "SELECT w.window_start, w.data, w.external_rows FROM window_aggregate w "
            "JOIN ml_model m ON m.id = w.model_id WHERE m.name = ? AND w.environment = ?",
            (MODEL, env),
        ).fetchall()
    return {
        str(start)[:10]: {**json.loads(data), "outside": outside} for start, data, outside in found
    }


def _same(a: Any, b: Any, where: str = "") -> None:
    """Equal, integers and text exactly, floats within 1e-9 (the order of summation differs)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for key in a:
            _same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool) and isinstance(b, int | float):
        if math.isnan(a):
            assert math.isnan(b), where
        else:
            assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), f"{where}: {a} != {b}"
    else:
        assert a == b and type(a) is type(b), f"{where}: {a!r} != {b!r}"


def test_spark_aggregates_equal_the_servers_and_the_reports_are_identical(
    people: dict[str, Client], server: QuorumServer, scored: Any, spark: SparkSession
) -> None:
    dana = people["dana"]
    dana.log_predictions(MODEL, scored.drop(columns=["y"]), env=SERVER_ENV)
    labels = scored[["prediction_id", "y"]].rename(columns={"y": "label"})
    dana.log_labels(MODEL, labels, env=SERVER_ENV)

    rows = spark.createDataFrame(scored.drop(columns=["y"])).repartition(3)
    label_rows = spark.createDataFrame(labels)
    replies = send_window_aggregates(dana, MODEL, rows, env=SPARK_ENV, labels=label_rows)
    assert [r["kind"] for r in replies] == ["predictions", "labels"]
    assert replies[0]["rows"] == 2000 and "outside Quorum" in replies[0]["message"]

    by_server, by_spark = _windows(server, SERVER_ENV), _windows(server, SPARK_ENV)
    assert sorted(by_server) == sorted(by_spark) and len(by_server) == 14
    for day in by_server:
        ours, theirs = by_server[day], by_spark[day]
        assert ours.pop("outside") == 0 and theirs.pop("outside") == ours["n_rows"] > 0
        assert theirs["labels"]["n"] == ours["labels"]["n"] > 0
        _same(ours, theirs, day)
        for name, column in ours["columns"].items():  # counts and histograms exactly
            got = theirs["columns"][name]
            assert column["counts"] == got["counts"] and column["missing"] == got["missing"]
        assert ours["cbpe"]["hist"] == theirs["cbpe"]["hist"]

    for day in sorted(by_server)[::5]:
        mine = people["blake"].report(MODEL, SERVER_ENV, day)
        outside = people["blake"].report(MODEL, SPARK_ENV, day)
        assert mine.pop("rows_aggregated_outside") == 0
        assert outside.pop("rows_aggregated_outside") == outside["rows"] > 0
        for report in (mine, outside):
            report.pop("environment")
            for said in ("message", "health"):  # sentences that name the environment
                report[said] = report[said].replace(SPARK_ENV, SERVER_ENV)
        _same(mine, outside, day)


def test_sending_again_stores_nothing_twice_and_a_viewer_cannot_send(
    people: dict[str, Client], server: QuorumServer, scored: Any, spark: SparkSession
) -> None:
    before = server.count("inference_batch")
    rows = spark.createDataFrame(scored.drop(columns=["y"]).head(300))
    first = send_window_aggregates(people["dana"], MODEL, rows, env=SPARK_ENV, name="rerun")
    again = send_window_aggregates(people["dana"], MODEL, rows, env=SPARK_ENV, name="rerun")
    assert first == again and server.count("inference_batch") == before + 1
    with pytest.raises(PermissionDenied):
        send_window_aggregates(people["blake"], MODEL, rows, env=SPARK_ENV)
    assert server.count("inference_batch") == before + 1


def test_aggregates_on_another_reference_are_refused(
    people: dict[str, Client], server: QuorumServer, scored: Any, spark: SparkSession
) -> None:
    dana = people["dana"]
    reference = dana.reference(MODEL, SPARK_ENV)
    rows = spark.createDataFrame(scored.drop(columns=["y"]).head(100))
    windows = [w.to_dict() for w in window_aggregates(rows, reference).values()]
    before = server.counts()
    with pytest.raises(InvalidInput, match="another reference"):
        dana.send_aggregates(MODEL, {**reference, "profile_sha256": "0" * 64}, windows)
    broken = [{**windows[0], "columns": {"nope": windows[0]["columns"]["income"]}}]
    with pytest.raises(InvalidInput, match="do not match the reference"):
        dana.send_aggregates(MODEL, reference, broken)
    assert server.counts() == before
