"""Ingest production predictions: validate, score, store rows and merge per-window aggregates."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Generator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core import audit, evaluation, tables
from core.auth import Principal
from core.db import Database
from core.errors import Conflict, InvalidInput, SandboxFailure
from core.evaluation import thresholded
from core.models import (
    InferenceBatch,
    Task,
    WindowAggregateRow,
    utcnow,
)
from core.monitoring.performance import outcome_text
from core.monitoring.windows import (
    SeenIds,
    WindowAggregate,
    aggregate_chunk,
    merge_windows,
)
from core.sandbox.client import Sandbox
from core.services import unit_of_work
from core.services.monitoring import rows
from core.services.monitoring.common import (
    CHUNK_ROWS,
    ID_COL,
    LABEL_COL,
    MAX_LISTED,
    MAX_TEXT,
    OPTIONAL_COLUMNS,
    PRED_COL,
    PREDICTIONS,
    SCORE_COL,
    TS_COL,
    Progress,
    Source,
    _as_date,
    _as_datetime,
    _Target,
    _target,
    quiet,
)
from core.services.monitoring.incidents import evaluate_windows
from core.services.registry import get_model, model_row
from core.services.sandboxed import allowed_patterns, record_failure, version_sandbox
from core.services.versions import data_hints
from core.tables import ignored_note

# --- ingest ------------------------------------------------------------------------------


@dataclass
class IngestResult:
    batch_id: int
    model: str
    environment: str
    version: int
    kind: str
    n_rows: int
    windows: list[date]
    alerts: list[str] = field(default_factory=list)
    retraining_task_id: int | None = None
    message: str = ""
    notes: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)


def ingest(
    db: Database,
    actor: Principal,
    model_name: str,
    data: Source,
    *,
    env: str = "production",
    source: str = "upload",
    filename: str = "",
    progress: Progress | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> IngestResult:
    """Store one batch of production predictions, all or nothing, and update the windows.

    The file's SHA-256 is computed on a thread of its own while the rows are processed. A
    file sent twice repeats its prediction ids, so the id index refuses it; only then is the
    earlier batch looked up by that digest, and the refusal names it."""
    name = filename or _default_name(data)
    written: list[str] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-sha256") as hasher:
        hashing = hasher.submit(_sha256, data)
        try:
            with unit_of_work(db, actor) as session:
                target = _target(session, actor, model_name, env, "ingest production data into")
                batch = _new_batch(session, actor, target, PREDICTIONS, source, "", name)
                ignored: set[str] = set()
                windows, n_rows, span = _ingest_rows(
                    session, target, batch, data, name, progress, chunk_rows, ignored, written
                )
                _store_windows(session, target, windows)
                batch.file_sha256 = hashing.result()
                notes = [ignored_note(ignored)] if ignored else []
                return _finish(
                    session, actor, target, batch, sorted(windows), n_rows, span, source, notes
                )
        except IntegrityError as error:
            rows.delete_files(rows.store(), written)
            if "prediction" not in str(error.orig).lower():
                raise
            with db.read() as session:
                target = _target(session, actor, model_name, env, "ingest production data into")
                _refuse_repeat(session, target, PREDICTIONS, hashing.result())
            raise _existing_ids_error(db, model_name, env, data, name, chunk_rows) from None
        except SandboxFailure as failure:  # rolled back; now recorded in a transaction of its own
            rows.delete_files(rows.store(), written)
            with db.read() as session:
                model = get_model(session, actor, model_name)
            record_failure(db, actor, model, failure, action="ingest scoring")
            raise
        except BaseException:  # rolled back: the files written so far belong to no batch
            rows.delete_files(rows.store(), written)
            raise


def _default_name(data: Source) -> str:
    if isinstance(data, str | os.PathLike):
        return os.path.basename(os.fspath(data))
    return "dataframe" if isinstance(data, pd.DataFrame) else "upload.csv"


def _sha256(data: Source) -> str:
    if isinstance(data, pd.DataFrame):
        return evaluation.data_hash(data)
    digest = hashlib.sha256()
    if isinstance(data, bytes):
        digest.update(data)
        return digest.hexdigest()
    with open(data, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _chunks(data: Source, name: str, chunk_rows: int) -> Generator[pd.DataFrame, None, None]:
    if isinstance(data, pd.DataFrame):
        if data.empty:
            raise InvalidInput("The data has no rows. Send a table with at least one row.")
        frame = data.rename(columns=str)
        for start in range(0, len(frame), chunk_rows):
            chunk = frame.iloc[start : start + chunk_rows].copy()
            chunk.index = pd.RangeIndex(start, start + len(chunk))
            yield chunk
        return
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    yield from tables.iter_table_chunks(source, name, chunk_rows)


def _refuse_repeat(session: Session, target: _Target, kind: str, digest: str) -> None:
    earlier = session.exec(
        select(InferenceBatch).where(
            InferenceBatch.model_id == target.model.id,
            InferenceBatch.environment == target.environment,
            InferenceBatch.kind == kind,
            InferenceBatch.file_sha256 == digest,
            col(InferenceBatch.voided_at).is_(None),
        )
    ).first()
    if earlier is not None:
        raise Conflict(
            f"This file was already ingested as batch #{earlier.id} "
            f"({earlier.filename or 'no name'}, {earlier.n_rows:,} rows, "
            f"{_day(earlier.created_at)}). Nothing was stored again; upload only new data.",
            details=[f"sha256 {digest}"],
        )


def _day(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC") if when else "unknown time"


def _new_batch(
    session: Session,
    actor: Principal,
    target: _Target,
    kind: str,
    source: str,
    digest: str,
    name: str,
) -> InferenceBatch:
    batch = InferenceBatch(
        model_id=target.model.id or 0,
        version_id=target.version.id or 0,
        environment=target.environment,
        kind=kind,
        source=source[:20],
        file_sha256=digest,
        filename=name[:255],
        created_by_id=actor.user_id,
    )
    session.add(batch)
    session.flush()
    return batch


def _ingest_rows(
    session: Session,
    target: _Target,
    batch: InferenceBatch,
    data: Source,
    name: str,
    progress: Progress | None,
    chunk_rows: int,
    ignored: set[str],
    written: list[str],
) -> tuple[dict[date, WindowAggregate], int, tuple[datetime, datetime] | None]:
    """Read, check, store and aggregate the batch chunk by chunk, as a pipeline: while this
    thread checks and aggregates a chunk, two workers parse the next one and encode and put
    this one's Parquet files, and a SQL thread lists the previous chunk's files and indexes
    their ids. pandas' parser, Arrow, Parquet, hashing, file writes and SQLite's statements
    release the GIL, so the stages overlap. The session is used by one thread at a time: the
    SQL thread between a submission and the next `_settled`, this thread only after it."""
    features = dict(target.version.feature_types)
    files = rows.store()
    windows: dict[date, WindowAggregate] = {}
    box: Sandbox | None = None
    n_rows, low, high = 0, None, None
    total = _size_hint(data)
    row_bytes = 0.0
    chunks = _chunks(data, name, chunk_rows)
    indexing: Future[None] | None = None
    try:
        with (
            ThreadPoolExecutor(max_workers=2, thread_name_prefix="ingest") as pool,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-sql") as sql,
        ):
            upcoming = pool.submit(next, chunks, None)
            number = 0
            while (raw := upcoming.result()) is not None:
                upcoming = pool.submit(next, chunks, None)
                extra = [
                    c
                    for c in raw.columns
                    if c not in {TS_COL, ID_COL, *OPTIONAL_COLUMNS, *features}
                ]
                ignored.update(str(c) for c in extra)
                chunk = raw.drop(columns=extra) if extra else raw
                stamps = _check_chunk(chunk, features, name, target)
                if PRED_COL not in chunk.columns:
                    if box is None:
                        _settled(indexing)
                        box = version_sandbox(target.version, allowed_patterns(session))
                    _score(chunk, box, features, target)
                chunk[TS_COL] = stamps
                stored, labels = _stored_rows(target, chunk, features)
                encoding = pool.submit(
                    rows.write_files, files, batch, stored, labels, number, written
                )
                with quiet():
                    part = aggregate_chunk(  # the id index refuses repeated ids
                        chunk, target.profile, window=target.settings.window, count_duplicates=False
                    )
                encoded = encoding.result()
                _settled(indexing)
                indexing = sql.submit(rows.index_files, session, batch, encoded)
                windows = merge_windows(windows, part)
                n_rows += len(chunk)
                low = min(low, stamps.min()) if low is not None else stamps.min()
                high = max(high, stamps.max()) if high is not None else stamps.max()
                number += 1
                if progress is not None:
                    row_bytes = row_bytes or _bytes_per_row(chunk)
                    progress(_fraction(n_rows, total, data, row_bytes), f"{n_rows:,} rows read")
            _settled(indexing)
    finally:  # the pool has finished: every file put is in `written`
        chunks.close()
    span = _span(low, high)
    return windows, n_rows, span


def _settled(job: Future[None] | None) -> None:
    """Wait for the SQL thread's last job, raising its error: the session is used by one
    thread at a time, and the files are indexed in order."""
    if job is not None:
        job.result()


def _span(low: Any, high: Any) -> tuple[datetime, datetime] | None:
    if low is None or high is None:
        return None
    return pd.Timestamp(low).to_pydatetime(), pd.Timestamp(high).to_pydatetime()


def _size_hint(data: Source) -> int:
    if isinstance(data, pd.DataFrame):
        return len(data)
    if isinstance(data, bytes):
        return len(data)
    return os.path.getsize(data)


def _bytes_per_row(chunk: pd.DataFrame) -> float:
    sample = chunk.head(200)
    return len(sample.to_csv(index=False).encode()) / max(len(sample), 1)


def _fraction(n_rows: int, total: int, data: Source, row_bytes: float) -> float:
    """Share done: rows for a DataFrame, estimated bytes read for a file."""
    if isinstance(data, pd.DataFrame):
        return min(n_rows / max(total, 1), 1.0)
    return min(0.99, n_rows * row_bytes / max(total, 1))


def _score(chunk: pd.DataFrame, box: Sandbox, features: dict[str, str], target: _Target) -> None:
    """Score with the live model; a refusal names the column and rows it could not score."""
    try:
        with quiet():
            _score_chunk(chunk, box, features, target.model.task, target.version.decision_threshold)
    except InvalidInput as refused:
        raise _scoring_error(chunk, features, target, refused) from None


def _scoring_error(
    chunk: pd.DataFrame, features: dict[str, str], target: _Target, refused: InvalidInput
) -> InvalidInput:
    who = f"The live model {target.model.name} v{target.version.number}"
    for column in features:
        empty = chunk[column].isna().to_numpy()
        if empty.any():
            rows = ", ".join(str(int(i) + 1) for i in chunk.index[empty][:MAX_LISTED])
            return InvalidInput(
                f"{who} cannot score rows where column '{column}' is empty ({int(empty.sum())} "
                f"row(s), e.g. row(s) {rows}); fill those values, or send the model's output in "
                f"a '{PRED_COL}' column."
            )
    first = refused.user_message.splitlines()[0] if refused.user_message else ""
    return InvalidInput(
        f"{who} could not score the rows; check that every column holds the kind of values "
        f"the model was trained on, or send the model's output in a '{PRED_COL}' column.",
        details=[first[:300]] if first else [],
    )


def _outside_range(stamps: pd.Series, target: _Target, name: str) -> InvalidInput | None:
    """A refusal when any timestamp lies outside [registration - before, now + ahead]."""
    registered = pd.Timestamp(target.version.created_at or utcnow())
    registered = registered.tz_localize("UTC") if registered.tzinfo is None else registered
    settings = target.settings
    low = registered - timedelta(days=settings.days_before_registration)
    high = pd.Timestamp(utcnow()) + timedelta(days=settings.days_ahead)
    outside = ((stamps < low) | (stamps > high)).to_numpy()
    if not outside.any():
        return None
    bad = stamps[outside]
    return InvalidInput(
        f"{int(outside.sum())} row(s) of '{name}' have timestamps outside the accepted range "
        f"{low:%Y-%m-%d} to {high:%Y-%m-%d} (they run from {bad.min():%Y-%m-%d} to "
        f"{bad.max():%Y-%m-%d}); nothing was stored: correct the timestamps, or widen the "
        "range with the monitoring settings days_before_registration and days_ahead.",
        details=_listed(outside, stamps.index, "timestamp outside the accepted range"),
    )


def class_problems(values: pd.Series, column: str, target: _Target) -> list[str]:
    """Values of a class column that are not classes of the model (labels like 0/1 vs Yes/No)."""
    if not target.classes:
        return []
    present = values.notna().to_numpy()
    text = _text(values, target.model.task)
    bad = present & ~np.isin(text.astype(str), target.classes)
    if not bad.any():
        return []
    found = ", ".join(repr(v) for v in pd.unique(text[bad])[:MAX_LISTED])
    expected = ", ".join(repr(c) for c in target.classes)
    return [
        f"column '{column}' has {int(bad.sum()):,} value(s) that are not classes of "
        f"{target.model.name} ({found}); the model's classes are {expected}"
    ]


def _check_chunk(
    chunk: pd.DataFrame, features: dict[str, str], name: str, target: _Target
) -> pd.Series:
    problems = [
        f"column '{column}' is missing ({why})"
        for column, why in ((TS_COL, "when each prediction was made"), (ID_COL, "its unique id"))
        if column not in chunk.columns
    ]
    try:
        tables.check_columns(chunk, features, allow_extra=[TS_COL, ID_COL, *OPTIONAL_COLUMNS])
    except InvalidInput as refused:
        problems += refused.details
    for column in (PRED_COL, LABEL_COL):
        if column in chunk.columns:
            problems += class_problems(chunk[column], column, target)
    stamps = pd.Series(pd.NaT, index=chunk.index, dtype="datetime64[ns, UTC]")
    if TS_COL in chunk.columns:
        stamps = pd.to_datetime(chunk[TS_COL], errors="coerce", utc=True)
        problems += _listed(stamps.isna(), chunk.index, f"column '{TS_COL}' is empty or unreadable")
    if ID_COL in chunk.columns:
        ids = chunk[ID_COL]
        problems += _listed(ids.isna().to_numpy(), chunk.index, f"column '{ID_COL}' is empty")
        text = ids.astype(str)
        too_long = text.str.len().to_numpy() > MAX_TEXT
        problems += _listed(too_long, chunk.index, f"'{ID_COL}' is over {MAX_TEXT} characters")
        nul = text.str.contains("\x00", regex=False).to_numpy(dtype=bool)
        problems += _listed(nul, chunk.index, f"'{ID_COL}' holds a NUL character")
    if PRED_COL in chunk.columns:
        empty = chunk[PRED_COL].isna().to_numpy()
        problems += _listed(empty, chunk.index, f"column '{PRED_COL}' is empty")
    if problems:
        count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
        raise InvalidInput(
            f"The file '{name}' does not match {target.model.name} v{target.version.number} "
            f"({count}). Nothing was stored; fix what is listed and upload it again.",
            details=problems,
        )
    outside = _outside_range(stamps, target, name)
    if outside is not None:
        raise outside
    return stamps


def _listed(mask: Any, index: pd.Index, what: str) -> list[str]:
    flags = np.asarray(mask, dtype=bool)
    if not flags.any():
        return []
    rows = [str(int(i) + 1) for i in index[flags][:MAX_LISTED]]
    more = f" and {int(flags.sum()) - MAX_LISTED} more" if flags.sum() > MAX_LISTED else ""
    return [f"{what} (row(s) {', '.join(rows)}{more})"]


def _refuse_repeated_ids(chunk: pd.DataFrame, seen: SeenIds) -> None:
    ids = chunk[ID_COL].astype(str)
    hashes = pd.util.hash_pandas_object(ids, index=False).to_numpy()
    repeated = seen.check_and_add(hashes)
    if repeated.any():
        listed = ", ".join(repr(i) for i in pd.unique(ids[repeated])[:MAX_LISTED])
        raise InvalidInput(
            f"The batch repeats {int(repeated.sum())} prediction id(s): {listed}. "
            "Every prediction needs its own id; nothing was stored."
        )


def _score_chunk(
    chunk: pd.DataFrame,
    box: Sandbox,
    features: dict[str, str],
    task: str,
    threshold: float | None,
) -> None:
    """Predictions for rows sent without them, computed in the version's sandbox at the
    version's decision threshold."""
    try:
        scored = box.predict(chunk[list(features)], proba=task != Task.REGRESSION)
    except SandboxFailure as failed:
        failed.details = failed.details + data_hints(chunk, features)
        raise
    chunk[PRED_COL] = thresholded(scored.prediction, scored.proba, box.check().classes, threshold)
    if scored.proba is not None:
        chunk[SCORE_COL] = scored.proba[:, -1]


