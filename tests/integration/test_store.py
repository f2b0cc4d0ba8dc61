"""The SQL store: migrations match the models; SQLite settings; writes serialise without loss."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import pytest
from sqlalchemy import MetaData, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, select

import core.models  # noqa: F401  (registers every table on SQLModel.metadata)
from core import migrate
from core.db import SQLITE_BUSY_TIMEOUT_MS, Database
from core.models import RoleGrant, Team

COUNTER_TEAM = "counter"


# --- migrations -----------------------------------------------------------------------------


def _assert_schema_matches_models(url: str) -> None:
    migrate.upgrade(url)
    migrate.check(url)  # alembic check: raises when the models and the schema differ
    database = Database(url)
    try:
        reflected = MetaData()
        reflected.reflect(database.engine)
        inspector = inspect(database.engine)
        expected = set(SQLModel.metadata.tables)
        assert set(reflected.tables) - {"alembic_version"} == expected
        for name, table in SQLModel.metadata.tables.items():
            assert {c.name for c in reflected.tables[name].columns} == {
                c.name for c in table.columns
            }, name
            migrated_indexes = {i["name"] for i in inspector.get_indexes(name)}
            assert {i.name for i in table.indexes} <= migrated_indexes, name
    finally:
        database.dispose()


def test_migrations_give_the_models_schema_on_sqlite(sqlite_url: str) -> None:
    _assert_schema_matches_models(sqlite_url)


@pytest.mark.postgres
def test_migrations_give_the_models_schema_on_postgres(empty_postgres_url: str) -> None:
    database = Database(empty_postgres_url)
    with database.engine.connect() as conn:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
        assert schema and schema.startswith("empty_")
        assert inspect(conn).get_table_names() == []
    database.dispose()
    _assert_schema_matches_models(empty_postgres_url)


def test_upgrade_twice_is_a_no_op(sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)
    migrate.upgrade(sqlite_url)
    database = Database(sqlite_url)
    with database.engine.connect() as conn:
        heads = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    database.dispose()
    assert len(heads) == 1


# --- SQLite connection settings ----------------------------------------------------------


def test_sqlite_uses_wal_foreign_keys_and_a_busy_timeout(sqlite_url: str) -> None:
    database = Database(sqlite_url)
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
    database.dispose()


def test_sqlite_enforces_foreign_keys(sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)
    database = Database(sqlite_url)
    with pytest.raises(IntegrityError), database.write() as session:
        session.add(RoleGrant(user_id=999, role="admin"))
    with database.read() as session:
        assert session.exec(select(RoleGrant)).all() == []
    database.dispose()


def _raw_connection(url: str) -> sqlite3.Connection:
    path = make_url(url).database
    assert path
    return sqlite3.connect(path, timeout=0.1, isolation_level=None)


def test_sqlite_write_takes_the_lock_at_begin_and_readers_still_read(sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)
    database = Database(sqlite_url)
    other = _raw_connection(sqlite_url)
    try:
        with database.write() as session:
            session.exec(select(Team)).all()  # only a read so far, yet the write lock is held
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            other.execute("BEGIN")
            assert other.execute("SELECT count(*) FROM team").fetchone() == (0,)
            other.execute("ROLLBACK")
        other.execute("BEGIN IMMEDIATE")  # released at commit
        other.execute("ROLLBACK")
    finally:
        other.close()
        database.dispose()


def test_sqlite_read_does_not_block_writers(sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)
    database = Database(sqlite_url)
    other = _raw_connection(sqlite_url)
    try:
        with database.read() as session:
            assert session.exec(select(Team)).all() == []
            other.execute("BEGIN IMMEDIATE")
            other.execute("INSERT INTO team (name, description, created_at) VALUES ('x', '', '')")
            other.execute("COMMIT")
    finally:
        other.close()
        database.dispose()


def test_write_rolls_back_everything_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError), db.write() as session:
        session.add(Team(name="half-made"))
        session.flush()
        raise RuntimeError("stop")
    with db.read() as session:
        assert session.exec(select(Team)).all() == []


# --- read-modify-write under concurrency ---------------------------------------------------


def _make_counter(database: Database) -> None:
    with database.write() as session:
        session.add(Team(name=COUNTER_TEAM, description="0"))


def _read_counter(database: Database) -> int:
    with database.read() as session:
        team = session.exec(select(Team).where(Team.name == COUNTER_TEAM)).one()
        return int(team.description)


def increment(database: Database, times: int) -> int:
    """Read the counter, add one in Python, write it back; each in its own transaction.

    On SQLite the plain read is enough: write() begins with BEGIN IMMEDIATE, so no two
    transactions read the same value. PostgreSQL needs the row lock (SELECT ... FOR UPDATE).
    """
    for _ in range(times):
        with database.write() as session:
            stmt = select(Team).where(Team.name == COUNTER_TEAM)
            if not database.sqlite:
                stmt = stmt.with_for_update()
            team = session.exec(stmt).one()
            team.description = str(int(team.description) + 1)
            session.add(team)
    return times


def increment_in_process(url: str, times: int) -> int:
    database = Database(url)
    try:
        return increment(database, times)
    finally:
        database.dispose()


def test_threads_read_modify_write_lose_nothing(db: Database) -> None:
    _make_counter(db)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            increment(db, 25)
        except BaseException as error:  # noqa: BLE001  (collected and asserted below)
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _read_counter(db) == 8 * 25


def run_in_processes(database: Database, work: Callable[[str, int], int], times: int) -> list[int]:
    """Run `work(url, times)` in 4 OS processes at once; each opens its own engine.

    Forked, not spawned (a spawned child re-imports everything: seconds instead of
    milliseconds); the parent's pooled connections are closed first so none is shared.
    """
    database.dispose()
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=4, mp_context=context) as pool:
        return list(pool.map(work, [database.url] * 4, [times] * 4))


def test_processes_read_modify_write_lose_nothing(db: Database) -> None:
    _make_counter(db)
    done = run_in_processes(db, increment_in_process, 50)
    assert done == [50] * 4
    assert _read_counter(db) == 4 * 50
