"""Raw production rows out of SQL: each batch's rows as Parquet files in the artifact store,
partitioned by model, environment and day (any window, day, week or month, is a union of
days), and a compact SQL index from prediction id to (file, row) that label joins use without
reading whole batches."""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import bindparam, delete, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.artifacts import ArtifactStore, default_store
from core.models import BatchFile, InferenceBatch, PredictionKey
from core.monitoring.windows import window_starts
from core.services.monitoring.common import (
    ID_BATCH,
    ID_COL,
    LABEL_COL,
    PRED_COL,
    SCORE_COL,
    TS_COL,
    _as_datetime,
)

AGGREGATES = "aggregates"  # a file of window aggregates built outside Quorum (no rows)
KEY_COLUMNS = ("model_id", "environment", "prediction_id", "file_id", "row", "label")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def store() -> ArtifactStore:
    return default_store()


def file_key(batch: InferenceBatch, day: date, part: int, suffix: str = "parquet") -> str:
    """A key no other attempt can take: a rolled-back batch's id may be given again (SQLite),
    and its leftover files must neither be overwritten nor deleted by the next batch."""
    env = _SAFE.sub("_", batch.environment)
    return (
        f"predictions/model={batch.model_id}/env={env}/day={day.isoformat()}/"
        f"batch-{batch.id}-{part:05d}-{uuid.uuid4().hex[:12]}.{suffix}"
    )


def _day(value: Any) -> date:
    return pd.Timestamp(value).date()


# --- writing -----------------------------------------------------------------------------


@dataclass
class WrittenFile:
    """One Parquet file put in the store, not yet listed in SQL."""

    day: date
    key: str
    size: int
    ids: list[str]
    labels: list[Any]


def write_files(
    files: ArtifactStore,
    batch: InferenceBatch,
    chunk: pd.DataFrame,
    labels: list[Any],
    part: int,
    written: list[str],
) -> list[WrittenFile]:
    """Encode one chunk's rows as one Parquet file per day and put them in the store. No SQL,
    so it may run in a worker thread while the caller aggregates; each key is appended to
    `written` as soon as its file exists, so a failed ingest can delete what was put."""
    days = window_starts(chunk[TS_COL], "D")
    order = np.argsort(days, kind="stable")
    ordered_days = days[order]
    table = _arrow(chunk if _is_sorted(days) else chunk.iloc[order])
    ids = table.column(ID_COL).to_pylist()
    picked_labels = np.asarray(labels, dtype=object)[order]
    bounds = (np.flatnonzero(ordered_days[1:] != ordered_days[:-1]) + 1).tolist()
    dictionary = _dictionary_columns(table.schema)
    done = []
    for start, end in zip([0, *bounds], [*bounds, len(ordered_days)], strict=True):
        day = _day(ordered_days[start])
        buffer = io.BytesIO()
        pq.write_table(
            table.slice(start, end - start),
            buffer,
            compression="snappy",
            use_dictionary=dictionary,
        )
        stored = files.put_at(file_key(batch, day, part), buffer.getvalue())
        written.append(stored.key)
        done.append(
            WrittenFile(
                day, stored.key, stored.size, ids[start:end], picked_labels[start:end].tolist()
            )
        )
    return done


def index_files(session: Session, batch: InferenceBatch, written: list[WrittenFile]) -> None:
    """List the files of a batch in SQL and index their prediction ids."""
    table = BatchFile.__table__  # type: ignore[attr-defined]
    connection = session.connection()
    for item in written:
        file_id = connection.execute(
            insert(table)
            .values(
                batch_id=batch.id or 0,
                day=_as_datetime(item.day),
                key=item.key,
                n_rows=len(item.ids),
                size=item.size,
            )
            .returning(table.c.id)
        ).scalar_one()
        _insert_keys(session, batch, file_id, item.ids, item.labels)


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """Text columns other than the id: dictionary encoding pays on repeated labels and
    categories; on numbers and unique ids it only costs (a third of the write time)."""
    return [
        f.name
        for f in schema
        if f.name != ID_COL
        and (
            pa.types.is_string(f.type)
            or pa.types.is_large_string(f.type)
            or pa.types.is_dictionary(f.type)
        )
    ]


def _is_sorted(values: np.ndarray) -> bool:
    return bool(len(values) < 2 or (values[1:] >= values[:-1]).all())


