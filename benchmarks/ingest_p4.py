"""P4: ingest inference rows from CSV (25 features, prediction, id, timestamp).

Quorum's ``monitoring.ingest`` (CSV parsed in chunks, validated, raw rows written once as
Parquet per day to the artifact store, prediction ids indexed in SQL, per-window aggregates
computed and merged, alerts evaluated, one transaction) against the baseline: raw
``sqlite3.executemany`` of the same rows into the ``prediction`` table Quorum used before the
rows moved to Parquet (kept here, created by this script, as a benchmark-only table; features
as JSON text), in one transaction, with the rows (feature JSON included) built before the clock
starts. On PostgreSQL (``QUORUM_TEST_POSTGRES_URL`` set) the baseline is ``COPY``. After each
Quorum ingest the batch is voided (its files deleted, its windows recomputed), and timed.

Each repetition runs in its own process on a fresh copy of the store; peak memory is the
process's peak resident set size (``ru_maxrss``).

    .venv/bin/python benchmarks/ingest_p4.py --rows 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL, ENV = "p4-scorer", "staging"
N_NUMERIC, N_CATEGORICAL = 20, 5
LEVELS = [f"level_{k}" for k in range(12)]
COLUMNS = (
    "batch_id, model_id, version_id, environment, prediction_id, ts, prediction, score, label, "
    "features"
)


def features(n: int, rng: np.random.Generator) -> pd.DataFrame:
    data = {f"num_{i:02d}": rng.normal(i, 1 + i / 10, n).round(6) for i in range(N_NUMERIC)}
    data |= {f"cat_{i}": rng.choice(LEVELS, n) for i in range(N_CATEGORICAL)}
    return pd.DataFrame(data)


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    with path.open("w") as handle:
        for offset in range(0, rows, 200_000):
            n = min(200_000, rows - offset)
            frame = features(n, rng)
            seconds = (np.arange(offset, offset + n) * (90 * 86_400 / max(rows, 1))).astype(int)
            frame.insert(0, "timestamp", (start + pd.to_timedelta(seconds, unit="s")).astype(str))
            frame.insert(1, "prediction_id", [f"id-{i}" for i in range(offset, offset + n)])
            frame["prediction"] = (frame["num_00"] > 0).astype(int)
            frame.to_csv(handle, index=False, header=offset == 0)


def prepare_store(url: str, workdir: Path) -> None:
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from core import demo, migrate
    from core.db import Database
    from core.services import deployments, registry, reviews, users, versions

    migrate.upgrade(url)
    db = Database(url)
    demo.seed(db, with_models=False)
    dana = users.principal_by_email(db, "dana@demo.quorum")
    riley = users.principal_by_email(db, "riley@demo.quorum")
    registry.create_model(
        db,
        dana,
        registry.ModelSpec(
            name=MODEL, team=demo.DEMO_TEAM, task="binary_classification", target="y"
        ),
    )
    rng = np.random.default_rng(1)
    frame = features(5000, rng)
    frame["y"] = (frame["num_00"] + rng.normal(0, 1, len(frame)) > 0).astype(int)
    cats = [f"cat_{i}" for i in range(N_CATEGORICAL)]
    pipe = Pipeline(
        [
            ("pre", ColumnTransformer([("c", OneHotEncoder(), cats)], remainder="passthrough")),
            ("lr", LogisticRegression(max_iter=300)),
        ]
    ).fit(frame.drop(columns="y"), frame["y"])
    versions.register_version(
        db,
        dana,
        versions.VersionUpload(
            MODEL, sio.dumps(pipe), "m.skops", frame.to_csv(index=False).encode(), "eval.csv"
        ),
    )
    reviews.submit_for_review(db, dana, MODEL, 1)
    reviews.decide(db, riley, MODEL, 1, "approve", "benchmark")
    deployments.promote(db, riley, MODEL, 1, ENV, "benchmark")
    db.dispose()


def run_quorum(url: str, csv_path: Path) -> dict[str, float]:
    from core.db import Database
    from core.services import monitoring, users

    db = Database(url)
    actor = users.principal_by_email(db, "dana@demo.quorum")
    begin = time.perf_counter()
    result = monitoring.ingest(db, actor, MODEL, csv_path, env=ENV, source="benchmark")
    seconds = time.perf_counter() - begin
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    begin = time.perf_counter()
    voided = monitoring.void_batch(db, actor, MODEL, result.batch_id, "benchmark: void it")
    void_seconds = time.perf_counter() - begin
    return {
        "seconds": seconds,
        "rows": result.n_rows,
        "windows": len(result.windows),
        "ingest_peak_mb": peak,
        "void_seconds": void_seconds,
        "voided_rows": voided.rows,
    }


def _baseline_rows(
    csv_path: Path, ids: tuple[int, int, int], rows_per_part: int = 1_000_000
) -> Iterator[list[tuple[object, ...]]]:
    """The baseline's row tuples (feature JSON included), a million at a time, so that its
    memory stays bounded at 10M rows; they are built while the clock is stopped."""
    rows: list[tuple[object, ...]] = []
    for chunk in pd.read_csv(csv_path, chunksize=200_000):
        names = [c for c in chunk.columns if c.startswith(("num_", "cat_"))]
        encoded = chunk[names].to_json(orient="records", lines=True).rstrip("\n").split("\n")
        stamps = pd.to_datetime(chunk["timestamp"], utc=True).dt.strftime("%Y-%m-%d %H:%M:%S")
        rows += zip(
            [ids[0]] * len(chunk),
            [ids[1]] * len(chunk),
            [ids[2]] * len(chunk),
            [ENV] * len(chunk),
            chunk["prediction_id"].tolist(),
            stamps.tolist(),
            chunk["prediction"].astype(str).tolist(),
            [None] * len(chunk),
            [None] * len(chunk),
            encoded,
            strict=True,
        )
        if len(rows) >= rows_per_part:
            yield rows
            rows = []
    if rows:
        yield rows


BASELINE_TABLE = """
CREATE TABLE IF NOT EXISTS prediction (
    id {serial} PRIMARY KEY,
    batch_id INTEGER NOT NULL REFERENCES inference_batch (id),
    model_id INTEGER NOT NULL REFERENCES ml_model (id),
    version_id INTEGER NOT NULL REFERENCES model_version (id),
    environment VARCHAR(40) NOT NULL,
    prediction_id VARCHAR(120) NOT NULL,
    ts {ts} NOT NULL,
    prediction VARCHAR(120) NOT NULL,
    score {float},
    label VARCHAR(120),
    label_batch_id INTEGER REFERENCES inference_batch (id),
    features TEXT NOT NULL,
    CONSTRAINT uq_prediction_id UNIQUE (model_id, environment, prediction_id)
);
CREATE INDEX IF NOT EXISTS ix_prediction_batch_id ON prediction (batch_id);
CREATE INDEX IF NOT EXISTS ix_prediction_label_batch_id ON prediction (label_batch_id)
"""


def create_baseline_table(connection: Any, postgres: bool) -> None:
    """The prediction table as Quorum had it before raw rows moved to Parquet."""
    ddl = BASELINE_TABLE.format(
        serial="SERIAL" if postgres else "INTEGER",
        ts="TIMESTAMPTZ" if postgres else "DATETIME",
        float="DOUBLE PRECISION" if postgres else "FLOAT",
    )
    for statement in ddl.split(";"):
        connection.execute(statement)
    connection.commit()


def _batch_ids(url: str) -> tuple[int, int, int]:
    from sqlmodel import select

    from core.db import Database
    from core.models import InferenceBatch, ModelVersion

    db = Database(url)
    with db.write() as session:
        version = session.exec(select(ModelVersion)).one()
        batch = InferenceBatch(
            model_id=version.model_id,
            version_id=version.id or 0,
            environment=ENV,
            source="baseline",
            file_sha256="0" * 64,
            created_by_id=version.registered_by_id,
        )
        session.add(batch)
        session.flush()
        ids = (batch.id or 0, version.model_id, version.id or 0)
    db.dispose()
    return ids


def run_baseline(url: str, csv_path: Path) -> dict[str, float]:
    """One transaction; the clock runs only while `executemany` (or `COPY`) inserts, never
    while the next million row tuples are built."""
    ids = _batch_ids(url)
    seconds, count = 0.0, 0
    if url.startswith("sqlite"):
        connection = sqlite3.connect(url.removeprefix("sqlite:///"))
        create_baseline_table(connection, postgres=False)
        connection.isolation_level = None
        connection.execute("BEGIN IMMEDIATE")
        for rows in _baseline_rows(csv_path, ids):
            begin = time.perf_counter()
            connection.executemany(
                f"INSERT INTO prediction ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
            seconds += time.perf_counter() - begin
            count += len(rows)
        begin = time.perf_counter()
        connection.execute("COMMIT")
        seconds += time.perf_counter() - begin
    else:
        import psycopg
        from sqlalchemy.engine import make_url

        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        connection = psycopg.connect(dsn)
        create_baseline_table(connection, postgres=True)
        with connection.cursor() as cursor:
            for rows in _baseline_rows(csv_path, ids):
                begin = time.perf_counter()
                with cursor.copy(f"COPY prediction ({COLUMNS}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                seconds += time.perf_counter() - begin
                count += len(rows)
        begin = time.perf_counter()
        connection.commit()
        seconds += time.perf_counter() - begin
    connection.close()
    return {"seconds": seconds, "rows": count}


def child(args: argparse.Namespace) -> None:
    os.environ["QUORUM_ARTIFACT_STORE"] = args.artifacts
    runner = run_quorum if args.child == "quorum" else run_baseline
    import core.services.monitoring  # noqa: F401  (the import floor includes the libraries)

    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = runner(args.url, Path(args.csv))
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["floor_mb"] = floor
    print(json.dumps(result))


def _fresh_url(template: Path, workdir: Path, side: str, rep: int, pg_template: str | None) -> str:
    if pg_template is None:
        target = workdir / f"{side}-{rep}.db"
        shutil.copy(template, target)
        return f"sqlite:///{target}"
    from tests.conftest import create_postgres_database

    url = create_postgres_database(pg_template, f"p4_{side}_{rep}")
    prepare_store(url, workdir)
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child")
    parser.add_argument("--url")
    parser.add_argument("--csv")
    parser.add_argument("--artifacts")
    parser.add_argument("--keep-csv", help="write the CSV here, or reuse it if it exists")
    parser.add_argument(
        "--quorum-only", action="store_true", help="no baseline (memory and rows/s only)"
    )
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    workdir = Path(tempfile.mkdtemp(prefix="p4-"))
    artifacts = str(workdir / "artifacts")
    os.environ["QUORUM_ARTIFACT_STORE"] = artifacts
    csv_path = Path(args.keep_csv) if args.keep_csv else workdir / "inference.csv"
    if not csv_path.exists():
        write_csv(csv_path, args.rows)
    print(f"CSV: {args.rows:,} rows, {csv_path.stat().st_size / 1e6:.0f} MB", flush=True)
    pg = os.environ.get("QUORUM_TEST_POSTGRES_URL", "").strip() or None
    template = workdir / "template.db"
    if pg is None:
        prepare_store(f"sqlite:///{template}", workdir)
    results: dict[str, list[dict[str, float]]] = {"quorum": [], "baseline": []}
    for rep in range(args.repeat):
        for side in ("quorum",) if args.quorum_only else ("baseline", "quorum"):
            url = _fresh_url(template, workdir, side, rep, pg)
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    side,
                    "--url",
                    url,
                    "--csv",
                    str(csv_path),
                    "--artifacts",
                    artifacts,
                ],
                check=True,
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            results[side].append(result)
            print(side, rep, result, flush=True)
    report(results, args.rows, "PostgreSQL COPY" if pg else "sqlite3.executemany")
    shutil.rmtree(workdir, ignore_errors=True)


def report(results: dict[str, list[dict[str, float]]], rows: int, baseline: str) -> None:
    rate = {
        side: [r["rows"] / r["seconds"] for r in runs] for side, runs in results.items() if runs
    }
    quorum = results["quorum"]
    print(f"\nrows: {rows:,}; baseline: {baseline}")
    print(
        f"quorum rows/s   best {max(rate['quorum']):,.0f}  median {statistics.median(rate['quorum']):,.0f}"
    )
    seconds = [r["seconds"] for r in quorum]
    print(f"time quorum min {min(seconds):.1f} s  median {statistics.median(seconds):.1f} s")
    if "baseline" in rate:
        best_b, med_b = max(rate["baseline"]), statistics.median(rate["baseline"])
        print(f"baseline rows/s best {best_b:,.0f}  median {med_b:,.0f}")
        print(
            f"ratio (quorum/baseline) best {max(rate['quorum']) / best_b:.2f}  "
            f"median {statistics.median(rate['quorum']) / med_b:.2f}"
        )
        base = [r["seconds"] for r in results["baseline"]]
        print(f"time baseline min {min(base):.1f} s  median {statistics.median(base):.1f} s")
        print(f"baseline peak RSS {max(r['peak_mb'] for r in results['baseline']):.0f} MB")
    voids = [r["void_seconds"] for r in quorum if "void_seconds" in r]
    if voids:
        print(
            f"void of the ingested batch (files deleted, windows recomputed): min "
            f"{min(voids):.2f} s, median {statistics.median(voids):.2f} s"
        )
    own = [r.get("ingest_peak_mb", r["peak_mb"]) - r["floor_mb"] for r in quorum]
    print(
        f"quorum peak RSS {max(r.get('ingest_peak_mb', r['peak_mb']) for r in quorum):.0f} MB; "
        f"after imports {max(r['floor_mb'] for r in quorum):.0f} MB; the ingest's own "
        f"(peak minus floor, per run) max {max(own):.0f} MB"
    )


if __name__ == "__main__":
    main()
