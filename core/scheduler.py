"""The one scheduler every periodic job uses.

Register a job with `@periodic("name", every=timedelta(...))` on a function taking
(db, settings) and returning a one-line message. `start(settings)` runs them in a
background thread (APScheduler), once per server process however often it is called; the
server calls it as it starts (app.py) and every page load makes sure it runs.
Several processes may run it: each run of a job is claimed under a database lock
(PostgreSQL: `pg_try_advisory_xact_lock`; SQLite: a leased `job_lock` row taken with
BEGIN IMMEDIATE), and a job that ran less than its interval ago is not run again, so a
due job runs once per cluster. Every run is a `job_run` row.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlmodel import Session, col, select

from core import jobs as _builtin_jobs  # noqa: F401  (registers the built-in jobs)
from core.config import Settings
from core.db import Database
from core.errors import ConfigurationError, InvalidInput, QuorumError
from core.models import JobLock, JobRun, utcnow
from core.periodic import Job, periodic, registered

__all__ = ["Job", "periodic", "jobs", "job", "run_job", "start"]

DUE_SLACK = 0.9  # a job is due again after 90% of its interval (two instances' clocks drift)
SQLITE_LEASE = timedelta(minutes=30)  # a crashed holder's claim expires after this


def jobs() -> list[Job]:
    """Every registered job; importing core.jobs registers the built-in ones."""
    return registered()


def job(name: str) -> Job:
    known = {j.name: j for j in jobs()}
    if name not in known:
        raise InvalidInput(
            f"There is no job named {name!r}; the jobs are: {', '.join(sorted(known))}."
        )
    return known[name]


@dataclass(frozen=True)
class RunOutcome:
    job: str
    ran: bool
    status: str  # succeeded, failed, skipped
    message: str
    run_id: int | None = None


def run_job(db: Database, name: str, settings: Settings, *, force: bool = False) -> RunOutcome:
    """Run `name` now if it is due and no other instance holds it (`force`: even if it
    ran recently; never while another instance runs it)."""
    chosen = job(name)
    with _claim(db, chosen, force) as refusal:
        if refusal:
            return RunOutcome(name, False, "skipped", refusal)
        run_id = _started(db, name)
        status, message = _execute(chosen, db, settings)
        _finished(db, run_id, status, message)
    return RunOutcome(name, True, status, message, run_id)


def _execute(chosen: Job, db: Database, settings: Settings) -> tuple[str, str]:
    try:
        return "succeeded", chosen.run(db, settings)
    except QuorumError as error:
        return "failed", error.user_message
    except Exception as error:  # noqa: BLE001  (a job's crash is recorded; the scheduler lives on)
        return "failed", f"{type(error).__name__}: {error}"


# --- claiming a run ---------------------------------------------------------------------------


@contextmanager
def _claim(db: Database, chosen: Job, force: bool) -> Iterator[str]:
    """Yield "" while this instance holds the job, else the reason it may not run it."""
    if db.sqlite:
        with _sqlite_claim(db, chosen, force) as refusal:
            yield refusal
    else:
        with _postgres_claim(db, chosen, force) as refusal:
            yield refusal


@contextmanager
def _postgres_claim(db: Database, chosen: Job, force: bool) -> Iterator[str]:
    """The advisory lock lives as long as this connection's transaction, i.e. the run."""
    with db.engine.connect() as connection:
        connection.begin()
        try:
            held = connection.execute(
                text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _lock_key(chosen.name)}
            ).scalar()
            if not held:
                yield f"Another instance is running {chosen.name} now."
                return
            with Session(bind=connection) as session:
                refusal = "" if force else _not_due(session, chosen)
            yield refusal
        finally:
            connection.rollback()  # releases the advisory lock


