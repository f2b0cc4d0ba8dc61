"""Raw rows in Parquet: files per batch and day, the prediction-id index, voiding (rows and
aggregates built outside Quorum), the orphan sweep, and the migration of the old table."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest
from alembic import command
from sqlalchemy import text
from sqlmodel import col, select

from core import maintenance, migrate
from core.artifacts import default_store
from core.auth import SYSTEM
from core.db import Database
from core.errors import InvalidInput
from core.models import BatchFile, InferenceBatch, PredictionKey, Role, WindowAggregateRow
from core.monitoring.windows import aggregate_chunk
from core.services import monitoring
from core.services.monitoring import rows as stored_rows
from tests.integration import test_monitoring
from tests.integration.test_monitoring import (
    ENV,
    MODEL,
    PrincipalFactory,
    _csv,
    _labels,
    _production,
)

live = test_monitoring.live  # the same deployed toy model


def _files(db: Database, batch_id: int | None = None) -> list[BatchFile]:
    with db.read() as session:
        query = select(BatchFile)
        if batch_id is not None:
            query = query.where(BatchFile.batch_id == batch_id)
        return list(session.exec(query).all())


def _windows(db: Database) -> dict[date, WindowAggregateRow]:
    with db.read() as session:
        found = session.exec(select(WindowAggregateRow)).all()
        return {w.window_start.date(): w for w in found}


def test_each_batch_is_parquet_per_day_and_voiding_removes_its_files_and_keys(
    live: Database, principal: PrincipalFactory
) -> None:
    dana = principal(Role.DATA_SCIENTIST)
    first = monitoring.ingest(live, dana, MODEL, _csv(_production(4, seed=1)), env=ENV)
    later = _production(4, start="2026-01-03", seed=2)
    second = monitoring.ingest(live, dana, MODEL, _csv(later), env=ENV, chunk_rows=100)
    files = _files(live, first.batch_id)
    assert len(files) == 4 and sum(f.n_rows for f in files) == 240
    assert all(f"/batch-{first.batch_id}-00000-" in f.key for f in files)
    assert len(_files(live, second.batch_id)) == 6  # chunks of 100 rows: 2 + 3 + 1 day(s)
    assert _windows(live)[date(2026, 1, 3)].n_rows == 120

    monitoring.void_batch(live, dana, MODEL, first.batch_id, "wrong export, sent again")
    assert not _files(live, first.batch_id)
    assert not any(default_store().exists(f.key) for f in files)
    assert all(default_store().exists(f.key) for f in _files(live))
    windows = _windows(live)
    assert sorted(windows) == [date(2026, 1, d) for d in (3, 4, 5, 6)]
    assert all(w.n_rows == 60 for w in windows.values())
    with live.read() as session:
        keys = session.exec(select(PredictionKey.prediction_id)).all()
    assert len(keys) == 240 and all(k.startswith("p-2-") for k in keys)
    joined = monitoring.ingest_labels(live, dana, MODEL, _labels(later), env=ENV)
    assert joined.n_rows == 240
    with pytest.raises(InvalidInput, match="No prediction was ingested"):
        monitoring.ingest_labels(live, dana, MODEL, _labels(_production(1, seed=1)), env=ENV)


def test_rows_sent_out_of_time_order_are_indexed_where_their_file_holds_them(
    live: Database, principal: PrincipalFactory
) -> None:
    """Each chunk is sorted by day before it is cut into files: every index entry must still
    point at the row of its own prediction id, in the file of its own day, with its label."""
    dana = principal(Role.DATA_SCIENTIST)
    frame = _production(3, seed=5).sample(frac=1, random_state=0).reset_index(drop=True)
    frame["label"] = frame["y"].where(frame.index % 3 != 0)  # some rows come without a label
    sent = frame[["timestamp", "prediction_id", *test_monitoring.FEATURES, "label"]]
    monitoring.ingest(live, dana, MODEL, sent.to_csv(index=False).encode(), env=ENV, chunk_rows=70)
    with live.read() as session:
        keys = session.exec(select(PredictionKey)).all()
        files = {f.id: f for f in session.exec(select(BatchFile)).all()}
    assert len(keys) == len(frame) == 180 and len(files) == 9  # 3 chunks x 3 days
    expected = frame.set_index("prediction_id")
    for key in keys:
        record = files[key.file_id]
        row = stored_rows.read_file(default_store(), record.key).iloc[key.row]
        assert row["prediction_id"] == key.prediction_id
        assert pd.Timestamp(row["timestamp"]).date() == record.day.date()
        label = expected.loc[key.prediction_id, "label"]
        assert key.label == (None if pd.isna(label) else str(int(label)))


def test_a_batch_refused_by_the_id_index_after_files_were_written_leaves_none(
    live: Database, principal: PrincipalFactory
) -> None:
    """Ids are indexed on a thread of its own while later chunks are written: an id repeated
    in the last chunk is refused after earlier chunks' files exist, and none may remain."""
    dana = principal(Role.DATA_SCIENTIST)
    frame = _production(4, seed=8)
    frame.loc[len(frame) - 1, "prediction_id"] = frame.loc[0, "prediction_id"]
    before = {e.key for e in default_store().entries()}
    with pytest.raises(InvalidInput, match="repeats 1 prediction id"):
        monitoring.ingest(live, dana, MODEL, _csv(frame), env=ENV, chunk_rows=40)
    assert not _files(live)
    assert {e.key for e in default_store().entries()} == before
    with live.read() as session:
        assert not session.exec(select(PredictionKey)).all()