def _text(values: pd.Series, task: str) -> np.ndarray:
    return outcome_text(values, task == Task.REGRESSION)


def _nullable_text(values: pd.Series, task: str) -> list[Any]:
    text = _text(values, task)
    missing = values.isna().to_numpy()
    return [None if gone else value for value, gone in zip(text.tolist(), missing, strict=True)]


def _stored_rows(
    target: _Target, chunk: pd.DataFrame, features: dict[str, str]
) -> tuple[pd.DataFrame, list[Any]]:
    """The chunk as its Parquet file holds it (predictions as text, scores as numbers; labels
    go to the prediction index), and the labels."""
    task = target.model.task
    predictions = _text(chunk[PRED_COL], task)
    if (np.char.str_len(predictions.astype(str)) > MAX_TEXT).any():
        raise InvalidInput(f"Some predictions are over {MAX_TEXT} characters; shorten the labels.")
    stored = pd.DataFrame(
        {
            ID_COL: chunk[ID_COL].astype(str).to_numpy(),
            TS_COL: chunk[TS_COL],
            PRED_COL: predictions.astype(str),
        },
        index=chunk.index,
    )
    if SCORE_COL in chunk.columns:
        scores = pd.to_numeric(chunk[SCORE_COL], errors="coerce").to_numpy(dtype=float)
        stored[SCORE_COL] = np.where(np.isfinite(scores), scores, np.nan)
    stored = pd.concat([stored, chunk[list(features)]], axis=1)
    labels: list[Any] = [None] * len(chunk)
    if LABEL_COL in chunk.columns:
        labels = _nullable_text(chunk[LABEL_COL], task)
    return stored, labels


