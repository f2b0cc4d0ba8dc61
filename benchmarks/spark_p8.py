"""P8: rows aggregated by Spark (local mode) and posted, against the same rows ingested by the
server.

The P4 model and CSV (25 features, prediction, id, timestamp over 90 days). A real Quorum
server (``python -m core.entry serve`` equivalent: ``streamlit run app.py``) runs on a copy of
the store with the model live in staging and production.

- server side: the CSV posted to ``/models/{model}/predictions`` (staging) through the SDK, in
  parts of 500,000 rows (about 135 MB, under the default 200 MB upload limit); the server
  parses, validates, writes Parquet, indexes ids and aggregates;
- Spark side: ``core.client.spark.send_window_aggregates`` on ``spark.read.csv`` of the same
  file (local[2]), which posts only the window aggregates (production).

The server process's resident memory (VmRSS) is sampled every 0.2 s during each side.

    .venv/bin/python benchmarks/spark_p8.py --rows 10000000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.ingest_p4 import MODEL, N_CATEGORICAL, N_NUMERIC, prepare_store, write_csv  # noqa: E402

SERVER_ENV, SPARK_ENV = "staging", "production"
PART_ROWS = 500_000


def _split(csv_path: Path, workdir: Path, rows: int) -> list[Path]:
    """The CSV in parts of `rows` rows, each with the header, in `workdir`."""
    parts: list[Path] = []
    with csv_path.open() as source:
        header = source.readline()
        done = False
        while not done:
            part = workdir / f"part-{len(parts):03d}.csv"
            with part.open("w") as out:
                out.write(header)
                for _ in range(rows):
                    line = source.readline()
                    if not line:
                        done = True
                        break
                    out.write(line)
            parts.append(part)
    return [p for p in parts if p.stat().st_size > len(header)]


class Sampler:
    """The peak and the samples of one process's resident memory, in MB."""

    def __init__(self, pid: int) -> None:
        self.pid, self._stop = pid, threading.Event()
        self.samples: list[float] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> float:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self._rss())
            time.sleep(0.2)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> str:
        low, high = min(self.samples), max(self.samples)
        return f"server RSS from {self.samples[0]:.0f} MB: min {low:.0f}, max {high:.0f} MB"


def _spark_schema() -> str:
    numeric = ", ".join(f"num_{i:02d} double" for i in range(N_NUMERIC))
    categorical = ", ".join(f"cat_{i} string" for i in range(N_CATEGORICAL))
    return f"timestamp string, prediction_id string, {numeric}, {categorical}, prediction int"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--skip-server", action="store_true", help="only the Spark side")
    parser.add_argument("--keep-csv", help="write the P4 CSV here, or reuse it if it exists")
    args = parser.parse_args()
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    from core.client.spark import send_window_aggregates
    from core.sdk import Client
    from core.services import deployments, users
    from tests.fixtures.quorum_server import QuorumServer

    workdir = Path(tempfile.mkdtemp(prefix="p8-"))
    csv_path = Path(args.keep_csv) if args.keep_csv else workdir / "inference.csv"
    if not csv_path.exists():
        write_csv(csv_path, args.rows)
    print(f"CSV: {args.rows:,} rows, {csv_path.stat().st_size / 1e6:.0f} MB", flush=True)
    server = QuorumServer(workdir / "server")
    server.directory.mkdir()
    os.environ["QUORUM_ARTIFACT_STORE"] = str(server.directory / "artifacts")
    server.prepare()
    prepare_store(server.database_url, workdir)
    from core.db import Database

    db = Database(server.database_url)
    riley = users.principal_by_email(db, "riley@demo.quorum")
    deployments.promote(db, riley, MODEL, 1, SPARK_ENV, "benchmark")
    db.dispose()
    parts = _split(csv_path, workdir, PART_ROWS)
    client = Client(server.url, server.tokens["dana"])
    try:
        server.start(timeout=900)  # a shared, loaded machine starts Streamlit slowly
        assert server.process is not None
        if not args.skip_server:
            with Sampler(server.process.pid) as memory:
                begin = time.perf_counter()
                sent = sum(client.log_predictions(MODEL, p, env=SERVER_ENV)["rows"] for p in parts)
                server_seconds = time.perf_counter() - begin
            print(
                f"server ingest: {sent:,} rows in {len(parts)} upload(s), {server_seconds:.1f} s "
                f"({sent / server_seconds:,.0f} rows/s); {memory.summary()}",
                flush=True,
            )
        spark = (
            SparkSession.builder.master("local[2]")
            .config("spark.ui.enabled", "false")
            .config("spark.driver.memory", "1g")
            .getOrCreate()
        )
        with Sampler(server.process.pid) as memory:
            begin = time.perf_counter()
            rows = spark.read.csv(str(csv_path), header=True, schema=_spark_schema())
            replies = send_window_aggregates(client, MODEL, rows, env=SPARK_ENV, name="p8")
            spark_seconds = time.perf_counter() - begin
        print(
            f"spark aggregate + post: {replies[0]['rows']:,} rows in {spark_seconds:.1f} s "
            f"({replies[0]['rows'] / spark_seconds:,.0f} rows/s); {memory.summary()}",
            flush=True,
        )
        if not args.skip_server:
            print(f"ratio (server ingest time / Spark time): {server_seconds / spark_seconds:.2f}")
        spark.stop()
    finally:
        client.close()
        server.stop()


if __name__ == "__main__":
    main()