def test_hostile_prediction_ids_are_stored_exactly_or_refused(
    live: Database, principal: PrincipalFactory
) -> None:
    """Ids reach SQL inside a JSON array (SQLite) or a COPY stream (PostgreSQL): quotes,
    backslashes, SQL and non-ASCII text are stored as sent and labels join on them; a NUL,
    which SQLite's JSON would cut short and PostgreSQL text cannot hold, is refused."""
    dana = principal(Role.DATA_SCIENTIST)
    frame = _production(1, seed=9).head(5)
    hostile = ["q\"uote'x", "back\\slash", "é✓ 名前", "'); DROP TABLE prediction_key; --", "[1]"]
    frame["prediction_id"] = hostile
    monitoring.ingest(
        live, dana, MODEL, frame[["timestamp", "prediction_id", *test_monitoring.FEATURES]], env=ENV
    )
    with live.read() as session:
        stored = sorted(session.exec(select(PredictionKey.prediction_id)).all())
    assert stored == sorted(hostile)
    assert monitoring.ingest_labels(live, dana, MODEL, _labels(frame), env=ENV).n_rows == 5

    bad = _production(1, start="2026-01-02", seed=10).head(3)
    bad.loc[1, "prediction_id"] = "a\x00b"
    with pytest.raises(InvalidInput) as refused:
        monitoring.ingest(
            live,
            dana,
            MODEL,
            bad[["timestamp", "prediction_id", *test_monitoring.FEATURES]],
            env=ENV,
        )
    assert "'prediction_id' holds a NUL character (row(s) 2)" in refused.value.details
    with live.read() as session:
        assert len(session.exec(select(PredictionKey)).all()) == 5


