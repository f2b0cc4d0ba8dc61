"""P9: registration and batch scoring through the sandbox against the same work in-process.

Registration is ``versions.register_version`` end to end (scan and load, evaluation on the
evaluation file, reference profile, files stored, rows and audit written). The baseline runs
the very same service with the sandbox replaced by an in-process stand-in (``InProcess``)
that loads the file with ``core.modelfile`` and calls ``predict`` directly, which is what the
server did before issue 12. Each sandboxed registration takes a worker from the warm spare
and forks a new spare, as in production.

Batch scoring is the scoring step of 100,000 rows: ``Sandbox.predict`` on a loaded worker
(table sent as Arrow IPC, predictions and probabilities back) against ``predict`` and
``predict_proba`` on the same estimator in-process. Two models: a random forest in a
preprocessing pipeline (a typical model) and a logistic regression (the cheapest model,
where the transfer weighs most).

    PYTHONPATH=. .venv/bin/python benchmarks/sandbox_p9.py --repeat 3
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

from core import config, demo, migrate, modelfile  # noqa: E402
from core.artifacts import ArtifactStore  # noqa: E402
from core.db import Database  # noqa: E402
from core.sandbox import client  # noqa: E402
from core.sandbox.client import Predictions, Sandbox  # noqa: E402
from core.sandbox.summary import ModelSummary  # noqa: E402
from core.services import registry, users, versions  # noqa: E402

NUMERIC = [f"num_{i}" for i in range(10)]
CATEGORICAL = ["region", "segment"]
MODEL = "p9-scorer"


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(rng.normal(size=(rows, len(NUMERIC))), columns=NUMERIC)
    data["region"] = rng.choice(["north", "south", "east", "west"], rows)
    data["segment"] = rng.choice(["retail", "business", "private"], rows)
    signal = data["num_0"] - data["num_1"] + (data["region"] == "north") * 0.5
    data["defaulted"] = (signal + rng.normal(scale=0.8, size=rows) > 0).astype(int)
    return data


def forest() -> Any:
    encode = ColumnTransformer(
        [("num", StandardScaler(), NUMERIC), ("cat", OneHotEncoder(), CATEGORICAL)]
    )
    model = make_pipeline(encode, RandomForestClassifier(n_estimators=100, max_depth=10))
    train = frame(5_000, 0)
    return model.fit(train[NUMERIC + CATEGORICAL], train["defaulted"])


def logistic() -> Any:
    encode = ColumnTransformer(
        [("num", StandardScaler(), NUMERIC), ("cat", OneHotEncoder(), CATEGORICAL)]
    )
    model = make_pipeline(encode, LogisticRegression(max_iter=500))
    train = frame(5_000, 0)
    return model.fit(train[NUMERIC + CATEGORICAL], train["defaulted"])


class InProcess:
    """The sandbox's interface, run in the calling process: the pre-issue-12 behaviour."""

    def __init__(self, data: bytes, **options: Any) -> None:
        self.data = data
        self.filename = options.get("filename", "")
        self.estimator: Any = None
        self.summary: ModelSummary | None = None

    @classmethod
    def for_artifact(cls, data: bytes, **options: Any) -> InProcess:
        return cls(data, **options)

    def check(self) -> ModelSummary:
        if self.summary is None:
            inspected = modelfile.inspect_model_bytes(self.data, filename=self.filename)
            self.estimator = inspected.estimator
            fields = modelfile.summary_json(inspected)
            self.summary = ModelSummary(
                sha256=inspected.sha256, size_bytes=inspected.size_bytes, **fields
            )
        return self.summary

    def predict(
        self, x: pd.DataFrame, *, as_array: bool = False, proba: bool = False
    ) -> Predictions:
        self.check()
        rows = x.to_numpy() if as_array else x
        prediction = np.asarray(self.estimator.predict(rows))
        probabilities = None
        if proba and hasattr(self.estimator, "predict_proba"):
            probabilities = np.asarray(self.estimator.predict_proba(rows), dtype=float)
        return Predictions(prediction, probabilities)

    def close(self) -> None:
        self.estimator = None


def world(base: Path) -> tuple[Database, Any, ArtifactStore]:
    url = f"sqlite:///{base / 'p9.db'}"
    migrate.upgrade(url)
    db = Database(url)
    demo.seed(db, with_models=False)
    dana = users.principal_by_email(db, "dana@demo.quorum")
    spec = registry.ModelSpec(
        name=MODEL, team=demo.DEMO_TEAM, task="binary_classification", target="defaulted"
    )
    registry.create_model(db, dana, spec)
    return db, dana, ArtifactStore(base / "store")


def interleaved(
    baseline: Callable[[], Any], sandboxed: Callable[[], Any], repeat: int
) -> tuple[list[float], list[float]]:
    """Alternate the two, so that the shared machine's load changes hit both alike."""
    baseline()  # warm: imports, caches, the sandbox template and its spare
    sandboxed()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for work, out in ((baseline, times[0]), (sandboxed, times[1])):
            started = time.perf_counter()
            work()
            out.append(time.perf_counter() - started)
    return times


