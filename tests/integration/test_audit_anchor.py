"""Signed, write-once checkpoints of the audit chain (R11): what they catch that the chain
alone cannot (deleting the newest events, truncation, wholesale replacement), the window
they leave open (events newer than the last checkpoint), the local and S3 Object Lock
stores, the migration from the SHA-256 chain, and the offline verifier."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

from core import audit_anchor, audit_keys, config, migrate
from core.audit_check import TrailReport
from core.audit_format import (
    GENESIS_HASH,
    LEGACY,
    REKEYED_ACTION,
    CheckpointInvalid,
    legacy_hash,
    public_key_text,
    read_checkpoint,
)
from core.config import Settings, get_settings
from core.db import Database
from core.errors import ConfigurationError, Conflict
from tests.integration.test_audit_chain import append, events, tamper

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """This process's settings with a checkpoint directory of the test's own."""
    return replace(get_settings(), audit_checkpoint_store=str(tmp_path / "checkpoints"))


def verify(db: Database, settings: Settings) -> TrailReport:
    with db.read() as session:
        return audit_anchor.verify(session, settings)


def checkpoint(db: Database, settings: Settings) -> audit_anchor.Checkpoint:
    made = audit_anchor.checkpoint(db, settings, force=True).checkpoint
    assert made is not None
    return made


def kinds(report: TrailReport) -> list[tuple[str, int | None, int | None]]:
    return [(f.kind, f.first_seq, f.last_seq) for f in report.findings]


def public_key(db: Database, settings: Settings) -> str:
    return public_key_text(audit_keys.signing_key(settings, str(db.engine.url)).public_key())


# --- checkpoints ---------------------------------------------------------------------------


def test_a_checkpoint_anchors_the_head_and_verifies_with_the_public_key(
    db: Database, settings: Settings
) -> None:
    append(db, 5)
    made = checkpoint(db, settings)
    rows = events(db)
    assert (made.number, made.seq, made.count, made.keyed_from) == (1, 5, 5, 1)
    assert made.head_hash == rows[-1].hash and made.previous == GENESIS_HASH
    files = audit_anchor.LocalCheckpointStore(settings.audit_checkpoint_store).files()
    assert [f.number for f in files] == [1]
    key = audit_keys.signing_key(settings, str(db.engine.url)).public_key()
    assert read_checkpoint(files[0].data, key) == made
    with pytest.raises(CheckpointInvalid, match="signature does not verify"):
        read_checkpoint(files[0].data, Ed25519PrivateKey.generate().public_key())
    report = verify(db, settings)
    assert report.intact and report.anchored_through == 5 and report.unanchored is None
    assert "Anchored through event #5 by checkpoint 1" in report.message


def test_checkpoints_chain_and_are_written_only_when_due(db: Database, settings: Settings) -> None:
    policy = replace(settings, audit_checkpoint_events=3, audit_checkpoint_minutes=60)
    first = audit_anchor.checkpoint(db, policy)
    assert first.checkpoint is not None and first.checkpoint.seq == 0  # the empty store
    append(db, 2)
    waiting = audit_anchor.checkpoint(db, policy)
    assert waiting.checkpoint is None and "2 events wait" in waiting.message
    append(db, 1)
    second = audit_anchor.checkpoint(db, policy).checkpoint
    assert second is not None and (second.number, second.seq) == (2, 3)
    append(db, 1)
    by_time = audit_anchor.checkpoint(db, replace(policy, audit_checkpoint_minutes=0)).checkpoint
    assert by_time is not None and (by_time.number, by_time.seq) == (3, 4)
    nothing = audit_anchor.checkpoint(db, replace(policy, audit_checkpoint_minutes=0))
    assert nothing.checkpoint is None and "No new event" in nothing.message
    assert verify(db, settings).intact


# --- the window: anchored and not yet anchored ------------------------------------------------


def test_deleting_anchored_newest_events_is_named(db: Database, settings: Settings) -> None:
    append(db, 8)
    checkpoint(db, settings)
    tamper(db, "DELETE FROM audit_event WHERE seq >= 6")
    report = verify(db, settings)
    assert not report.intact
    assert kinds(report) == [("deleted", 6, 8)]
    assert "events #6–#8 are missing although checkpoint 1 anchored them" in report.message
    with pytest.raises(Conflict, match="were deleted"):
        checkpoint(db, settings)


def test_deleting_events_newer_than_the_last_checkpoint_is_reported_as_not_anchored(
    db: Database, settings: Settings
) -> None:
    append(db, 5)
    checkpoint(db, settings)
    append(db, 3)
    before = verify(db, settings)
    assert before.intact and before.unanchored == (6, 8)
    assert "events #6–#8 are newer than the last checkpoint and not yet anchored" in (
        before.message
    )
    tamper(db, "DELETE FROM audit_event WHERE seq >= 7")
    after = verify(db, settings)
    # honest: nothing anchored is missing, and the message says what could not be checked
    assert after.intact and after.unanchored == (6, 6)
    assert "event #6 is newer than the last checkpoint and not yet anchored" in after.message


def test_a_deletion_across_the_window_names_the_anchored_part(
    db: Database, settings: Settings
) -> None:
    append(db, 5)
    checkpoint(db, settings)
    append(db, 3)
    tamper(db, "DELETE FROM audit_event WHERE seq >= 4")
    report = verify(db, settings)
    assert kinds(report) == [("deleted", 4, 5)]


def test_truncation_is_named(db: Database, settings: Settings) -> None:
    append(db, 4)
    checkpoint(db, settings)
    tamper(db, "DELETE FROM audit_event")
    report = verify(db, settings)
    assert not report.intact and report.checked == 0
    assert kinds(report) == [("truncated", 1, 4)]
    assert "the trail was truncated" in report.message


def test_wholesale_replacement_under_another_key_is_named(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    append(db, 5)
    checkpoint(db, settings)
    tamper(db, "DELETE FROM audit_event")
    monkeypatch.setenv("QUORUM_AUDIT_KEY", "an insider's own key of 40 characters!!!")
    config.reset_settings()
    append(db, 7, label="forged")  # a fresh, self-consistent chain under another key
    monkeypatch.delenv("QUORUM_AUDIT_KEY")
    config.reset_settings()
    report = verify(db, settings)
    assert not report.intact
    assert kinds(report) == [("replaced", 1, 7)]
    assert "whole trail was rewritten or replaced" in report.message


def test_a_checkpoint_extends_the_trusted_history_and_refuses_a_broken_new_range(
    db: Database, settings: Settings
) -> None:
    """The writer checks only what is new (cheap, every minute); its digest continues from
    the last signed one, so a rewrite of older events stays named after later checkpoints."""
    append(db, 4)
    checkpoint(db, settings)
    tamper(db, "UPDATE audit_event SET summary = 'nothing' WHERE seq = 2")
    append(db, 1)
    assert checkpoint(db, settings).seq == 5
    report = verify(db, settings)
    assert kinds(report) == [("rewritten", 2, 2)]
    append(db, 1)
    tamper(db, "UPDATE audit_event SET summary = 'nothing' WHERE seq = 6")
    with pytest.raises(Conflict, match="do not verify"):
        checkpoint(db, settings)
    tamper(db, "UPDATE audit_event SET hash = 'x' WHERE seq = 5")
    with pytest.raises(Conflict, match="no longer matches checkpoint 2"):
        checkpoint(db, settings)


# --- the checkpoint store ----------------------------------------------------------------------


def test_a_tampered_or_missing_checkpoint_file_is_named(db: Database, settings: Settings) -> None:
    append(db, 3)
    checkpoint(db, settings)
    append(db, 2)
    checkpoint(db, settings)
    root = Path(settings.audit_checkpoint_store)
    first = root / audit_anchor.checkpoint_name(1)
    document = json.loads(first.read_bytes())
    document["checkpoint"]["seq"] = 2
    first.chmod(0o644)
    first.write_text(json.dumps(document))
    report = verify(db, settings)
    assert not report.intact
    assert [f.kind for f in report.findings] == ["checkpoint", "checkpoint"]
    assert "checkpoint 1 cannot be trusted: its signature does not verify" in report.message
    assert "checkpoint 2 does not follow checkpoint 1" in report.message
    assert report.anchored_through == 5  # checkpoint 2 is still signed and still anchors
    second = root / audit_anchor.checkpoint_name(2)
    second.chmod(0o644)
    second.write_bytes(second.read_bytes().replace(b'"count": 5', b'"count": 4'))
    with pytest.raises(Conflict, match=r"last checkpoint \(2\).*cannot be trusted"):
        checkpoint(db, settings)  # never extends a forged head
    first.unlink()
    missing = verify(db, settings)
    assert "checkpoints #1 are missing from the checkpoint store" in missing.message


def test_the_local_store_writes_once_read_only(tmp_path: Path) -> None:
    store = audit_anchor.LocalCheckpointStore(tmp_path / "checkpoints")
    store.put(1, b"first")
    with pytest.raises(Conflict, match="already exists"):
        store.put(1, b"second")
    path = tmp_path / "checkpoints" / audit_anchor.checkpoint_name(1)
    assert path.read_bytes() == b"first"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert [f.number for f in store.files()] == [1]
    assert list((tmp_path / "checkpoints").iterdir()) == [path]  # no temporary file left


# --- S3 with Object Lock (moto on loopback) ---------------------------------------------------


moto_server = pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str) -> tuple[object, str, dict[str, str]]:
    import boto3

    options = {"endpoint_url": s3_endpoint, "key": "quorum-test", "secret": "quorum-secret"}
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=options["key"],
        aws_secret_access_key=options["secret"],
        region_name="us-east-1",
    )
    bucket = f"quorum-anchors-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    return client, bucket, options


def test_s3_object_lock_store_refuses_overwrite_and_delete(
    sqlite_url: str, s3: tuple, tmp_path: Path
) -> None:
    from botocore.exceptions import ClientError

    client, bucket, options = s3
    migrate.upgrade(sqlite_url)
    db = Database(sqlite_url)
    settings = replace(
        get_settings(),
        audit_checkpoint_store=f"s3://{bucket}/anchors",
        audit_checkpoint_store_options=options,
    )
    try:
        append(db, 4)
        made = checkpoint(db, settings)
        key = f"anchors/{audit_anchor.checkpoint_name(1)}"
        head = client.head_object(Bucket=bucket, Key=key)
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert verify(db, settings).intact and made.seq == 4
        store = audit_anchor.checkpoint_store(settings, sqlite_url)
        with pytest.raises(Conflict):
            store.put(1, b"forged")
        version = head["VersionId"]
        with pytest.raises(ClientError, match="AccessDenied"):
            client.delete_object(Bucket=bucket, Key=key, VersionId=version)
        with pytest.raises(ClientError, match="PreconditionFailed"):
            client.put_object(Bucket=bucket, Key=key, Body=b"forged", IfNoneMatch="*")
        # a plain overwrite or delete only adds a version or a marker: the locked first
        # version stays, is the one read, and the attempt is named
        client.put_object(Bucket=bucket, Key=key, Body=b"forged")
        client.delete_object(Bucket=bucket, Key=key)
        report = verify(db, settings)
        assert [f.kind for f in report.findings] == ["checkpoint"]
        assert "was overwritten (2 versions" in report.message and "was deleted" in report.message
        assert report.anchored_through == 4
    finally:
        db.dispose()


def test_an_s3_bucket_without_object_lock_is_refused(s3: tuple) -> None:
    client, _bucket, options = s3
    plain = f"quorum-plain-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=plain)
    with pytest.raises(ConfigurationError, match="Object Lock"):
        audit_anchor.S3CheckpointStore(f"s3://{plain}/anchors", options)


# --- migration from the SHA-256 chain ---------------------------------------------------------


def legacy_table(*extra: sa.ColumnClause) -> sa.TableClause:
    return sa.table("audit_event", *LEGACY_COLUMNS(), *extra)


def LEGACY_COLUMNS() -> list[sa.ColumnClause]:  # noqa: N802
    return [
        sa.column("seq", sa.Integer),
        sa.column("created_at", UTCDateTime),
        sa.column("actor_id", sa.Integer),
        sa.column("actor_label", AutoString),
        sa.column("action", AutoString),
        sa.column("object_type", AutoString),
        sa.column("object_id", AutoString),
        sa.column("model_id", sa.Integer),
        sa.column("summary", sa.Text),
        sa.column("details", sa.JSON),
        sa.column("prev_hash", AutoString),
        sa.column("hash", AutoString),
    ]


def legacy_rows(count: int) -> list[dict]:
    rows, prev = [], GENESIS_HASH
    for seq in range(1, count + 1):
        row = {
            "seq": seq,
            "created_at": datetime(2026, 1, 1, 12, 0, seq, 123456, tzinfo=UTC),
            "actor_id": None,
            "actor_label": "system",
            "action": "legacy.event",
            "object_type": "test",
            "object_id": str(seq),
            "model_id": None,
            "summary": f"legacy {seq}",
            "details": {"seq": seq},
            "prev_hash": prev,
        }
        fields = {**row, "created_at": row["created_at"].isoformat(timespec="microseconds")}
        row["hash"] = prev = legacy_hash({**fields, "mac": LEGACY})
        rows.append(row)
    return rows


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def legacy_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A store made by the previous schema, with a SHA-256 chain, then migrated."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'legacy.db'}"
    else:
        url = request.getfixturevalue("empty_postgres_url")
    migrate.upgrade(url, "1fe4137086f4")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.insert(legacy_table()), legacy_rows(4))
    engine.dispose()
    migrate.upgrade(url)
    database = Database(url)
    yield database
    database.dispose()


def test_the_migration_keeps_the_sha256_chain_and_marks_the_switch(
    legacy_store: Database, settings: Settings
) -> None:
    rows = events(legacy_store)
    assert [e.mac for e in rows] == [LEGACY] * 4 + ["hmac-sha256"]
    switch = rows[4]
    assert switch.action == REKEYED_ACTION
    assert switch.details == {"last_sha256_seq": 4, "last_sha256_head": rows[3].hash}
    assert switch.prev_hash == rows[3].hash
    append(legacy_store, 2)
    made = checkpoint(legacy_store, settings)
    assert (made.seq, made.keyed_from) == (7, 5)
    report = verify(legacy_store, settings)
    assert report.intact and report.checked == 7, report.message


def test_after_the_switch_a_rewritten_sha256_prefix_is_named(
    legacy_store: Database, settings: Settings
) -> None:
    checkpoint(legacy_store, settings)
    rows = legacy_rows(4)
    rows[1]["summary"] = "forged"
    prev = rows[0]["hash"]
    statements = []
    for row in rows[1:]:
        fields = {**row, "prev_hash": prev, "mac": LEGACY}
        fields["created_at"] = row["created_at"].isoformat(timespec="microseconds")
        new = legacy_hash(fields)
        statements.append(
            f"UPDATE audit_event SET summary = '{row['summary']}', prev_hash = '{prev}', "
            f"hash = '{new}' WHERE seq = {row['seq']}"
        )
        prev = new
    statements.append(f"UPDATE audit_event SET prev_hash = '{prev}' WHERE seq = 5")
    tamper(legacy_store, *statements)
    report = verify(legacy_store, settings)
    assert not report.intact
    assert ("rewritten", 5, 5) in kinds(report)


def test_appending_to_a_legacy_chain_records_the_switch_first(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'legacy.db'}"
    migrate.upgrade(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # a legacy chain arriving after the migration (a restore)
        conn.execute(
            sa.insert(legacy_table(sa.column("mac", AutoString))),
            [{**r, "mac": LEGACY} for r in legacy_rows(2)],
        )
    engine.dispose()
    database = Database(url)
    try:
        append(database, 1)
        assert [e.action for e in events(database)] == [
            "legacy.event",
            "legacy.event",
            REKEYED_ACTION,
            "test.appended",
        ]
        with database.read() as session:
            assert audit_anchor.verify(session, get_settings()).intact
    finally:
        database.dispose()


# --- the offline verifier ------------------------------------------------------------------


def offline(export: Path, key: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.audit_offline", str(export), "--public-key", key],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.fixture
def exported(db: Database, settings: Settings, tmp_path: Path) -> tuple[Path, str]:
    append(db, 6)
    checkpoint(db, settings)
    append(db, 2)
    with db.read() as session:
        written = audit_anchor.export(session, settings, tmp_path / "export")
    assert written["events"] == 8 and written["checkpoints"] == 1
    return tmp_path / "export", written["public_key"]


def test_the_offline_verifier_needs_only_the_export_and_the_public_key(
    exported: tuple[Path, str],
) -> None:
    export, key = exported
    done = offline(export, key)
    assert done.returncode == 0, done.stderr
    assert "Audit trail intact: 8 events" in done.stdout
    assert "events #7–#8 are newer than the last checkpoint and not yet anchored" in done.stdout
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, core.audit_offline; print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'sqlmodel', 'psycopg')))",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert loaded.stdout.strip() == "[]", loaded.stderr


def test_the_offline_verifier_names_an_edited_anchored_event(exported: tuple[Path, str]) -> None:
    export, key = exported
    lines = (export / "events.jsonl").read_text().splitlines()
    event = json.loads(lines[2])
    event["summary"] = "nothing happened"
    lines[2] = json.dumps(event)
    (export / "events.jsonl").write_text("\n".join(lines) + "\n")
    done = offline(export, key)
    assert done.returncode == 1
    assert "checkpoint 1 anchored a different history up to event #6" in done.stdout


def test_the_offline_verifier_names_deleted_anchored_events(exported: tuple[Path, str]) -> None:
    export, key = exported
    lines = (export / "events.jsonl").read_text().splitlines()
    (export / "events.jsonl").write_text("\n".join(lines[:4]) + "\n")
    done = offline(export, key)
    assert done.returncode == 1
    assert "events #5–#6 are missing although checkpoint 1 anchored them" in done.stdout


def test_the_offline_verifier_refuses_a_forged_checkpoint_or_another_key(
    exported: tuple[Path, str],
) -> None:
    export, key = exported
    other = public_key_text(Ed25519PrivateKey.generate().public_key())
    done = offline(export, other)
    assert done.returncode == 1 and "signature does not verify" in done.stdout
    path = export / "checkpoints" / audit_anchor.checkpoint_name(1)
    document = json.loads(path.read_bytes())
    document["checkpoint"]["count"] = 5
    path.write_text(json.dumps(document))
    forged = offline(export, key)
    assert forged.returncode == 1 and "checkpoint 1 cannot be trusted" in forged.stdout


def test_the_offline_verifier_explains_bad_input(tmp_path: Path) -> None:
    done = offline(tmp_path / "nowhere", "not-a-key")
    assert done.returncode == 2
    assert done.stderr.startswith("error: not an Ed25519 public key")


# --- development keys ------------------------------------------------------------------------


def test_development_keys_are_generated_once_per_store_and_private(tmp_path: Path) -> None:
    settings = replace(get_settings(), audit_dir=str(tmp_path / "audit"), audit_key="")
    first, second = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    key_a = audit_keys.mac_key(settings, first)
    audit_keys.forget_cached_keys()
    assert audit_keys.mac_key(settings, first) == key_a  # read back, not regenerated
    assert audit_keys.mac_key(settings, second) != key_a
    folder = audit_keys.store_dir(settings, first)
    for name in ("audit-hmac.key",):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    audit_keys.signing_key(settings, first)
    assert stat.S_IMODE((folder / "audit-signing-key.pem").stat().st_mode) == 0o600


def test_production_never_generates_audit_keys(tmp_path: Path) -> None:
    settings = replace(get_settings(), env="production", audit_key="", audit_signing_key="")
    with pytest.raises(ConfigurationError, match="QUORUM_AUDIT_KEY"):
        audit_keys.mac_key(settings, f"sqlite:///{tmp_path / 'p.db'}")
    with pytest.raises(ConfigurationError, match="QUORUM_AUDIT_SIGNING_KEY"):
        audit_keys.signing_key(settings, f"sqlite:///{tmp_path / 'p.db'}")
    assert not (tmp_path / "audit").exists()
