"""R4: a process registering versions (and ingesting production data) is killed with SIGKILL at
random points, 50 times each. Afterwards no half-made version or batch is visible, no record
points at a missing or altered file, the audit chain verifies, and the maintenance sweep removes
exactly the orphaned files (and reports them).

Children come from a fork server that has imported the heavy libraries once, so each of the
100 processes starts in milliseconds and dies mid-work when the test decides."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sqlalchemy import func
from sqlmodel import col, select

from core import audit_anchor, demo, maintenance, migrate
from core.artifacts import ArtifactStore
from core.config import get_settings
from core.db import Database
from core.models import AuditEvent, Evaluation, ModelVersion
from core.services import registry, users, versions

KILLS = 50
FEATURES = ["income", "debt", "age"]
MODEL = "crash-scorer"
DANA = "dana@demo.quorum"
_PRELOAD = [
    "__main__",
    __name__,
    "core.services.versions",
    "core.services.deployments",
    "core.services.reviews",
    "core.services.monitoring",
    "sklearn.linear_model",
    "skops.io",
]


@dataclass
class Store:
    db: Database
    url: str
    artifacts: ArtifactStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'quorum.db'}"
    migrate.upgrade(url)
    db = Database(url)
    demo.seed(db, with_models=False)
    dana = users.principal_by_email(db, DANA)
    spec = registry.ModelSpec(
        name=MODEL, team=demo.DEMO_TEAM, task="binary_classification", target="defaulted"
    )
    registry.create_model(db, dana, spec)
    yield Store(db, url, ArtifactStore(tmp_path / "artifacts"))
    db.dispose()


@pytest.fixture(scope="module")
def forkserver() -> multiprocessing.context.ForkServerContext:
    if sys.platform == "win32":
        pytest.skip("SIGKILL and the fork server need a POSIX system")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


def small_model_and_data(seed: int = 0, rows: int = 120) -> tuple[bytes, bytes]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 3)), columns=FEATURES)
    frame["defaulted"] = (frame["debt"] - frame["income"] > 0).astype(int)
    model = LogisticRegression().fit(frame[FEATURES], frame["defaulted"])
    return sio.dumps(model), frame.to_csv(index=False).encode()


# --- what the doomed children do ---------------------------------------------------------------


def register_forever(
    ready: Any, done: Any, url: str, root: str, model_file: bytes, eval_file: bytes
) -> None:
    db = Database(url)
    actor = users.principal_by_email(db, DANA)
    store = ArtifactStore(root)
    upload = versions.VersionUpload(
        model=MODEL,
        model_file=model_file,
        model_filename="model.skops",
        eval_file=eval_file,
        eval_filename="evaluation.csv",
    )
    ready.set()
    while True:
        versions.register_version(db, actor, upload, store=store)
        with done.get_lock():
            done.value += 1


@dataclass
class Doomed:
    """A child and when to kill it: after `after_ops` finished operations plus `delay` seconds."""

    process: Any
    ready: Any
    done: Any
    after_ops: int
    delay: float
    reached_at: float | None = None


def run_and_kill(
    context: Any,
    target: Any,
    args: tuple[Any, ...],
    rng: random.Random,
    *,
    kills: int = KILLS,
    at_once: int = 5,
    longest: float = 0.3,
) -> int:
    """Start `target` in `kills` fresh children, `at_once` at a time on the same store. Each is
    killed with SIGKILL after finishing a random number (0 or 1) of operations and then a random
    delay of up to `longest` seconds, so kills land anywhere inside an operation. Returns how
    many operations the children reported finished."""
    finished = 0
    for first in range(0, kills, at_once):
        group = [
            _start(context, target, args, rng, longest) for _ in range(min(at_once, kills - first))
        ]
        for doomed in group:
            assert doomed.ready.wait(60), "a child did not start working"
        _kill_when_due(group)
        for doomed in group:
            doomed.process.join(10)
            assert doomed.process.exitcode == -signal.SIGKILL, "a child ended before its kill"
            finished += doomed.done.value
    return finished


def _start(
    context: Any, target: Any, args: tuple[Any, ...], rng: random.Random, longest: float
) -> Doomed:
    ready, done = context.Event(), context.Value("i", 0)
    process = context.Process(target=target, args=(ready, done, *args), daemon=True)
    process.start()
    return Doomed(process, ready, done, rng.randint(0, 1), rng.uniform(0.0, longest))


def _kill_when_due(group: list[Doomed], timeout: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout
    alive = list(group)
    while alive:
        assert time.perf_counter() < deadline, "children made no progress"
        now = time.perf_counter()
        for doomed in list(alive):
            if doomed.reached_at is None and doomed.done.value >= doomed.after_ops:
                doomed.reached_at = now
            if doomed.reached_at is not None and now - doomed.reached_at >= doomed.delay:
                os.kill(doomed.process.pid, signal.SIGKILL)
                alive.remove(doomed)
        time.sleep(0.002)


# --- checks ------------------------------------------------------------------------------------


def referenced_keys(db: Database) -> set[str]:
    with db.read() as session:
        return set(maintenance.referenced_keys(session))


def assert_every_record_points_at_its_verified_file(db: Database, store: ArtifactStore) -> None:
    with db.read() as session:
        for version in session.exec(select(ModelVersion)):
            store.get(version.artifact_key, sha256=version.artifact_sha256)
        for ev in session.exec(select(Evaluation)):
            store.get(ev.dataset_key, sha256=ev.dataset_sha256)


def assert_sweep_removes_exactly_the_orphans(db: Database, store: ArtifactStore) -> int:
    referenced = referenced_keys(db)
    on_disk = {e.key for e in store.entries()}
    orphans = on_disk - referenced
    report = maintenance.sweep(db, store, older_than_seconds=0)
    assert set(report.removed) == orphans
    assert report.missing == []
    assert {e.key for e in store.entries()} == referenced
    again = maintenance.sweep(db, store, older_than_seconds=0)
    assert again.removed == [] and again.missing == []
    return len(orphans)


def test_registrations_killed_at_random_points_leave_no_half_made_version(
    store: Store, forkserver: Any
) -> None:
    model_file, eval_file = small_model_and_data()
    args = (store.url, str(store.artifacts.root), model_file, eval_file)
    # a registration now spends most of its time in its sandbox worker before the files are
    # stored, so kills are spread over a longer span to land inside every part of it
    finished = run_and_kill(forkserver, register_forever, args, random.Random(4), longest=1.2)

    with store.db.read() as session:
        n_versions = session.exec(select(func.count()).select_from(ModelVersion)).one()
        without_evaluation = session.exec(
            select(ModelVersion.id).where(
                col(ModelVersion.id).not_in(select(Evaluation.version_id))
            )
        ).all()
        registered_events = session.exec(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "version.registered")
        ).one()
        numbers = sorted(session.exec(select(ModelVersion.number)).all())
        chain = audit_anchor.verify(session, get_settings())
    assert n_versions >= finished > 0
    assert without_evaluation == []
    assert registered_events == n_versions
    assert numbers == list(range(1, n_versions + 1))
    assert chain.intact, chain.message
    assert_every_record_points_at_its_verified_file(store.db, store.artifacts)

    removed = assert_sweep_removes_exactly_the_orphans(store.db, store.artifacts)
    assert removed > 0, "no kill landed between storing the files and committing the rows"
    assert_every_record_points_at_its_verified_file(store.db, store.artifacts)


# --- ingests -----------------------------------------------------------------------------------


def _ingest_function() -> Any:
    try:
        from core.services import monitoring
    except ImportError:
        return None
    return getattr(monitoring, "ingest", None)


def batch_csv(batch: int, rows: int = 200) -> bytes:
    rng = np.random.default_rng(batch)
    frame = pd.DataFrame(rng.normal(size=(rows, 3)), columns=FEATURES)
    frame.insert(0, "prediction_id", [f"p{os.getpid()}-{batch}-{i}" for i in range(rows)])
    frame.insert(
        1, "timestamp", pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(batch, "min")
    )
    frame["prediction"] = (frame["debt"] > frame["income"]).astype(int)
    frame["score"] = rng.uniform(size=rows)
    return frame.to_csv(index=False).encode()


def ingest_forever(ready: Any, done: Any, url: str, artifacts: str) -> None:
    from core.config import reset_settings

    os.environ["QUORUM_ARTIFACT_STORE"] = artifacts  # raw rows go to the test's store
    reset_settings()
    ingest = _ingest_function()
    db = Database(url)
    actor = users.principal_by_email(db, "riley@demo.quorum")
    ready.set()
    batch = 0
    while True:
        batch += 1
        ingest(db, actor, MODEL, batch_csv(batch), env="staging", filename=f"batch-{batch}.csv")
        with done.get_lock():
            done.value += 1


def test_ingests_killed_at_random_points_leave_no_half_made_batch(
    store: Store, forkserver: Any
) -> None:
    if _ingest_function() is None:
        pytest.skip("core.services.monitoring.ingest does not exist yet; nothing to ingest into")
    from core.models import BatchFile, InferenceBatch, PredictionKey
    from core.services import deployments, reviews

    dana = users.principal_by_email(store.db, DANA)
    riley = users.principal_by_email(store.db, "riley@demo.quorum")
    model_file, eval_file = small_model_and_data()
    upload = versions.VersionUpload(MODEL, model_file, "model.skops", eval_file, "eval.csv")
    version = versions.register_version(store.db, dana, upload, store=store.artifacts)
    reviews.submit_for_review(store.db, dana, MODEL, version.number)
    reviews.decide(store.db, riley, MODEL, version.number, "approve")
    deployments.promote(store.db, riley, MODEL, version.number, "staging")

    finished = run_and_kill(
        forkserver, ingest_forever, (store.url, str(store.artifacts.root)), random.Random(5)
    )

    with store.db.read() as session:
        batches = session.exec(select(InferenceBatch)).all()
        counts = dict(
            session.exec(
                select(BatchFile.batch_id, func.count())
                .join(PredictionKey, col(PredictionKey.file_id) == BatchFile.id)
                .group_by(col(BatchFile.batch_id))
            ).all()
        )
        files = session.exec(select(BatchFile)).all()
        chain = audit_anchor.verify(session, get_settings())
    assert len(batches) >= finished > 0
    assert all(counts.get(b.id, 0) == b.n_rows for b in batches)
    assert set(counts) <= {b.id for b in batches}
    assert all(store.artifacts.exists(f.key) for f in files)  # no row points at a missing file
    assert chain.intact, chain.message
    assert_every_record_points_at_its_verified_file(store.db, store.artifacts)
    assert_sweep_removes_exactly_the_orphans(store.db, store.artifacts)