def line(name: str, baseline: list[float], sandboxed: list[float]) -> str:
    b_min, b_med = min(baseline), statistics.median(baseline)
    s_min, s_med = min(sandboxed), statistics.median(sandboxed)
    return (
        f"| {name} | {b_min:.3f} / {b_med:.3f} | {s_min:.3f} / {s_med:.3f} | "
        f"{s_min / b_min:.2f}x / {s_med / b_med:.2f}x |"
    )


def registration(repeat: int, eval_rows: int) -> str:
    model_file = sio.dumps(forest())
    eval_file = frame(eval_rows, 1).to_csv(index=False).encode()
    with tempfile.TemporaryDirectory() as tmp:
        db, dana, store = world(Path(tmp))

        def register(kind: Any) -> Callable[[], None]:
            def run() -> None:
                upload = versions.VersionUpload(MODEL, model_file, "m.skops", eval_file, "e.csv")
                versions.Sandbox = kind  # type: ignore[misc]
                try:
                    versions.register_version(db, dana, upload, store=store)
                finally:
                    versions.Sandbox = Sandbox  # type: ignore[misc]

            return run

        baseline, sandboxed = interleaved(register(InProcess), register(Sandbox), repeat)
        db.dispose()
    return line(f"registration (forest, {eval_rows:,} evaluation rows)", baseline, sandboxed)


def scoring(name: str, model: Any, repeat: int, rows: int) -> str:
    data = sio.dumps(model)
    x = frame(rows, 2)[NUMERIC + CATEGORICAL]
    local = InProcess(data)
    with Sandbox.for_artifact(data) as box:
        box.check()
        baseline, sandboxed = interleaved(
            lambda: local.predict(x, proba=True), lambda: box.predict(x, proba=True), repeat
        )
        same = box.predict(x, proba=True)
    expected = local.predict(x, proba=True)
    assert (same.prediction == expected.prediction).all(), "predictions differ"
    assert same.proba is not None and expected.proba is not None
    assert same.proba.tobytes() == expected.proba.tobytes(), "probabilities differ"
    return line(f"scoring {rows:,} rows ({name})", baseline, sandboxed)


def ingest(repeat: int, rows: int) -> str:
    """Monitoring ingest of rows sent without predictions, so the live model scores them."""
    from ingest_p4 import ENV, prepare_store, write_csv

    from core.artifacts import default_store
    from core.services import monitoring

    ingest_module = importlib.import_module("core.services.monitoring.ingest")

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        os.environ["QUORUM_ARTIFACT_STORE"] = str(base / "artifacts")
        config.reset_settings()
        url = f"sqlite:///{base / 'p9-ingest.db'}"
        prepare_store(url, base)
        write_csv(base / "rows.csv", rows)
        rows_frame = pd.read_csv(base / "rows.csv").drop(columns="prediction")
        db = Database(url)
        dana = users.principal_by_email(db, "dana@demo.quorum")
        counter = iter(range(1_000_000))

        def batch() -> bytes:
            data = rows_frame.copy()
            data["prediction_id"] = f"run{next(counter)}-" + data["prediction_id"].astype(str)
            return data.to_csv(index=False).encode()

        def local_sandbox(version: Any, patterns: list[str], store: Any = None) -> InProcess:
            data = default_store().get(version.artifact_key, sha256=version.artifact_sha256)
            return InProcess(data)

        def run(kind: str) -> Callable[[], None]:
            def work() -> None:
                data = batch()
                if kind == "in-process":
                    ingest_module.version_sandbox = local_sandbox  # type: ignore[assignment]
                try:
                    monitoring.ingest(db, dana, "p4-scorer", data, env=ENV, filename="rows.csv")
                finally:
                    ingest_module.version_sandbox = sandbox_for_version

            return work

        sandbox_for_version = ingest_module.version_sandbox
        baseline, sandboxed = interleaved(run("in-process"), run("sandbox"), repeat)
        db.dispose()
    return line(f"ingest {rows:,} rows without predictions (scored)", baseline, sandboxed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--eval-rows", type=int, default=2_000)
    parser.add_argument("--ingest-rows", type=int, default=200_000)
    parser.add_argument("--only", nargs="+", default=["registration", "scoring", "ingest"])
    args = parser.parse_args()
    print("| work | in-process min / median (s) | sandbox min / median (s) | ratio min / median |")
    print("|---|---|---|---|")
    if "registration" in args.only:
        print(registration(args.repeat, args.eval_rows), flush=True)
    if "scoring" in args.only:
        print(scoring("forest pipeline", forest(), args.repeat, args.rows), flush=True)
        print(scoring("logistic pipeline", logistic(), args.repeat, args.rows), flush=True)
    if "ingest" in args.only:
        print(ingest(args.repeat, args.ingest_rows), flush=True)
    client.shutdown()


if __name__ == "__main__":
    main()