def _existing_ids_error(
    db: Database, model_name: str, env: str, data: Source, name: str, chunk_rows: int
) -> InvalidInput:
    """Why the prediction-id index refused the batch: ids repeated within it, or ids an
    earlier batch holds, found in one more read of the file (so the usual ingest pays nothing
    for the check)."""
    seen = SeenIds()
    found: list[str] = []
    with db.read() as session:
        model = model_row(session, model_name)
        for chunk in _chunks(data, name, chunk_rows):
            try:
                _refuse_repeated_ids(chunk, seen)
            except InvalidInput as repeated:
                return repeated
            if len(found) < MAX_LISTED:
                ids = chunk[ID_COL].astype(str).unique().tolist()
                found += _stored_ids(session, model.id or 0, env, ids)
    listed = ", ".join(repr(i) for i in found[:MAX_LISTED]) or "(not found again)"
    return InvalidInput(
        f"Some prediction ids were already ingested for {model_name} in {env}: {listed}. "
        "Nothing of this batch was stored. Send only new predictions (labels for earlier "
        "predictions go through the labels upload).",
    )


def _stored_ids(session: Session, model_id: int, env: str, ids: list[str]) -> list[str]:
    return rows.find_keys(session, model_id, env, ids)["prediction_id"].tolist()


def _finish(
    session: Session,
    actor: Principal,
    target: _Target,
    batch: InferenceBatch,
    touched: list[date],
    n_rows: int,
    span: tuple[datetime, datetime] | None,
    source: str,
    notes: list[str] | None = None,
) -> IngestResult:
    batch.n_rows = n_rows
    if span is not None:
        batch.window_start, batch.window_end = span
    session.add(batch)
    kind = batch.kind
    audit.record(
        session,
        actor,
        f"monitoring.{kind}_ingested",
        object_type="inference_batch",
        object_id=batch.id,
        model_id=target.model.id,
        summary=f"{n_rows:,} {kind} ingested for {target.model.name} "
        f"v{target.version.number} in {target.environment} ({batch.filename}, from {source})",
        details={"sha256": batch.file_sha256, "rows": n_rows, "windows": len(touched)},
    )
    changes = evaluate_windows(session, actor, target, touched)
    first, last = (touched[0], touched[-1]) if touched else (None, None)
    message = (
        f"Batch #{batch.id}: {n_rows:,} {kind} for {target.model.name} v{target.version.number} "
        f"in {target.environment}, {len(touched)} window(s) from {first} to {last} updated."
    )
    message += changes.summary()
    for note in notes or []:
        message += f" {note}"
    return IngestResult(
        batch_id=batch.id or 0,
        model=target.model.name,
        environment=target.environment,
        version=target.version.number,
        kind=kind,
        n_rows=n_rows,
        windows=touched,
        alerts=[a.message for a in changes.opened],
        retraining_task_id=changes.task_id,
        message=message,
        notes=list(notes or []),
        closed=[f"#{a.id}: {a.closed_reason}" for a in changes.closed],
    )


