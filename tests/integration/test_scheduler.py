"""The one scheduler: registry, a run recorded per job, once per cluster under a database
lock (two instances with separate engines, threads and processes, SQLite and PostgreSQL),
the background scheduler started once per process, and the operator's run-now."""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from core import audit, scheduler
from core import entry as cli
from core.auth import SYSTEM
from core.config import Settings, get_settings
from core.db import Database
from core.errors import InvalidInput, PermissionDenied
from core.models import AuditEvent, JobRun
from core.scheduler import periodic


def _mark(db: Database, what: str) -> None:
    with db.write() as session:
        audit.record(session, SYSTEM, "test.job", object_type="job", summary=what)


@periodic("test.mark", every=timedelta(hours=1))
def mark(db: Database, settings: Settings) -> str:
    _mark(db, "marked")
    return "marked once"


@periodic("test.slow", every=timedelta(hours=1))
def slow(db: Database, settings: Settings) -> str:
    time.sleep(0.6)
    _mark(db, "slow")
    return "slow done"


@periodic("test.crash", every=timedelta(hours=1))
def crash(db: Database, settings: Settings) -> str:
    raise RuntimeError("the disk is full")


@periodic("test.refused", every=timedelta(hours=1))
def refused(db: Database, settings: Settings) -> str:
    raise PermissionDenied("The job may not do that; grant it the role first.")


@periodic("test.tick", every=timedelta(seconds=2))
def tick(db: Database, settings: Settings) -> str:
    _mark(db, "tick")
    return "tick"


def marks(db: Database, what: str | None = None) -> int:
    with db.read() as session:
        rows = session.exec(select(AuditEvent).where(AuditEvent.action == "test.job")).all()
    return sum(1 for r in rows if what is None or r.summary == what)


def runs(db: Database, name: str) -> list[JobRun]:
    with db.read() as session:
        return list(
            session.exec(select(JobRun).where(JobRun.job == name).order_by(col(JobRun.id))).all()
        )


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    return replace(
        get_settings(),
        database_url=db.url,
        audit_checkpoint_store=str(tmp_path / "checkpoints"),
        scheduler=True,
    )


def test_a_run_is_recorded_and_not_repeated_before_it_is_due(
    db: Database, settings: Settings
) -> None:
    first = scheduler.run_job(db, "test.mark", settings)
    assert (first.ran, first.status, first.message) == (True, "succeeded", "marked once")
    again = scheduler.run_job(db, "test.mark", settings)
    assert not again.ran and again.status == "skipped" and "next due" in again.message
    forced = scheduler.run_job(db, "test.mark", settings, force=True)
    assert forced.ran
    assert marks(db) == 2
    recorded = runs(db, "test.mark")
    assert [r.status for r in recorded] == ["succeeded", "succeeded"]
    assert all(r.finished_at and r.finished_at >= r.started_at for r in recorded)
    assert all(r.host and r.pid > 0 and r.message == "marked once" for r in recorded)


def test_a_failing_job_is_recorded_and_the_caller_lives_on(
    db: Database, settings: Settings
) -> None:
    crashed = scheduler.run_job(db, "test.crash", settings)
    assert crashed.status == "failed" and crashed.message == "RuntimeError: the disk is full"
    denied = scheduler.run_job(db, "test.refused", settings)
    assert denied.message == "The job may not do that; grant it the role first."
    assert [r.status for r in runs(db, "test.crash")] == ["failed"]


def test_an_unknown_job_is_named(db: Database, settings: Settings) -> None:
    with pytest.raises(InvalidInput, match="no job named 'nightly'.*audit.checkpoint"):
        scheduler.run_job(db, "nightly", settings)
    assert runs(db, "nightly") == []


def test_the_built_in_jobs_are_registered() -> None:
    every = {j.name: j.every for j in scheduler.jobs()}
    assert every["audit.checkpoint"] == timedelta(minutes=1)
    assert every["compliance.remind_expiring"] == timedelta(days=1)


