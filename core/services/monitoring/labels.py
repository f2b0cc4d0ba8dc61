"""Join late labels to stored predictions by prediction id and update the windows."""

from __future__ import annotations

from datetime import date

import pandas as pd
from sqlmodel import Session

from core.auth import Principal
from core.db import Database
from core.errors import Conflict, InvalidInput, NotFound
from core.models import ModelVersion
from core.monitoring.profile import ReferenceProfile
from core.monitoring.windows import (
    SeenIds,
    WindowAggregate,
    aggregate_labels,
    merge_windows,
)
from core.services import unit_of_work
from core.services.monitoring import rows
from core.services.monitoring.common import (
    CHUNK_ROWS,
    ID_COL,
    LABEL_COL,
    LABELS,
    MAX_LISTED,
    PRED_COL,
    SCORE_COL,
    TS_COL,
    Progress,
    Source,
    _Target,
    _target,
    _target_for,
    quiet,
)
from core.services.monitoring.ingest import (
    IngestResult,
    _chunks,
    _default_name,
    _finish,
    _listed,
    _new_batch,
    _refuse_repeat,
    _refuse_repeated_ids,
    _sha256,
    _span,
    _store_windows,
    _text,
    class_problems,
    ignored_note,
)

# --- labels ------------------------------------------------------------------------------


def ingest_labels(
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
    """Join labels to stored predictions by prediction id; merge their sums into the windows."""
    name = filename or _default_name(data)
    digest = _sha256(data)
    with unit_of_work(db, actor) as session:
        target = _target(session, actor, model_name, env, "ingest labels for")
        _refuse_repeat(session, target, LABELS, digest)
        batch = _new_batch(session, actor, target, LABELS, source, digest, name)
        by_version: dict[int, dict[date, WindowAggregate]] = {}
        n_rows, low, high = 0, None, None
        ignored: set[str] = set()
        for raw in _chunks(data, name, chunk_rows):
            extra = [c for c in raw.columns if c not in (ID_COL, LABEL_COL, TS_COL)]
            ignored.update(str(c) for c in extra)
            chunk = raw.drop(columns=extra) if extra else raw
            joined = _join_labels(session, target, chunk, name)
            rows.write_labels(
                session,
                target.model.id or 0,
                target.environment,
                joined[ID_COL].tolist(),
                joined[LABEL_COL].astype(str).tolist(),
                batch.id or 0,
            )
            for key, part in joined.groupby("version_id"):
                version_id = int(str(key))
                profile = _profile_of(session, target, version_id)
                with quiet():
                    windows = aggregate_labels(part, profile, window=target.settings.window)
                by_version[version_id] = merge_windows(by_version.get(version_id, {}), windows)
            n_rows += len(chunk)
            low = min(low, joined[TS_COL].min()) if low is not None else joined[TS_COL].min()
            high = max(high, joined[TS_COL].max()) if high is not None else joined[TS_COL].max()
            if progress is not None:
                progress(0.5, f"{n_rows:,} labels joined")
        for version_id, windows in by_version.items():
            _store_windows(session, _version_target(session, target, version_id), windows)
        touched = sorted(by_version.get(target.version.id or 0, {}))
        span = _span(low, high)
        notes = [ignored_note(ignored)] if ignored else []
        return _finish(session, actor, target, batch, touched, n_rows, span, source, notes)


def _profile_of(session: Session, target: _Target, version_id: int) -> ReferenceProfile:
    if version_id == target.version.id:
        return target.profile
    return _version_target(session, target, version_id).profile


def _version_target(session: Session, target: _Target, version_id: int) -> _Target:
    if version_id == target.version.id:
        return target
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise NotFound(f"Version id {version_id} no longer exists.")
    return _target_for(session, target.model, version, target.environment)


def _join_labels(session: Session, target: _Target, chunk: pd.DataFrame, name: str) -> pd.DataFrame:
    problems = [f"column '{c}' is missing" for c in (ID_COL, LABEL_COL) if c not in chunk.columns]
    if not problems:
        problems += _listed(chunk[ID_COL].isna().to_numpy(), chunk.index, "empty prediction id")
        problems += _listed(chunk[LABEL_COL].isna().to_numpy(), chunk.index, "empty label")
    if problems:
        raise InvalidInput(
            f"The labels file '{name}' cannot be used ({len(problems)} problem(s)). "
            "It needs the columns prediction_id and label. Nothing was stored.",
            details=problems,
        )
    wrong = class_problems(chunk[LABEL_COL], LABEL_COL, target)
    if wrong:
        raise InvalidInput(
            f"The labels file '{name}' cannot be used: its {wrong[0]}. Nothing was stored; "
            "write the labels as the model's classes and send the file again."
        )
    ids = chunk[ID_COL].astype(str)
    _refuse_repeated_ids(chunk, SeenIds())
    keys = rows.find_keys(session, target.model.id or 0, target.environment, ids.tolist())
    stored = keys.set_index("prediction_id")
    missing = [i for i in ids if i not in stored.index][:MAX_LISTED]
    if missing:
        raise InvalidInput(
            f"No prediction was ingested for {len(set(ids) - set(stored.index)):,} of these "
            f"prediction ids, for example {', '.join(repr(m) for m in missing)}. Nothing was "
            "stored; ingest the predictions first, or check the ids."
        )
    picked = stored.loc[pd.Index(ids)]
    labelled = picked[picked["label"].notna()]
    if not labelled.empty:
        listed = ", ".join(repr(i) for i in labelled.index[:MAX_LISTED])
        raise Conflict(
            f"{len(labelled):,} prediction(s) already have a label, for example {listed}. "
            "Nothing was stored; send only new labels, or void the batch that brought the "
            "wrong ones (Monitoring page, Batches) and send them again."
        )
    found = rows.predictions_of(session, rows.store(), picked.reset_index(drop=True))
    return pd.DataFrame(
        {
            ID_COL: ids.to_numpy(),
            "version_id": found["version_id"].to_numpy(),
            TS_COL: pd.to_datetime(found[TS_COL].to_numpy(), utc=True),
            PRED_COL: found[PRED_COL].to_numpy(),
            SCORE_COL: pd.to_numeric(found[SCORE_COL], errors="coerce").to_numpy(dtype=float),
            LABEL_COL: _text(chunk[LABEL_COL], target.model.task),
        }
    )
