"""The keyed audit chain (R6, R11): the server's key, append-only triggers, tamper detection
by an attacker without the key, concurrent appends."""

from __future__ import annotations

import csv
import hashlib
import io
import multiprocessing
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select

from core import audit, audit_anchor, audit_keys
from core.audit_check import TrailReport
from core.audit_format import GENESIS_HASH, KEYED, LEGACY, canonical, keyed_hash, legacy_hash
from core.auth import SYSTEM, Principal
from core.config import get_settings
from core.db import Database
from core.errors import PermissionDenied
from core.models import AuditEvent, Role
from core.services import audit_trail

PrincipalFactory = Callable[[Role | None], Principal]


def append(database: Database, count: int, label: str = "test") -> None:
    for i in range(count):
        with database.write() as session:
            audit.record(
                session,
                SYSTEM,
                "test.appended",
                object_type="test",
                object_id=f"{label}-{i}",
                summary=f"event {label}-{i}",
                details={"i": i, "label": label},
            )


def append_in_process(url: str, count: int, task: int = 0) -> int:
    database = Database(url)
    try:
        label = f"task-{task}-process-{multiprocessing.current_process().pid}"
        append(database, count, label=label)
    finally:
        database.dispose()
    return count


def events(database: Database) -> list[AuditEvent]:
    with database.read() as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all())


def report(database: Database) -> TrailReport:
    with database.read() as session:
        return audit_anchor.verify(session, get_settings())


def execute(database: Database, sql: str, **params: object) -> None:
    with database.engine.begin() as conn:
        conn.execute(text(sql), params)


def tamper(database: Database, *statements: str, **params: object) -> None:
    """Change the trail as an insider with the database's owner rights would: past the
    append-only triggers (SQLite: drop them; PostgreSQL: replica mode skips them)."""
    with database.engine.begin() as conn:
        if database.sqlite:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_event_no_update")
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_event_no_delete")
        else:
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        for statement in statements:
            conn.execute(text(statement), params)


def server_key(database: Database) -> bytes:
    return audit_keys.mac_key(get_settings(), str(database.engine.url))


# --- record and verify ---------------------------------------------------------------------


def test_empty_trail_is_intact(db: Database) -> None:
    result = report(db)
    assert result.intact and result.checked == 0
    assert "No checkpoint has been written yet" in result.message


def test_events_chain_each_to_the_previous_hash_under_the_server_key(db: Database) -> None:
    append(db, 5)
    rows = events(db)
    assert [e.seq for e in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == GENESIS_HASH
    for before, after in zip(rows, rows[1:], strict=False):
        assert after.prev_hash == before.hash
    key = server_key(db)
    assert all(e.mac == KEYED for e in rows)
    assert all(keyed_hash(key, audit.event_fields(e)) == e.hash for e in rows)
    assert all(legacy_hash(audit.event_fields(e)) != e.hash for e in rows)
    assert all(keyed_hash(b"w" * 32, audit.event_fields(e)) != e.hash for e in rows)
    assert rows[2].actor_label == SYSTEM.label and rows[2].details == {"i": 2, "label": "test"}
    assert rows[0].created_at.tzinfo is not None
    assert abs(datetime.now(UTC) - rows[0].created_at) < timedelta(minutes=1)
    result = report(db)
    assert result.intact and result.checked == 5
    assert "intact" in result.message


def test_a_failed_transaction_leaves_no_event(db: Database) -> None:
    append(db, 1)
    with pytest.raises(RuntimeError), db.write() as session:
        audit.record(session, SYSTEM, "test.lost", object_type="test", summary="rolled back")
        raise RuntimeError("abort")
    assert [e.action for e in events(db)] == ["test.appended"]
    assert report(db).intact


# --- the table refuses changes -------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_event SET summary = 'nothing happened' WHERE seq = 2",
        "DELETE FROM audit_event WHERE seq = 3",
        "DELETE FROM audit_event",
    ],
)
def test_the_audit_table_refuses_update_and_delete(db: Database, statement: str) -> None:
    append(db, 3)
    before = [(e.seq, e.summary, e.hash) for e in events(db)]
    with pytest.raises(DBAPIError, match="append-only"):
        execute(db, statement)
    assert [(e.seq, e.summary, e.hash) for e in events(db)] == before


@pytest.mark.postgres
def test_postgres_refuses_truncate_of_the_audit_table(_postgres_migrated: str) -> None:
    from tests.conftest import _truncate_all

    postgres_url = _postgres_migrated
    _truncate_all(postgres_url)
    database = Database(postgres_url)
    try:
        append(database, 2)
        with pytest.raises(DBAPIError, match="append-only: TRUNCATE"):
            execute(database, "TRUNCATE audit_event")
        assert len(events(database)) == 2
    finally:
        database.dispose()


# --- tampering -----------------------------------------------------------------------------


