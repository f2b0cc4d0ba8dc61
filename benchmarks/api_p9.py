"""P9 (API part): registering a version and ingesting 200k production rows through the REST API
vs the same service calls in-process.

Builds a demo store (SQLite) in a temporary directory, starts `streamlit run app.py` on it (the
pages and /api/v1 on one port), and times, alternating, each call in-process and through
httpx: the same bytes, a fresh model file and fresh prediction ids every run, after one
untimed call of each kind on each side. Prints min and median of each side and their ratios.

    .venv/bin/python benchmarks/api_p9.py --repeat 3 [--rows 200000]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as the server runs; set before numpy loads

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import skops.io as sio
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import demo, migrate  # noqa: E402
from core.artifacts import ArtifactStore  # noqa: E402
from core.auth import Principal  # noqa: E402
from core.db import Database  # noqa: E402
from core.demo import data as demo_data  # noqa: E402
from core.services import monitoring, registry, users, versions  # noqa: E402

BIKE = "bike-demand-forecaster"
TOY = "p9-toy"
FEATURES = ["income", "debt", "age"]
EVAL_ROWS = 20_000


def toy_files(seed: int) -> tuple[bytes, bytes]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "income": rng.normal(50, 10, EVAL_ROWS),
            "debt": rng.normal(20, 5, EVAL_ROWS),
            "age": rng.integers(20, 70, EVAL_ROWS).astype(float),
        }
    )
    frame["defaulted"] = (frame["debt"] / frame["income"] > 0.4).astype(int)
    model = LogisticRegression(C=1.0 + seed / 100).fit(frame[FEATURES], frame["defaulted"])
    return sio.dumps(model), frame.to_csv(index=False).encode()


def production_rows(n: int, tag: str) -> bytes:
    stream = demo_data.bikeshare_production_stream().drop(columns=["bikers"])
    repeats = -(-n // len(stream))
    rows = pd.concat([stream] * repeats, ignore_index=True).head(n)
    rows["prediction_id"] = [f"{tag}-{i}" for i in range(n)]
    return rows.to_csv(index=False).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [
        str(Path(sys.executable).parent / "streamlit"),
        "run",
        "app.py",
        "--server.headless=true",
        f"--server.port={port}",
        "--server.address=127.0.0.1",
        "--browser.gatherUsageStats=false",
        "--server.fileWatcherType=none",
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"the server did not start:\n{log.read_text()[-2000:]}")


def timed(work: Callable[..., object], *args: object, **kwargs: object) -> float:
    start = time.perf_counter()
    work(*args, **kwargs)
    return time.perf_counter() - start


def register_api(client: httpx.Client, model: bytes, evaluation: bytes) -> None:
    reply = client.post(
        f"/models/{TOY}/versions",
        files={"model_file": ("model.skops", model), "eval_file": ("evaluation.csv", evaluation)},
        data={"target": "defaulted"},
    )
    assert reply.status_code == 201, reply.text


def ingest_api(client: httpx.Client, rows: bytes) -> None:
    reply = client.post(f"/models/{BIKE}/predictions", files={"file": ("p9.csv", rows)})
    assert reply.status_code == 201, reply.text


def warm_up(db: Database, dana: Principal, store: ArtifactStore, client: httpx.Client) -> None:
    """One untimed call of each kind on each side: the first call in a process pays imports."""
    model, evaluation = toy_files(1000)
    upload = versions.VersionUpload(
        TOY, model, "model.skops", evaluation, "evaluation.csv", target="defaulted"
    )
    versions.register_version(db, dana, upload, store=store)
    register_api(client, *toy_files(1001))
    monitoring.ingest(db, dana, BIKE, production_rows(1000, "warm-local"), filename="w.csv")
    ingest_api(client, production_rows(1000, "warm-api"))


def summary(name: str, local: list[float], api: list[float]) -> str:
    lmin, lmed = min(local), statistics.median(local)
    amin, amed = min(api), statistics.median(api)
    return (
        f"| {name} | {lmin:.2f} / {lmed:.2f} | {amin:.2f} / {amed:.2f} | "
        f"{amin / lmin:.2f}x / {amed / lmed:.2f}x |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="p9-"))
    url = f"sqlite:///{work / 'quorum.db'}"
    env = {
        **os.environ,
        "QUORUM_DATABASE_URL": url,
        "QUORUM_ARTIFACT_STORE": str(work / "artifacts"),
        "QUORUM_MAX_UPLOAD_MB": "1000",
        "OMP_NUM_THREADS": "1",
    }
    os.environ.update({k: env[k] for k in ("QUORUM_DATABASE_URL", "QUORUM_ARTIFACT_STORE")})
    print(f"store {work}; seeding the demo portfolio …", flush=True)
    migrate.upgrade(url)
    db = Database(url)
    store = ArtifactStore(str(work / "artifacts"))
    demo.seed(db, with_models=True)
    dana = users.principal_by_email(db, "dana@demo.quorum")
    registry.create_model(
        db,
        dana,
        registry.ModelSpec(
            name=TOY, team=demo.DEMO_TEAM, task="binary_classification", target="defaulted"
        ),
    )
    token = users.issue_token_as_operator(db, "dana@demo.quorum", "p9").secret
    port = free_port()
    server = start_server(env, port, work / "streamlit.log")
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}/api/v1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=600,
    )
    times: dict[str, list[float]] = {
        k: [] for k in ("reg_local", "reg_api", "ing_local", "ing_api")
    }
    try:
        warm_up(db, dana, store, client)
        for run in range(args.repeat):
            model_a, eval_a = toy_files(2 * run)
            model_b, eval_b = toy_files(2 * run + 1)
            upload = versions.VersionUpload(
                TOY, model_a, "model.skops", eval_a, "evaluation.csv", target="defaulted"
            )
            times["reg_local"].append(
                timed(versions.register_version, db, dana, upload, store=store)
            )
            times["reg_api"].append(timed(register_api, client, model_b, eval_b))
            local_rows = production_rows(args.rows, f"local{run}")
            api_rows = production_rows(args.rows, f"api{run}")
            times["ing_local"].append(
                timed(monitoring.ingest, db, dana, BIKE, local_rows, filename="p9.csv")
            )
            times["ing_api"].append(timed(ingest_api, client, api_rows))
            print(
                f"run {run + 1}: register {times['reg_local'][-1]:.2f} s local, "
                f"{times['reg_api'][-1]:.2f} s API; ingest {args.rows:,} rows "
                f"{times['ing_local'][-1]:.2f} s local, {times['ing_api'][-1]:.2f} s API",
                flush=True,
            )
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=20)
    print()
    print("| call | in-process min / median (s) | API min / median (s) | ratio min / median |")
    print("|---|---|---|---|")
    print(
        summary(
            f"register a version ({EVAL_ROWS:,} evaluation rows)",
            times["reg_local"],
            times["reg_api"],
        )
    )
    print(summary(f"ingest {args.rows:,} rows (CSV)", times["ing_local"], times["ing_api"]))


if __name__ == "__main__":
    main()