def test_aggregates_built_outside_quorum_are_marked_and_voided_with_their_files(
    live: Database, principal: PrincipalFactory
) -> None:
    dana = principal(Role.DATA_SCIENTIST)
    reference = monitoring.reference(live, dana, MODEL, ENV)
    profile = monitoring.monitoring_data(live, SYSTEM, MODEL, ENV).profile
    frame = _production(3, seed=5).drop(columns=["y"])
    frame["prediction"] = (frame["debt"] > 20).astype(int)
    windows = aggregate_chunk(frame, profile, window=reference.window)
    sent = monitoring.Aggregates(
        version=reference.version,
        profile_sha256=reference.fingerprint,
        windows=[w.to_dict() for w in windows.values()],
    )
    result = monitoring.ingest_aggregates(live, dana, MODEL, sent, env=ENV)
    assert result.n_rows == 180 and "outside Quorum" in result.message
    data = monitoring.monitoring_data(live, SYSTEM, MODEL, ENV)
    assert data.external_rows == {day: 60 for day in windows}
    assert "did not see these rows" in data.outside_note
    files = _files(live, result.batch_id)
    assert len(files) == 3 and all(default_store().exists(f.key) for f in files)
    with live.read() as session:
        batch = session.get(InferenceBatch, result.batch_id)
        assert batch is not None and batch.external

    monitoring.ingest(live, dana, MODEL, _csv(_production(1, seed=6)), env=ENV)
    assert _windows(live)[date(2026, 1, 1)].n_rows == 120
    monitoring.void_batch(live, dana, MODEL, result.batch_id, "job ran on the wrong day")
    assert not any(default_store().exists(f.key) for f in files)
    assert {d: w.n_rows for d, w in _windows(live).items()} == {date(2026, 1, 1): 60}
    assert monitoring.monitoring_data(live, SYSTEM, MODEL, ENV).outside_note == ""


def test_the_sweep_keeps_batch_files_and_removes_files_no_batch_lists(
    live: Database, principal: PrincipalFactory
) -> None:
    dana = principal(Role.DATA_SCIENTIST)
    monitoring.ingest(live, dana, MODEL, _csv(_production(2)), env=ENV)
    store = default_store()
    stray = store.put_at(
        "predictions/model=1/env=staging/day=2026-01-01/batch-999-00000.parquet", b"x"
    )
    report = maintenance.sweep(live, store, older_than_seconds=0)
    kept = {f.key for f in _files(live)}  # the store is shared with other tests' databases
    assert stray.key in report.removed and not kept & set(report.removed) and not report.missing
    assert kept and all(store.exists(key) for key in kept)


def test_the_migration_moves_the_old_prediction_rows_to_parquet(
    live: Database, principal: PrincipalFactory
) -> None:
    dana = principal(Role.DATA_SCIENTIST)
    frame = _production(2, seed=3)
    batch = monitoring.ingest(live, dana, MODEL, _csv(frame), env=ENV).batch_id
    monitoring.ingest_labels(live, dana, MODEL, _labels(frame.head(30)), env=ENV)
    with live.read() as session:
        version_id = session.get(InferenceBatch, batch).version_id  # type: ignore[union-attr]
        ids = {f.id: f for f in session.exec(select(BatchFile)).all()}
        keys = session.exec(
            select(PredictionKey).where(col(PredictionKey.file_id).in_(list(ids)))
        ).all()
        old = []
        for key in keys:
            row = stored_rows.read_file(default_store(), ids[key.file_id].key).iloc[key.row]
            old.append((key, row))
    command.downgrade(migrate.alembic_config(live.url), "b12a00000001")
    with live.engine.begin() as conn:
        for key, row in old:
            features = {c: row[c] for c in ("income", "debt", "region")}
            conn.execute(
                text(
                    "INSERT INTO prediction (batch_id, model_id, version_id, environment, "
                    "prediction_id, ts, prediction, score, label, label_batch_id, features) "
                    "VALUES (:b, :m, :v, :e, :p, :t, :pr, :s, :l, :lb, :f)"
                ),
                {
                    "b": batch,
                    "m": key.model_id,
                    "v": version_id,
                    "e": key.environment,
                    "p": key.prediction_id,
                    "t": row["timestamp"].to_pydatetime(),
                    "pr": row["prediction"],
                    "s": float(row["score"]),
                    "l": key.label,
                    "lb": key.label_batch_id,
                    "f": json.dumps(features),
                },
            )
    migrate.upgrade(live.url)
    moved = _files(live, batch)
    assert len(moved) == 2 and sum(f.n_rows for f in moved) == 120
    with live.read() as session:
        labelled = session.exec(
            select(PredictionKey).where(col(PredictionKey.label).is_not(None))
        ).all()
        assert len(labelled) == 30 and all(k.label_batch_id for k in labelled)
    back = pd.concat([stored_rows.read_file(default_store(), f.key) for f in moved])
    assert sorted(back["prediction_id"]) == sorted(frame["prediction_id"])
