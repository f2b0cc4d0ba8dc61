"""The artifact store on a local directory and on a real S3-compatible endpoint (moto in server
mode on loopback): atomic put, verified get, tamper detection, delete, listing; a registration
end to end through QUORUM_ARTIFACT_STORE=s3://...; the maintenance sweep and its command."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sqlmodel import select

from core import audit, audit_anchor, config, demo, maintenance, migrate, modelfile
from core.artifacts import ArtifactStore, default_store
from core.cli import main as cli
from core.config import get_settings
from core.db import Database
from core.errors import ConfigurationError, NotFound, QuorumError
from core.models import AuditEvent, Evaluation, ModelVersion
from core.services import registry, users, versions

moto_server = pytest.importorskip("moto.server")

FEATURES = ["income", "debt", "age"]
MODEL = "s3-scorer"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_options(s3_endpoint: str) -> dict[str, str]:
    return {"endpoint_url": s3_endpoint, "key": "quorum-test", "secret": "quorum-test-secret"}


@pytest.fixture
def s3_url(s3_options: dict[str, str]) -> str:
    bucket = f"quorum-{uuid.uuid4().hex[:12]}"
    fsspec.filesystem("s3", **s3_options).mkdir(bucket)
    return f"s3://{bucket}/artifacts"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return ArtifactStore(tmp_path / "artifacts")
    url = request.getfixturevalue("s3_url")
    return ArtifactStore(url, storage_options=request.getfixturevalue("s3_options"))


def overwrite(store: ArtifactStore, key: str, data: bytes) -> None:
    """Change a stored file behind the store's back, as an attacker or a bad disk would."""
    if store.remote:
        fsspec.filesystem("s3", **store.storage_options).pipe_file(
            f"{store.location.removeprefix('s3://')}/{key}", data
        )
    else:
        (store.root / key).write_bytes(data)


# --- the store ------------------------------------------------------------------------------


def test_put_then_get_returns_the_same_bytes_verified_by_hash(store: ArtifactStore) -> None:
    data = os.urandom(4096)
    stored = store.put(data, kind="models", suffix=".skops")
    assert stored.size == 4096
    assert stored.key.startswith("models/") and stored.key.endswith(".skops")
    assert store.exists(stored.key)
    assert store.get(stored.key, sha256=stored.sha256) == data
    assert store.keys() == [stored.key]


def test_two_puts_of_the_same_bytes_get_distinct_keys(store: ArtifactStore) -> None:
    first = store.put(b"same", kind="datasets")
    second = store.put(b"same", kind="datasets")
    assert first.key != second.key and first.sha256 == second.sha256
    assert store.keys() == sorted([first.key, second.key])


def test_tampered_object_is_refused_on_read(store: ArtifactStore) -> None:
    stored = store.put(b"original model bytes", kind="models")
    overwrite(store, stored.key, b"evil model bytes!!!!")
    with pytest.raises(QuorumError, match="no longer matches its recorded SHA-256"):
        store.get(stored.key, sha256=stored.sha256)
    assert store.get(stored.key) == b"evil model bytes!!!!"  # unverified read still works


def test_delete_removes_the_object_and_missing_keys_say_so(store: ArtifactStore) -> None:
    stored = store.put(b"x" * 10, kind="documents")
    store.delete(stored.key)
    store.delete(stored.key)  # deleting twice is harmless
    assert not store.exists(stored.key)
    assert store.keys() == []
    with pytest.raises(NotFound, match="missing from the artifact store"):
        store.get(stored.key)


@pytest.mark.parametrize("key", ["../outside", "models/../../etc/passwd", "/etc/passwd", ""])
def test_keys_that_escape_the_store_are_refused(store: ArtifactStore, key: str) -> None:
    with pytest.raises(NotFound, match="not a key of this artifact store"):
        store.get(key)


def test_entries_carry_modification_times(store: ArtifactStore) -> None:
    stored = store.put(b"abc", kind="models")
    [entry] = store.entries()
    assert entry.key == stored.key and entry.size == 3 and not entry.temporary
    assert entry.modified is not None and entry.modified.tzinfo is not None


def test_local_leftover_temp_files_are_listed_as_temporary_not_as_keys(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    kept = store.put(b"abc", kind="models")
    leftover = tmp_path / "models" / "ab" / ".tmp-deadbeef"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"half")
    assert store.keys() == [kept.key]
    assert [e.key for e in store.entries() if e.temporary] == ["models/ab/.tmp-deadbeef"]


# --- settings ---------------------------------------------------------------------------------


def test_store_options_are_read_from_json() -> None:
    settings = config.Settings.from_env(
        {
            "QUORUM_ARTIFACT_STORE": "s3://bucket/prefix",
            "QUORUM_ARTIFACT_STORE_OPTIONS": '{"endpoint_url": "http://127.0.0.1:9000"}',
        }
    )
    assert settings.artifact_store_options == {"endpoint_url": "http://127.0.0.1:9000"}
    assert config.Settings.from_env({}).artifact_store_options == {}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("{endpoint_url: x}", "not valid JSON"), ('["a"]', "must be a JSON object")],
)
def test_bad_store_options_are_a_clear_configuration_error(value: str, expected: str) -> None:
    with pytest.raises(ConfigurationError, match=expected) as raised:
        config.Settings.from_env({"QUORUM_ARTIFACT_STORE_OPTIONS": value})
    assert "QUORUM_ARTIFACT_STORE_OPTIONS" in raised.value.user_message