def test_edited_summary_names_that_event(db: Database) -> None:
    append(db, 5)
    tamper(db, "UPDATE audit_event SET summary = 'nothing happened' WHERE seq = 3")
    result = report(db)
    assert not result.intact
    assert result.first_broken_seq == 3
    assert [(f.kind, f.first_seq, f.last_seq) for f in result.findings] == [("rewritten", 3, 3)]
    assert "MAC does not match" in result.problem
    assert "#3" in result.message


def test_edited_actor_names_that_event_and_its_row(db: Database) -> None:
    append(db, 4)
    row = events(db)[1]
    tamper(db, "UPDATE audit_event SET actor_label = 'someone else' WHERE id = :id", id=row.id)
    result = report(db)
    assert (result.intact, result.first_broken_seq, result.first_broken_id) == (False, 2, row.id)


def test_rewrite_with_recomputed_sha256_is_named(db: Database) -> None:
    """The attacker edits #3 and recomputes plain SHA-256 hashes from #3 on (the old chain's
    scheme): without the key, every rewritten event is named."""
    append(db, 5)
    prev = events(db)[1].hash
    statements = []
    for event in events(db)[2:]:
        fields = {**audit.event_fields(event), "prev_hash": prev, "summary": "forged"}
        fields["hash"] = hashlib.sha256(canonical(fields)).hexdigest()
        statements.append(
            f"UPDATE audit_event SET summary = 'forged', prev_hash = '{prev}', "
            f"hash = '{fields['hash']}' WHERE seq = {event.seq}"
        )
        prev = fields["hash"]
    tamper(db, *statements)
    result = report(db)
    assert [(f.kind, f.first_seq, f.last_seq) for f in result.findings] == [("rewritten", 3, 5)]
    assert "events #3–#5 were rewritten" in result.message


@pytest.mark.parametrize("scheme", ["legacy-sha256", "wrong-key-hmac"])
def test_rehashing_every_event_without_the_key_is_named_a_replacement(
    db: Database, scheme: str
) -> None:
    append(db, 6)
    prev = GENESIS_HASH
    statements = []
    for event in events(db):
        fields = {**audit.event_fields(event), "prev_hash": prev, "summary": "all is well"}
        if scheme == "legacy-sha256":
            fields["mac"] = LEGACY
            fields["hash"] = legacy_hash(fields)
        else:
            fields["hash"] = keyed_hash(b"an attacker's own key, 32 bytes!", fields)
        statements.append(
            f"UPDATE audit_event SET summary = 'all is well', prev_hash = '{prev}', "
            f"hash = '{fields['hash']}', mac = '{fields['mac']}' WHERE seq = {event.seq}"
        )
        prev = fields["hash"]
    tamper(db, *statements)
    result = report(db)
    assert [(f.kind, f.first_seq, f.last_seq) for f in result.findings] == [("replaced", 1, 6)]
    assert "whole trail was rewritten or replaced" in result.message


def test_deleted_event_names_the_missing_range(db: Database) -> None:
    append(db, 6)
    tamper(db, "DELETE FROM audit_event WHERE seq IN (3, 4)")
    result = report(db)
    assert not result.intact
    assert result.first_broken_seq == 3
    assert [(f.kind, f.first_seq, f.last_seq) for f in result.findings] == [("deleted", 3, 4)]
    assert "events #3–#4 are missing" in result.message


def test_deleted_first_event_is_detected(db: Database) -> None:
    append(db, 3)
    tamper(db, "DELETE FROM audit_event WHERE seq = 1")
    result = report(db)
    assert not result.intact and result.first_broken_seq == 1
    assert result.findings[0].kind == "deleted"


def test_swapped_events_are_named(db: Database) -> None:
    append(db, 5)
    tamper(
        db,
        "UPDATE audit_event SET seq = -1 WHERE seq = 2",
        "UPDATE audit_event SET seq = 2 WHERE seq = 3",
        "UPDATE audit_event SET seq = 3 WHERE seq = -1",
    )
    result = report(db)
    assert not result.intact
    assert result.first_broken_seq == 2
    assert [(f.kind, f.first_seq, f.last_seq) for f in result.findings] == [("rewritten", 2, 4)]


# --- concurrent appends --------------------------------------------------------------------


def _assert_contiguous_valid_chain(database: Database, expected: int) -> None:
    rows = events(database)
    assert [e.seq for e in rows] == list(range(1, expected + 1))
    result = report(database)
    assert result.intact, result.message
    assert result.checked == expected


def test_eight_threads_appending_keep_the_chain_valid(db: Database) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            append(db, 15, label=f"thread-{n}")
        except BaseException as error:  # noqa: BLE001  (collected and asserted below)
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    _assert_contiguous_valid_chain(db, 8 * 15)


def test_four_processes_appending_keep_the_chain_valid(db: Database) -> None:
    db.dispose()  # forked children open their own connections; share none
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=4, mp_context=context) as pool:
        done = list(pool.map(append_in_process, [db.url] * 4, [30] * 4, range(4)))
    assert done == [30] * 4
    _assert_contiguous_valid_chain(db, 4 * 30)
    assert len({e.actor_label for e in events(db)}) == 1
    labels = {e.details["label"] for e in events(db)}
    assert {label.split("-process-")[0] for label in labels} == {f"task-{n}" for n in range(4)}