def test_two_instances_with_their_own_engines_run_a_due_job_once(
    db: Database, settings: Settings
) -> None:
    barrier = threading.Barrier(2)
    outcomes: list[scheduler.RunOutcome] = []

    def instance() -> None:
        own = Database(db.url)  # a separate engine, as a second server process has
        try:
            barrier.wait()
            outcomes.append(scheduler.run_job(own, "test.slow", settings))
        finally:
            own.dispose()

    threads = [threading.Thread(target=instance) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o.ran for o in outcomes) == [False, True]
    skipped = next(o for o in outcomes if not o.ran)
    assert "Another instance is running test.slow" in skipped.message or "next due" in (
        skipped.message
    )
    assert marks(db, "slow") == 1
    assert len(runs(db, "test.slow")) == 1


def _run_in_process(url: str, settings: Settings) -> bool:
    database = Database(url)
    try:
        return scheduler.run_job(database, "test.slow", settings).ran
    finally:
        database.dispose()


def test_two_processes_run_a_due_job_once(db: Database, settings: Settings) -> None:
    db.dispose()
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        ran = list(pool.map(_run_in_process, [db.url] * 4, [settings] * 4))
    assert ran.count(True) == 1
    assert marks(db, "slow") == 1 and len(runs(db, "test.slow")) == 1


def test_two_background_schedulers_run_each_interval_once(db: Database, settings: Settings) -> None:
    """Two APScheduler instances, each with its own engine, fire the same 2-second job; the
    database lock and the due check leave one run per interval between them."""
    instances = [
        scheduler.Scheduler(settings, first_run_delay=timedelta(0), only=["test.tick"])
        for _ in range(2)
    ]
    for each in instances:
        each.start()
    try:
        assert all(each.job_names() == ["test.tick"] for each in instances)
        time.sleep(5.0)
    finally:
        for each in instances:
            each.shutdown()
    recorded = runs(db, "test.tick")
    assert 2 <= len(recorded) <= 3, [r.started_at for r in recorded]
    gaps = [b.started_at - a.started_at for a, b in zip(recorded, recorded[1:], strict=False)]
    assert all(gap >= timedelta(seconds=1.8) for gap in gaps), gaps
    assert marks(db, "tick") == len(recorded)


def test_start_is_idempotent_and_can_be_switched_off(settings: Settings) -> None:
    try:
        first = scheduler.start(settings)
        assert first is not None and first.running
        assert scheduler.start(settings) is first
        assert set(first.job_names()) >= {"audit.checkpoint", "compliance.remind_expiring"}
    finally:
        scheduler.stop()
    assert scheduler.start(replace(settings, scheduler=False)) is None


def test_the_checkpoint_job_and_the_operator_commands(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    _mark(db, "before")
    done = scheduler.run_job(db, "audit.checkpoint", settings)
    assert done.status == "succeeded" and "Checkpoint 1 anchors events up to #1" in done.message
    monkeypatch.setenv("QUORUM_DATABASE_URL", db.url)
    monkeypatch.setenv("QUORUM_AUDIT_CHECKPOINT_STORE", settings.audit_checkpoint_store)
    from core import config

    config.reset_settings()
    _mark(db, "after")
    assert cli.main(["admin", "jobs", "run", "audit.checkpoint"]) == 0
    assert "1 event waits for the next checkpoint" in capsys.readouterr().out
    assert cli.main(["admin", "audit", "checkpoint"]) == 0
    assert "Checkpoint 2 anchors events up to #2" in capsys.readouterr().out
    assert cli.main(["admin", "audit", "verify"]) == 0
    assert "Anchored through event #2 by checkpoint 2" in capsys.readouterr().out
    assert cli.main(["admin", "jobs", "run", "nightly"]) == 2
    assert "no job named 'nightly'" in capsys.readouterr().err
    assert cli.main(["--json", "admin", "jobs", "list"]) == 0
    assert "audit.checkpoint" in capsys.readouterr().out