# --- a registration end to end on S3 ---------------------------------------------------------


def small_model_and_data(seed: int = 0) -> tuple[bytes, bytes]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(120, 3)), columns=FEATURES)
    frame["defaulted"] = (frame["debt"] - frame["income"] > 0).astype(int)
    model = LogisticRegression().fit(frame[FEATURES], frame["defaulted"])
    return sio.dumps(model), frame.to_csv(index=False).encode()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'quorum.db'}"
    migrate.upgrade(url)
    db = Database(url)
    demo.seed(db, with_models=False)
    dana = users.principal_by_email(db, "dana@demo.quorum")
    registry.create_model(
        db,
        dana,
        registry.ModelSpec(
            name=MODEL, team=demo.DEMO_TEAM, task="binary_classification", target="defaulted"
        ),
    )
    yield db
    db.dispose()


def register(db: Database, store: ArtifactStore | None, seed: int = 0) -> ModelVersion:
    model_bytes, eval_bytes = small_model_and_data(seed)
    upload = versions.VersionUpload(
        model=MODEL,
        model_file=model_bytes,
        model_filename="model.skops",
        eval_file=eval_bytes,
        eval_filename="evaluation.csv",
    )
    dana = users.principal_by_email(db, "dana@demo.quorum")
    return versions.register_version(db, dana, upload, store=store)


def test_registration_end_to_end_on_s3_configured_from_the_environment(
    sqlite_db: Database,
    s3_url: str,
    s3_options: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QUORUM_ARTIFACT_STORE", s3_url)
    monkeypatch.setenv("QUORUM_ARTIFACT_STORE_OPTIONS", json.dumps(s3_options))
    config.reset_settings()
    store = default_store()
    assert store.remote and store.location == s3_url

    version = register(sqlite_db, store=None)  # the service picks the configured store
    with sqlite_db.read() as session:
        ev = session.exec(select(Evaluation).where(Evaluation.version_id == version.id)).one()
    assert sorted(store.keys()) == sorted([version.artifact_key, ev.dataset_key])
    estimator = modelfile.load_model_bytes(
        default_store().get(version.artifact_key, sha256=version.artifact_sha256)
    )
    assert type(estimator).__name__ == "LogisticRegression"
    assert len(versions.load_evaluation_frame(ev)) == 120

    overwrite(store, version.artifact_key, b"tampered")
    with pytest.raises(QuorumError, match="no longer matches"):
        default_store().get(version.artifact_key, sha256=version.artifact_sha256)


def test_sweep_on_s3_removes_an_orphan_and_keeps_referenced_files(
    sqlite_db: Database, s3_url: str, s3_options: dict[str, str]
) -> None:
    store = ArtifactStore(s3_url, storage_options=s3_options)
    version = register(sqlite_db, store)
    orphan = store.put(b"left behind by a killed upload", kind="models")
    report = maintenance.sweep(sqlite_db, store, older_than_seconds=0)
    assert report.removed == [orphan.key]
    assert not store.exists(orphan.key) and store.exists(version.artifact_key)
    assert report.missing == []


# --- the sweep on a local directory -----------------------------------------------------------


def test_sweep_honours_grace_period_dry_run_and_reports_missing_files(
    sqlite_db: Database, tmp_path: Path
) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    version = register(sqlite_db, store)
    old = store.put(b"old orphan", kind="models")
    fresh = store.put(b"upload in flight", kind="datasets")
    an_hour_ago = time.time() - 7200
    os.utime(store.root / old.key, (an_hour_ago, an_hour_ago))

    preview = maintenance.sweep(sqlite_db, store, dry_run=True)
    assert preview.removed == [old.key] and preview.kept_recent == [fresh.key]
    assert store.exists(old.key)

    store.delete(version.artifact_key)  # a record now points at a missing file
    with sqlite_db.read() as session:
        before = audit.count(session)
    report = maintenance.sweep(sqlite_db, store)
    assert report.removed == [old.key] and not store.exists(old.key)
    assert store.exists(fresh.key)
    assert [(m.table, m.key) for m in report.missing] == [("model_version", version.artifact_key)]
    assert "1 records point at missing files" in report.message
    with sqlite_db.read() as session:
        assert audit.count(session) == before + 1
        event = session.exec(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()  # type: ignore[attr-defined]
        assert event is not None and event.action == "maintenance.swept"
        assert audit_anchor.verify(session, get_settings()).intact
    with sqlite_db.read() as session:
        assert session.get(ModelVersion, version.id) is not None  # rows are never deleted


def test_maintenance_sweep_command_prints_json(
    sqlite_db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = ArtifactStore(tmp_path / "cli-artifacts")
    monkeypatch.setenv("QUORUM_DATABASE_URL", sqlite_db.url)
    monkeypatch.setenv("QUORUM_ARTIFACT_STORE", str(store.root))
    config.reset_settings()
    orphan = store.put(b"orphan", kind="models")

    code = cli.main(["maintenance", "sweep", "--dry-run", "--older-than", "0", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["dry_run"] is True and result["removed"] == [orphan.key]
    assert store.exists(orphan.key)

    assert cli.main(["maintenance", "sweep", "--older-than", "0"]) == 0
    assert "removed 1 orphaned files" in capsys.readouterr().out
    assert not store.exists(orphan.key)
