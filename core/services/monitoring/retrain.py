"""Retrain the live model on reference plus labelled production data, as a new candidate."""

from __future__ import annotations

import io

import pandas as pd
from sqlmodel import Session, select

from core import audit
from core.artifacts import ArtifactStore
from core.auth import Permission, Principal
from core.config import known_environment
from core.db import Database
from core.errors import Conflict, InvalidInput, NotFound
from core.models import (
    MLModel,
    ModelVersion,
    RetrainingTask,
    utcnow,
)
from core.services import read_as, unit_of_work
from core.services.compare import live_version
from core.services.monitoring import rows
from core.services.monitoring.common import DONE, MIN_RETRAIN_ROWS, OPEN
from core.services.registry import get_model
from core.services.sandboxed import allowed_patterns, audited, version_sandbox
from core.services.versions import evaluation_of

# --- retraining ----------------------------------------------------------------------------


def retrain(
    db: Database,
    actor: Principal,
    model_name: str,
    task_id: int | None = None,
    *,
    env: str = "production",
    store: ArtifactStore | None = None,
) -> ModelVersion:
    """Fit a clone of the live estimator on reference plus labelled production data and
    register it as a new candidate version (parent: the live version)."""
    from core.services.versions import VersionUpload, load_evaluation_frame, register_version

    with read_as(db, actor) as session:
        model = get_model(
            session,
            actor,
            model_name,
            permission=Permission.RETRAIN,
            what="retrain {model}",
        )
        live = live_version(session, model, known_environment(env))
        if live is None:
            raise InvalidInput(
                f"No version of {model.name} is live in '{env}'; retraining starts from the "
                "live version. Deploy one first."
            )
        task = _task_to_run(session, model, task_id)
        ev = evaluation_of(session, live.id or 0)
        if ev is None:
            raise NotFound(f"{model.name} v{live.number} has no evaluation data to start from.")
        production = _labelled_rows(session, model, env, live)
        patterns = allowed_patterns(session)
    features = list(live.feature_types)
    reference = load_evaluation_frame(ev, store)
    train_part, holdout = _split_production(production, ev.target, reference)
    training = pd.concat([reference[[*features, ev.target]], train_part], ignore_index=True)
    with audited(db, actor, model, "retraining", sha256=live.artifact_sha256):
        refitted = version_sandbox(live, patterns, store).fit(
            training[[*features, ev.target]], features, ev.target
        )
    buffer = io.BytesIO()
    holdout.to_csv(buffer, index=False)
    why = f"retraining task #{task.id}" if task else "a manual retraining"
    version = register_version(
        db,
        actor,
        VersionUpload(
            model=model.name,
            model_file=refitted,
            model_filename=f"{model.name}-retrained.skops",
            eval_file=buffer.getvalue(),
            eval_filename=f"{model.name}-production-holdout.csv",
            notes=f"Retrained from v{live.number} for {why}: a clone of its estimator fitted on "
            f"its evaluation data ({len(reference):,} rows) plus {len(train_part):,} labelled "
            f"production rows from {env}; evaluated on {len(holdout):,} held-out production rows.",
            training_data=training,
            parent=live.number,
            features=features,
            decision_threshold=live.decision_threshold,
        ),
        store=store,
    )
    if task is not None:
        _close_task(db, actor, model, task.id or 0, version)
    return version


def _task_to_run(session: Session, model: MLModel, task_id: int | None) -> RetrainingTask | None:
    if task_id is None:
        return session.exec(
            select(RetrainingTask).where(
                RetrainingTask.model_id == model.id, RetrainingTask.status == OPEN
            )
        ).first()
    task = session.get(RetrainingTask, task_id)
    if task is None or task.model_id != model.id:
        raise NotFound(f"{model.name} has no retraining task #{task_id}.")
    if task.status != OPEN:
        raise Conflict(f"Retraining task #{task_id} is already {task.status}.")
    return task


def _labelled_rows(session: Session, model: MLModel, env: str, live: ModelVersion) -> pd.DataFrame:
    features = rows.labelled_rows(
        session, rows.store(), model.id or 0, env, list(live.feature_types)
    )
    if len(features) < MIN_RETRAIN_ROWS:
        raise InvalidInput(
            f"Only {len(features)} labelled production rows of {model.name} exist in {env}; "
            f"retraining needs at least {MIN_RETRAIN_ROWS}. Ingest labels first."
        )
    return features


def _split_production(
    production: pd.DataFrame, target: str, reference: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = production.rename(columns={"__label__": target})
    reference_target = reference[target]
    if pd.api.types.is_numeric_dtype(reference_target):
        frame[target] = pd.to_numeric(frame[target], errors="coerce")
        if pd.api.types.is_integer_dtype(reference_target):
            frame[target] = frame[target].round().astype("Int64").astype(reference_target.dtype)
    for column in reference.columns:
        if column in frame.columns and column != target:
            try:
                frame[column] = frame[column].astype(reference[column].dtype)
            except (TypeError, ValueError):
                continue
    shuffled = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    cut = max(int(len(shuffled) * 0.7), 1)
    return shuffled.iloc[:cut], shuffled.iloc[cut:]


def _close_task(
    db: Database, actor: Principal, model: MLModel, task_id: int, version: ModelVersion
) -> None:
    with unit_of_work(db, actor) as session:
        task = session.exec(
            select(RetrainingTask).where(RetrainingTask.id == task_id).with_for_update()
        ).one()
        task.status = DONE
        task.result_version_id = version.id
        task.updated_at = utcnow()
        session.add(task)
        audit.record(
            session,
            actor,
            "monitoring.retraining_done",
            object_type="retraining_task",
            object_id=task.id,
            model_id=model.id,
            summary=f"Retraining task #{task.id} of {model.name} done: v{version.number} "
            "registered as a candidate for review",
            details={"version": version.number},
        )