def _arrow(frame: pd.DataFrame) -> pa.Table:
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed values in an object column
        mixed = frame.copy()
        for name in mixed.columns:
            if mixed[name].dtype == object:
                values = mixed[name]
                mixed[name] = values.where(values.isna(), values.astype(str))
        return pa.Table.from_pandas(mixed, preserve_index=False)


def put_aggregates(
    session: Session,
    files: ArtifactStore,
    batch: InferenceBatch,
    windows: dict[date, dict[str, Any]],
) -> list[str]:
    """Keep the aggregates of a batch built outside Quorum, one file per window, so that
    voiding another batch recomputes its windows with them."""
    keys = []
    for part, (day, data) in enumerate(sorted(windows.items())):
        blob = json.dumps(data, sort_keys=True).encode()
        stored = files.put_at(file_key(batch, day, part, suffix="json"), blob)
        keys.append(stored.key)
        session.add(
            BatchFile(
                batch_id=batch.id or 0,
                day=_as_datetime(day),
                key=stored.key,
                n_rows=int(data.get("n_rows", 0)),
                size=stored.size,
            )
        )
    session.flush()
    return keys


_KEYS_FROM_JSON = (
    f"INSERT INTO prediction_key ({', '.join(KEY_COLUMNS)}) "
    "SELECT ?, ?, value, ?, key, NULL FROM json_each(?)"
)
_LABELLED_KEYS_FROM_JSON = (
    f"INSERT INTO prediction_key ({', '.join(KEY_COLUMNS)}) "
    "SELECT ?, ?, json_extract(value, '$[0]'), ?, key, json_extract(value, '$[1]') "
    "FROM json_each(?)"
)