# --- the audit trail as a service ----------------------------------------------------------


def test_verify_and_search_need_the_audit_permission(
    people_db: Database, principal: PrincipalFactory
) -> None:
    before = len(events(people_db))
    for role in (Role.COMPLIANCE, Role.REVIEWER, Role.ADMIN):
        assert audit_trail.verify(people_db, principal(role)).intact
    for role in (Role.DATA_SCIENTIST, Role.BUSINESS, None):
        with pytest.raises(PermissionDenied):
            audit_trail.verify(people_db, principal(role))
        with pytest.raises(PermissionDenied):
            audit_trail.search(people_db, principal(role))
    denied = [e for e in events(people_db)[before:] if e.action == "permission.denied"]
    assert len(denied) == 6
    assert report(people_db).intact


def test_search_filters_by_model_actor_action_and_date(
    people_db: Database, principal: PrincipalFactory
) -> None:
    casey = principal(Role.COMPLIANCE)
    dana = principal(Role.DATA_SCIENTIST)
    everything = audit_trail.search(people_db, casey)
    assert [e.seq for e in everything] == sorted((e.seq for e in everything), reverse=True)
    created = audit_trail.search(people_db, casey, action="model.created")
    assert {e.summary.split()[1] for e in created} == {
        "credit-default-scorer",
        "bike-demand-forecaster",
    }
    model_id = created[0].model_id
    assert model_id is not None
    for_model = audit_trail.search(people_db, casey, model_id=model_id)
    assert for_model and all(e.model_id == model_id for e in for_model)
    by_dana = audit_trail.search(people_db, casey, actor_id=dana.user_id)
    # the two models dana created, and the card she wrote for the high-risk one
    assert sorted(e.action for e in by_dana) == [
        "model.card_updated",
        "model.created",
        "model.created",
    ]
    assert all(e.actor_id == dana.user_id for e in by_dana)
    today = datetime.now(UTC).date()
    assert len(audit_trail.search(people_db, casey, start=today, end=today)) == len(everything)
    yesterday = today - timedelta(days=1)
    assert audit_trail.search(people_db, casey, start=yesterday, end=yesterday) == []


def test_csv_export_has_every_event_and_defuses_formulas(db: Database) -> None:
    with db.write() as session:
        audit.record(session, SYSTEM, "test.csv", object_type="test", summary="=HYPERLINK(1)")
        audit.record(session, SYSTEM, "test.csv", object_type="test", summary="plain, text")
    rows = list(csv.DictReader(io.StringIO(audit_trail.to_csv(events(db)))))
    assert [r["seq"] for r in rows] == ["1", "2"]
    assert rows[0]["summary"] == "'=HYPERLINK(1)"
    assert rows[1]["summary"] == "plain, text"
    assert rows[1]["prev_hash"] == rows[0]["hash"]


# --- the documented PostgreSQL role setup --------------------------------------------------


def readme_role_setup(role: str) -> list[str]:
    """The SQL block of the README's "Database roles" paragraph, for another role name."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    after = readme[readme.index("**Database roles (PostgreSQL).**") :]
    block = after[
        after.index("```sql") + len("```sql") : after.index("```", after.index("```sql") + 6)
    ]
    return [s.strip().replace("quorum_app", role) for s in block.split(";") if s.strip()]


@pytest.mark.postgres
def test_the_readme_role_setup_lets_the_app_append_but_not_change_the_trail(
    _postgres_migrated: str,
) -> None:
    from tests.conftest import _truncate_all

    postgres_url = _postgres_migrated
    _truncate_all(postgres_url)
    role = f"quorum_app_{uuid.uuid4().hex[:8]}"
    owner = Database(postgres_url)
    app = Database(postgres_url, connect_args={"options": f"-c role={role}"})
    try:
        with owner.engine.begin() as conn:
            for statement in readme_role_setup(role):
                conn.exec_driver_sql(statement)
        append(app, 3)
        assert report(app).intact
        for statement in (
            "UPDATE audit_event SET summary = 'x' WHERE seq = 1",
            "DELETE FROM audit_event WHERE seq = 3",
            "TRUNCATE audit_event",
            "DROP TRIGGER audit_event_no_change ON audit_event",
            "ALTER TABLE audit_event DISABLE TRIGGER USER",
        ):
            with pytest.raises(DBAPIError, match="permission denied|must be owner"):
                execute(app, statement)
        assert len(events(owner)) == 3
    finally:
        app.dispose()
        with owner.engine.begin() as conn:
            conn.exec_driver_sql(f'DROP OWNED BY "{role}"')
            conn.exec_driver_sql(f'DROP ROLE "{role}"')
        owner.dispose()