def _window_json(agg: WindowAggregate) -> dict[str, Any]:
    """`WindowAggregate.to_dict` without the deep copies (the lists are only serialised)."""
    return {
        "window_start": agg.window_start.isoformat(),
        "n_rows": agg.n_rows,
        "columns": {name: dict(vars(column)) for name, column in agg.columns.items()},
        "duplicate_ids": agg.duplicate_ids,
        "unexpected_columns": list(agg.unexpected_columns),
        "cbpe": dict(agg.cbpe),
        "labels": dict(agg.labels),
    }


def _store_windows(
    session: Session,
    target: _Target,
    windows: Mapping[date, WindowAggregate],
    *,
    external: bool = False,
) -> None:
    """Merge into the stored windows; `external` counts the rows as aggregated outside Quorum."""
    if not windows:
        return
    starts = [_as_datetime(day) for day in windows]
    existing = {
        _as_date(row.window_start): row
        for row in session.exec(
            select(WindowAggregateRow)
            .where(
                WindowAggregateRow.model_id == target.model.id,
                WindowAggregateRow.version_id == target.version.id,
                WindowAggregateRow.environment == target.environment,
                col(WindowAggregateRow.window_start).in_(starts),
            )
            .with_for_update()
        )
    }
    now = utcnow()
    for day, agg in windows.items():
        row = existing.get(day)
        if row is None:
            session.add(
                WindowAggregateRow(
                    model_id=target.model.id or 0,
                    version_id=target.version.id or 0,
                    environment=target.environment,
                    window_start=_as_datetime(day),
                    n_rows=agg.n_rows,
                    external_rows=agg.n_rows if external else 0,
                    data=_window_json(agg),
                    updated_at=now,
                )
            )
            continue
        merged = WindowAggregate.from_dict(row.data).merge(agg)
        row.data = _window_json(merged)
        row.n_rows = merged.n_rows
        row.external_rows += agg.n_rows if external else 0
        row.updated_at = now
        row.row_version += 1
        session.add(row)
    session.flush()