def _insert_keys(
    session: Session, batch: InferenceBatch, file_id: int, ids: list[str], labels: list[Any]
) -> None:
    """Index one file's prediction ids: COPY on PostgreSQL; on SQLite one statement per file
    that reads the ids from a JSON array (json_each), about three times faster than binding
    each row through executemany."""
    raw = session.connection().connection
    cursor = raw.cursor()
    try:
        if session.get_bind().dialect.name == "postgresql":
            rows = zip(
                [batch.model_id] * len(ids),
                [batch.environment] * len(ids),
                ids,
                [file_id] * len(ids),
                range(len(ids)),
                labels,
                strict=True,
            )
            with cursor.copy(f"COPY prediction_key ({', '.join(KEY_COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        elif any(label is not None for label in labels):
            pairs = json.dumps([[i, label] for i, label in zip(ids, labels, strict=True)])
            cursor.execute(
                _LABELLED_KEYS_FROM_JSON, (batch.model_id, batch.environment, file_id, pairs)
            )
        else:
            cursor.execute(
                _KEYS_FROM_JSON, (batch.model_id, batch.environment, file_id, json.dumps(ids))
            )
    except Exception as error:  # the driver's own error types; re-raised as SQLAlchemy's
        if "unique" in str(error).lower() or "duplicate" in str(error).lower():
            raise IntegrityError("INSERT INTO prediction_key", None, error) from None
        raise
    finally:
        cursor.close()


# --- reading -----------------------------------------------------------------------------


def read_file(files: ArtifactStore, key: str, columns: list[str] | None = None) -> pd.DataFrame:
    """The file's rows; of `columns`, those the file has (a batch sent without scores has none)."""
    source = pq.ParquetFile(io.BytesIO(files.get(key)))
    if columns is not None:
        columns = [c for c in columns if c in source.schema_arrow.names]
    return source.read(columns=columns).to_pandas()


def find_keys(session: Session, model_id: int, env: str, ids: list[str]) -> pd.DataFrame:
    """The index rows of these prediction ids (prediction_id, file_id, row, label)."""
    table = PredictionKey.__table__  # type: ignore[attr-defined]
    columns = [table.c.prediction_id, table.c.file_id, table.c.row, table.c.label]
    parts = [pd.DataFrame(columns=[c.name for c in columns])]
    for start in range(0, len(ids), ID_BATCH):
        result = session.connection().execute(
            select(*columns).where(
                table.c.model_id == model_id,
                table.c.environment == env,
                table.c.prediction_id.in_(ids[start : start + ID_BATCH]),
            )
        )
        parts.append(pd.DataFrame(result.all(), columns=[c.name for c in columns]))
    return pd.concat(parts, ignore_index=True)


def _file_rows(session: Session, file_ids: Iterable[int]) -> dict[int, tuple[str, int]]:
    """File id -> (key, version id of its batch)."""
    wanted = sorted({int(i) for i in file_ids})
    found: dict[int, tuple[str, int]] = {}
    for start in range(0, len(wanted), ID_BATCH):
        result = session.exec(
            select(BatchFile.id, BatchFile.key, InferenceBatch.version_id)
            .join(InferenceBatch, col(InferenceBatch.id) == BatchFile.batch_id)
            .where(col(BatchFile.id).in_(wanted[start : start + ID_BATCH]))
        )
        found |= {int(i or 0): (key, version) for i, key, version in result}
    return found


def predictions_of(session: Session, files: ArtifactStore, keys: pd.DataFrame) -> pd.DataFrame:
    """Timestamp, prediction, score and version of each indexed row, in the order of `keys`,
    reading only those three columns of the files that hold them."""
    where = _file_rows(session, keys["file_id"])
    parts = []
    for file_id, group in keys.groupby("file_id", sort=False):
        key, version = where[int(str(file_id))]
        stored = read_file(files, key, columns=[TS_COL, PRED_COL, SCORE_COL])
        picked = stored.iloc[group["row"].to_numpy(dtype=np.int64)]
        picked.index = group.index
        picked = picked.assign(version_id=version)
        parts.append(picked)
    found = pd.concat(parts).loc[keys.index]
    if SCORE_COL not in found.columns:
        found[SCORE_COL] = np.nan
    return found


def _live_files(
    session: Session, model_id: int, version_id: int, env: str, start: datetime, end: datetime
) -> list[BatchFile]:
    return list(
        session.exec(
            select(BatchFile)
            .join(InferenceBatch, col(InferenceBatch.id) == BatchFile.batch_id)
            .where(
                InferenceBatch.model_id == model_id,
                InferenceBatch.version_id == version_id,
                InferenceBatch.environment == env,
                col(InferenceBatch.voided_at).is_(None),
                BatchFile.day >= start,
                BatchFile.day < end,
            )
            .order_by(col(BatchFile.id))
        ).all()
    )


def window_rows(
    session: Session,
    files: ArtifactStore,
    model_id: int,
    version_id: int,
    env: str,
    span: tuple[datetime, datetime],
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Every stored row of a version in [start, end), labels attached, and the aggregates of
    batches built outside Quorum that fall there."""
    frames, outside = [], []
    for record in _live_files(session, model_id, version_id, env, *span):
        if record.key.endswith(".json"):
            outside.append(json.loads(files.get(record.key)))
            continue
        frame = read_file(files, record.key)
        frame[LABEL_COL] = labels_of(session, record.id or 0, len(frame))
        frames.append(frame)
    if not frames:
        return pd.DataFrame(), outside
    frame = pd.concat(frames, ignore_index=True)
    for name in (LABEL_COL, SCORE_COL):
        if name in frame.columns and frame[name].isna().all():
            frame = frame.drop(columns=[name])
    return frame, outside


def labels_of(session: Session, file_id: int, n_rows: int) -> list[Any]:
    table = PredictionKey.__table__  # type: ignore[attr-defined]
    labels: list[Any] = [None] * n_rows
    result = session.connection().execute(
        select(table.c.row, table.c.label).where(
            table.c.file_id == file_id, table.c.label.is_not(None)
        )
    )
    for row, label in result:
        labels[int(row)] = label
    return labels


def labelled_rows(
    session: Session, files: ArtifactStore, model_id: int, env: str, features: list[str]
) -> pd.DataFrame:
    """Features and label of every labelled production row of a model in an environment."""
    table = PredictionKey.__table__  # type: ignore[attr-defined]
    result = session.connection().execute(
        select(table.c.file_id, table.c.row, table.c.label).where(
            table.c.model_id == model_id,
            table.c.environment == env,
            table.c.label.is_not(None),
        )
    )
    keys = pd.DataFrame(result.all(), columns=["file_id", "row", "label"])
    where = _file_rows(session, keys["file_id"]) if not keys.empty else {}
    parts = [pd.DataFrame(columns=[*features, "__label__"])]
    for file_id, group in keys.groupby("file_id"):
        stored = read_file(files, where[int(str(file_id))][0])
        picked = stored.iloc[group["row"].to_numpy(dtype=np.int64)][
            [c for c in features if c in stored.columns]
        ].reset_index(drop=True)
        picked["__label__"] = group["label"].to_numpy()
        parts.append(picked)
    return pd.concat(parts, ignore_index=True)


def recent_labelled(
    session: Session,
    files: ArtifactStore,
    model_id: int,
    env: str,
    features: list[str],
    limit: int,
) -> pd.DataFrame:
    """The newest `limit` labelled rows of a model in an environment, newest first: their
    features, `__label__`, prediction id and timestamp (only the files they sit in are read)."""
    table = PredictionKey.__table__  # type: ignore[attr-defined]
    result = session.connection().execute(
        select(table.c.prediction_id, table.c.file_id, table.c.row, table.c.label)
        .join(BatchFile, col(BatchFile.id) == table.c.file_id)
        .where(
            table.c.model_id == model_id,
            table.c.environment == env,
            table.c.label.is_not(None),
        )
        .order_by(col(BatchFile.day).desc(), table.c.file_id.desc(), table.c.row.desc())
        .limit(limit)
    )
    keys = pd.DataFrame(result.all(), columns=["prediction_id", "file_id", "row", "label"])
    columns = [*features, "__label__", ID_COL, TS_COL]
    if keys.empty:
        return pd.DataFrame(columns=columns)
    where = _file_rows(session, keys["file_id"])
    parts = []
    for file_id, group in keys.groupby("file_id"):
        stored = read_file(files, where[int(str(file_id))][0])
        picked = stored.iloc[group["row"].to_numpy(dtype=np.int64)]
        part = picked[[c for c in features if c in stored.columns]].reset_index(drop=True)
        part["__label__"] = group["label"].to_numpy()
        part[ID_COL] = group["prediction_id"].astype(str).to_numpy()
        part[TS_COL] = pd.to_datetime(picked[TS_COL].to_numpy())
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    return frame.sort_values([TS_COL, ID_COL], ascending=False, ignore_index=True)


# --- labels and voiding ------------------------------------------------------------------


def write_labels(
    session: Session, model_id: int, env: str, ids: list[str], labels: list[str], batch_id: int
) -> None:
    table = PredictionKey.__table__  # type: ignore[attr-defined]
    statement = (
        update(table)
        .where(
            table.c.model_id == model_id,
            table.c.environment == env,
            table.c.prediction_id == bindparam("key"),
        )
        .values(label=bindparam("value"), label_batch_id=batch_id)
    )
    session.connection().execute(
        statement, [{"key": i, "value": v} for i, v in zip(ids, labels, strict=True)]
    )


def remove_batch(session: Session, batch: InferenceBatch) -> tuple[pd.DataFrame, list[str]]:
    """Take a batch out of the index: the (version, day, rows) it touched, and the keys of
    its files, to delete once the transaction commits (an orphan file is swept later; no row
    ever points at a missing file)."""
    table = PredictionKey.__table__  # type: ignore[attr-defined]
    if batch.kind == "labels" and not batch.external:
        result = session.connection().execute(
            select(BatchFile.day, table.c.file_id)
            .join(BatchFile, col(BatchFile.id) == table.c.file_id)
            .where(table.c.label_batch_id == batch.id)
        )
        touched = pd.DataFrame(result.all(), columns=["day", "file_id"])
        session.connection().execute(
            update(table)
            .where(table.c.label_batch_id == batch.id)
            .values(label=None, label_batch_id=None)
        )
        days = touched.groupby("file_id").agg(day=("day", "first"), rows=("day", "size"))
        return _with_versions(session, days), []
    records = session.exec(select(BatchFile).where(BatchFile.batch_id == batch.id)).all()
    ids = [r.id or 0 for r in records]
    for start in range(0, len(ids), ID_BATCH):
        part = ids[start : start + ID_BATCH]
        session.connection().execute(delete(table).where(table.c.file_id.in_(part)))
        session.connection().execute(delete(BatchFile.__table__).where(col(BatchFile.id).in_(part)))  # type: ignore[attr-defined]
    touched = pd.DataFrame(
        {
            "version_id": batch.version_id,
            "day": [r.day for r in records],
            "rows": [r.n_rows for r in records],
        }
    )
    return touched, [r.key for r in records]


def _with_versions(session: Session, days: pd.DataFrame) -> pd.DataFrame:
    where = _file_rows(session, days.index) if not days.empty else {}
    return pd.DataFrame(
        {
            "version_id": [where[int(i)][1] for i in days.index],
            "day": days["day"].to_numpy(),
            "rows": days["rows"].to_numpy(),
        }
    )


def delete_files(files: ArtifactStore, keys: list[str]) -> None:
    for key in keys:
        files.delete(key)