@contextmanager
def _sqlite_claim(db: Database, chosen: Job, force: bool) -> Iterator[str]:
    holder = f"{_where()}:{uuid.uuid4().hex[:8]}"
    with db.write() as session:
        now = utcnow()
        lock = session.get(JobLock, chosen.name)
        if lock is not None and lock.lease_until > now and lock.holder != holder:
            refusal = f"Another instance is running {chosen.name} now (until {lock.lease_until:%H:%M:%S} UTC at the latest)."
        else:
            refusal = "" if force else _not_due(session, chosen)
        if not refusal:
            lock = lock or JobLock(name=chosen.name)
            lock.holder, lock.lease_until = holder, now + SQLITE_LEASE
            session.add(lock)
    try:
        yield refusal
    finally:
        if not refusal:
            with db.write() as session:
                lock = session.get(JobLock, chosen.name)
                if lock is not None and lock.holder == holder:
                    lock.lease_until = utcnow()
                    session.add(lock)


def _not_due(session: Session, chosen: Job) -> str:
    last = session.exec(
        select(JobRun)
        .where(JobRun.job == chosen.name)
        .order_by(col(JobRun.started_at).desc())
        .limit(1)
    ).first()
    if last is None:
        return ""
    next_due = last.started_at + chosen.every * DUE_SLACK
    if utcnow() >= next_due:
        return ""
    return f"{chosen.name} ran at {last.started_at:%Y-%m-%d %H:%M:%S} UTC; it is next due at {next_due:%H:%M:%S} UTC."


def _lock_key(name: str) -> int:
    return int.from_bytes(
        hashlib.sha256(f"quorum-job:{name}".encode()).digest()[:8], "big", signed=True
    )


def _where() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _started(db: Database, name: str) -> int:
    with db.write() as session:
        run = JobRun(job=name, host=socket.gethostname()[:120], pid=os.getpid())
        session.add(run)
        session.flush()
        assert run.id is not None
        return run.id


def _finished(db: Database, run_id: int, status: str, message: str) -> None:
    with db.write() as session:
        run = session.get(JobRun, run_id)
        if run is not None:
            run.status, run.message, run.finished_at = status, message, utcnow()
            session.add(run)


def recent_runs(session: Session, limit: int = 20) -> list[JobRun]:
    return list(session.exec(select(JobRun).order_by(col(JobRun.id).desc()).limit(limit)).all())


# --- the background scheduler, once per process ------------------------------------------------


class Scheduler:
    """APScheduler's BackgroundScheduler running every registered job on one store."""

    def __init__(
        self,
        settings: Settings,
        first_run_delay: timedelta = timedelta(seconds=10),
        only: Sequence[str] | None = None,
    ) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self.settings = settings
        self._only = set(only) if only is not None else None
        self.db = Database(settings.database_url)
        self._first_run_delay = first_run_delay
        self._scheduler = BackgroundScheduler(daemon=True, timezone="UTC")

    def start(self) -> Scheduler:
        first = datetime.now().astimezone() + self._first_run_delay
        for each in jobs():
            if self._only is not None and each.name not in self._only:
                continue
            self._scheduler.add_job(
                run_job,
                "interval",
                seconds=each.every.total_seconds(),
                args=[self.db, each.name, self.settings],
                id=each.name,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=int(each.every.total_seconds()),
                next_run_time=first,
            )
        self._scheduler.start()
        return self

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def job_names(self) -> list[str]:
        return [j.id for j in self._scheduler.get_jobs()]

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        self.db.dispose()


_instance: Scheduler | None = None
_instance_lock = threading.Lock()


def start(settings: Settings) -> Scheduler | None:
    """Start this process's scheduler once; later calls return the same one. None when
    QUORUM_SCHEDULER=off."""
    global _instance
    if not settings.scheduler:
        return None
    with _instance_lock:
        if _instance is None:
            _instance = Scheduler(settings).start()
        return _instance


def start_with_server() -> Scheduler | None:
    """Start this process's scheduler as the server starts, so that a process that serves
    only the API (or that no page has opened yet) runs its share of the due jobs too. With
    invalid settings it starts none: every page then says what is wrong."""
    from core.config import get_settings

    try:
        settings = get_settings()
    except ConfigurationError:
        return None
    return start(settings)


def stop() -> None:
    global _instance
    with _instance_lock:
        if _instance is not None:
            _instance.shutdown()
            _instance = None
