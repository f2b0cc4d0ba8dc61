"""Registering a model version: check, load and score it in its sandbox, evaluate, store,
record. One service for the page, the CLI and the SDK."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from core import audit, evaluation, tables, validation
from core.artifacts import ArtifactStore, default_store
from core.auth import Permission, Principal, require
from core.db import Database
from core.errors import Conflict, InvalidInput, NotFound, SandboxFailure
from core.models import Evaluation, MLModel, ModelVersion, Task, VersionState
from core.monitoring.profile import build_reference
from core.sandbox.client import Predictions, Sandbox
from core.sandbox.summary import ModelSummary
from core.services import read_as, unit_of_work
from core.services.registry import clean_tags, get_model, get_version, lock_model
from core.services.sandboxed import allowed_patterns, audited

FORMAT_SUFFIX = {"skops": ".skops", "joblib": ".joblib", "pickle": ".pkl"}


@dataclass(frozen=True)
class VersionUpload:
    """What a data scientist hands in; file names are metadata only, never paths."""

    model: str
    model_file: bytes
    model_filename: str
    eval_file: bytes
    eval_filename: str
    target: str | None = None
    sensitive: str | None = None
    notes: str = ""
    code_ref: str = ""
    tags: Mapping[str, str] | None = None
    training_data: pd.DataFrame | None = None
    parent: int | None = None


@dataclass
class PreparedVersion:
    """Everything checked and computed, nothing stored yet: the summary before confirming."""

    model_id: int
    model_name: str
    inspected: ModelSummary
    frame: pd.DataFrame
    target: str
    sensitive: str | None
    feature_types: dict[str, str]
    result: dict[str, Any]
    reference: dict[str, Any]
    eval_sha256: str
    training_fingerprint: dict[str, Any] = field(default_factory=dict)


def prepare_version(db: Database, actor: Principal, upload: VersionUpload) -> PreparedVersion:
    """Check, load and evaluate the upload in its own sandbox worker; nothing is stored."""
    with read_as(db, actor) as session:
        model = get_model(
            session,
            actor,
            upload.model,
            permission=Permission.REGISTER_MODEL,
            what="register versions of {model}",
        )
        patterns = allowed_patterns(session)
    box = Sandbox.for_artifact(
        upload.model_file, filename=upload.model_filename, allowed_patterns=patterns
    )
    try:
        with audited(
            db,
            actor,
            model,
            "registration",
            artifact=upload.model_file,
            filename=upload.model_filename,
        ):
            return _prepare(box, model, upload)
    finally:
        box.close()


def _prepare(box: Sandbox, model: MLModel, upload: VersionUpload) -> PreparedVersion:
    try:
        inspected = box.check()
    except InvalidInput as refused:  # unsafe, damaged or unreadable: audited by the caller
        refused.from_sandbox = True  # type: ignore[attr-defined]
        raise
    _check_task(model, inspected)
    frame = tables.read_table(upload.eval_file, upload.eval_filename)
    target = (upload.target or model.target or "").strip()
    sensitive = (upload.sensitive or model.sensitive_column or "").strip() or None
    features = _feature_types(inspected, frame, target, sensitive)
    result, scored = _evaluate(box, inspected, frame, target, model.task, sensitive, features)
    return PreparedVersion(
        model_id=model.id or 0,
        model_name=model.name,
        inspected=inspected,
        frame=frame,
        target=target,
        sensitive=sensitive,
        feature_types=features,
        result=result,
        reference=_reference(scored, frame, features, model.task, result),
        eval_sha256=hashlib.sha256(upload.eval_file).hexdigest(),
        training_fingerprint=fingerprint(upload.training_data),
    )


def register_version(
    db: Database,
    actor: Principal,
    upload: VersionUpload,
    *,
    prepared: PreparedVersion | None = None,
    store: ArtifactStore | None = None,
) -> ModelVersion:
    """Store the files (temp name, hash, atomic rename), then the rows, in one transaction."""
    notes = validation.plain_text(upload.notes, "notes", max_length=10_000)
    code_ref = validation.plain_text(upload.code_ref, "code reference", max_length=300)
    tags = clean_tags(upload.tags)
    ready = prepared or prepare_version(db, actor, upload)
    store = store or default_store()
    model_blob = store.put(
        upload.model_file, kind="models", suffix=FORMAT_SUFFIX[ready.inspected.format]
    )
    data_blob = store.put(upload.eval_file, kind="datasets")
    try:
        return _record_version(
            db, actor, upload, ready, model_blob.key, data_blob.key, notes, code_ref, tags
        )
    except BaseException:
        store.delete(model_blob.key)
        store.delete(data_blob.key)
        raise


def _record_version(
    db: Database,
    actor: Principal,
    upload: VersionUpload,
    ready: PreparedVersion,
    model_key: str,
    data_key: str,
    notes: str,
    code_ref: str,
    tags: dict[str, str],
) -> ModelVersion:
    try:
        with unit_of_work(db, actor) as session:
            model = _locked_model(session, ready.model_id)
            require(
                session,
                actor,
                Permission.REGISTER_MODEL,
                team_id=model.team_id,
                what=f"register versions of {model.name}",
                model_id=model.id,
            )
            version = _new_version(
                session, model, actor, upload, ready, model_key, notes, code_ref, tags
            )
            session.add(_evaluation_row(version, ready, data_key, upload.eval_filename))
            audit.record(
                session,
                actor,
                "version.registered",
                object_type="version",
                object_id=version.id,
                model_id=model.id,
                summary=f"{model.name} v{version.number} registered "
                f"({ready.inspected.estimator_class}, {ready.inspected.format}, "
                f"sha256 {ready.inspected.sha256[:12]}…)",
                details={
                    "artifact_sha256": ready.inspected.sha256,
                    "evaluation_sha256": ready.eval_sha256,
                    "metrics": ready.result.get("metrics", {}),
                    "parent": version.parent_id,
                },
            )
            return version
    except IntegrityError:
        raise Conflict(
            "Another version of this model was registered at the same moment. "
            "Register again; yours will take the next number."
        ) from None


def _locked_model(session: Session, model_id: int) -> MLModel:
    model = lock_model(session, model_id)
    if model.archived_at is not None:
        raise InvalidInput(f"{model.name} is archived; new versions cannot be registered.")
    return model


def _new_version(
    session: Session,
    model: MLModel,
    actor: Principal,
    upload: VersionUpload,
    ready: PreparedVersion,
    model_key: str,
    notes: str,
    code_ref: str,
    tags: dict[str, str],
) -> ModelVersion:
    latest = session.exec(
        select(func.max(ModelVersion.number)).where(ModelVersion.model_id == model.id)
    ).one()
    parent_id = _parent_id(session, model, upload.parent, latest)
    inspected = ready.inspected
    version = ModelVersion(
        model_id=model.id or 0,
        number=(latest or 0) + 1,
        state=VersionState.REGISTERED,
        artifact_key=model_key,
        artifact_sha256=inspected.sha256,
        artifact_size=inspected.size_bytes,
        artifact_format=inspected.format,
        original_filename=validation.plain_text(upload.model_filename, "file name", max_length=255),
        estimator_class=inspected.estimator_class,
        library_versions=inspected.library_versions,
        feature_names=list(ready.feature_types),
        feature_types=ready.feature_types,
        params=inspected.params,
        training_fingerprint=ready.training_fingerprint,
        tags=tags,
        notes=notes,
        code_ref=code_ref,
        parent_id=parent_id,
        registered_by_id=actor.user_id,
    )
    session.add(version)
    session.flush()
    return version


def _parent_id(
    session: Session, model: MLModel, parent: int | None, latest: int | None
) -> int | None:
    number = parent if parent is not None else latest
    if number is None:
        return None
    return get_version(session, model, number).id


def _evaluation_row(
    version: ModelVersion, ready: PreparedVersion, data_key: str, filename: str
) -> Evaluation:
    return Evaluation(
        version_id=version.id or 0,
        dataset_sha256=ready.eval_sha256,
        dataset_key=data_key,
        dataset_filename=validation.plain_text(filename, "file name", max_length=255),
        n_rows=len(ready.frame),
        target=ready.target,
        sensitive_column=ready.sensitive,
        result=ready.result,
        reference_profile=ready.reference,
    )


def _check_task(model: MLModel, inspected: ModelSummary) -> None:
    if inspected.task is None:
        return
    registered_as_classifier = model.task != Task.REGRESSION
    file_is_classifier = inspected.task != Task.REGRESSION
    if registered_as_classifier != file_is_classifier:
        raise InvalidInput(
            f"The file holds a {'classifier' if file_is_classifier else 'regressor'} "
            f"({inspected.estimator_class}), but {model.name} is registered for "
            f"{model.task.replace('_', ' ')}. Upload a model for that task."
        )


def _feature_types(
    inspected: ModelSummary, frame: pd.DataFrame, target: str, sensitive: str | None
) -> dict[str, str]:
    if not target:
        raise InvalidInput("Name the target column of the evaluation data.")
    if target not in frame.columns:
        raise InvalidInput(
            f"The evaluation data has no target column {target!r}.",
            details=[f"columns found: {', '.join(map(str, frame.columns[:30]))}"],
        )
    names = inspected.feature_names or [c for c in frame.columns if c not in (target, sensitive)]
    if inspected.n_features is not None and len(names) != inspected.n_features:
        raise InvalidInput(
            f"The model expects {inspected.n_features} features but the evaluation data has "
            f"{len(names)} columns besides the target. Save the model with named features "
            "(fit it on a DataFrame) or upload matching data."
        )
    types = {
        str(n): "numeric" if pd.api.types.is_numeric_dtype(frame[n]) else "categorical"
        for n in names
        if n in frame.columns
    }
    allow = [target] + ([sensitive] if sensitive else [])
    tables.check_columns(frame, _expected(names, types), target=target, allow_extra=allow)
    return types


def _expected(names: list[str], types: dict[str, str]) -> dict[str, str]:
    return {str(n): types.get(str(n), "numeric") for n in names}


def _evaluate(
    box: Sandbox,
    inspected: ModelSummary,
    frame: pd.DataFrame,
    target: str,
    task: str,
    sensitive: str | None,
    features: dict[str, str],
) -> tuple[dict[str, Any], Predictions]:
    if sensitive and sensitive not in frame.columns:
        raise InvalidInput(f"The evaluation data has no sensitive column {sensitive!r}.")
    x, as_array = evaluation.feature_frame(frame, inspected.feature_names, target, sensitive)
    try:
        scored = box.predict(x, as_array=as_array, proba=task != Task.REGRESSION)
    except SandboxFailure as failed:
        failed.details = failed.details + data_hints(frame, features)
        raise
    try:
        result = evaluation.evaluate_predictions(
            frame,
            target,
            task,
            y_pred=scored.prediction,
            proba=scored.proba,
            classes=inspected.classes,
            sensitive=sensitive,
        )
    except InvalidInput as refused:
        mistyped = _text_in_numeric_columns(frame, features)
        if not mistyped:
            raise
        raise InvalidInput(refused.user_message, details=refused.details + mistyped) from None
    except (ValueError, TypeError, KeyError, IndexError):
        raise InvalidInput(
            "The model's predictions could not be compared with the target column: check "
            "that the target holds the labels or values the model predicts.",
            details=_text_in_numeric_columns(frame, features),
        ) from None
    return result, scored


def data_hints(frame: pd.DataFrame, features: dict[str, str]) -> list[str]:
    """What in the data (never in the model's error) usually makes a model fail: text in a
    numeric column, empty (NaN) cells. Each names the column and the first row."""
    return _text_in_numeric_columns(frame, features) + _missing_cells(frame, features)


def _missing_cells(frame: pd.DataFrame, features: dict[str, str]) -> list[str]:
    found = []
    for name in features:
        missing = frame[name].isna().to_numpy()
        if missing.any():
            row = int(frame.index[int(np.flatnonzero(missing)[0])]) + 1
            found.append(
                f"column '{name}' has {int(missing.sum())} empty value(s) (NaN), first in row {row}"
            )
    return found


def _text_in_numeric_columns(frame: pd.DataFrame, features: dict[str, str]) -> list[str]:
    """Columns that are mostly numbers but hold some text: the usual cause of a scoring error."""
    problems = []
    for name, kind in features.items():
        present = frame[name].dropna() if kind == "categorical" else frame[name].iloc[:0]
        parsed = pd.to_numeric(present, errors="coerce")
        if present.empty or parsed.notna().mean() < 0.5:
            continue
        bad = present[parsed.isna()]
        problems.append(
            f"column '{name}' should be numeric but has text values such as "
            f"{str(bad.iloc[0])[:40]!r} (row {int(bad.index[0]) + 1})"
        )
    return problems


def _reference(
    scored: Predictions,
    frame: pd.DataFrame,
    features: dict[str, str],
    task: str,
    result: dict[str, Any],
) -> dict[str, Any]:
    """The monitoring reference, from the evaluation's own predictions (same rows, same model)."""
    x = frame[list(features)]
    prediction = pd.Series(scored.prediction)
    score = None
    if task == Task.BINARY and scored.proba is not None:
        score = pd.Series(np.asarray(scored.proba)[:, -1])
    kind = "regression" if task == Task.REGRESSION else "classification"
    positive = result.get("positive_label")
    profile = build_reference(
        x,
        features,
        prediction=prediction,
        score=score,
        task=kind,
        positive_label=None if positive is None else str(positive),
    )
    return profile.to_dict()


def fingerprint(frame: pd.DataFrame | None) -> dict[str, Any]:
    """Row count, columns and a content hash of the training data; the data is not kept."""
    if frame is None:
        return {}
    return {
        "rows": int(len(frame)),
        "columns": [str(c) for c in frame.columns],
        "sha256": evaluation.data_hash(frame),
    }


# --- reads ----------------------------------------------------------------------------------


def evaluation_of(session: Session, version_id: int) -> Evaluation | None:
    stmt = select(Evaluation).where(Evaluation.version_id == version_id)
    return session.exec(stmt.order_by(col(Evaluation.id).desc())).first()


def artifact_of(
    db: Database,
    actor: Principal,
    name: str,
    number: int | None = None,
    env: str | None = None,
    store: ArtifactStore | None = None,
) -> tuple[ModelVersion, bytes]:
    """The stored file of a version the actor may see (the one live in `env`, `number`, or the
    latest), verified against its SHA-256. The bytes are never loaded here: the caller loads
    them in its own process (the SDK) or in a sandbox."""
    from core.services.compare import live_version

    with read_as(db, actor) as session:
        model = get_model(session, actor, name)
        if env is not None:
            chosen = live_version(session, model, env)
            if chosen is None:
                raise NotFound(f"Nothing of {model.name} is live in {env}.")
        else:
            chosen = get_version(session, model, number)
    data = (store or default_store()).get(chosen.artifact_key, sha256=chosen.artifact_sha256)
    return chosen, data


def load_evaluation_frame(ev: Evaluation, store: ArtifactStore | None = None) -> pd.DataFrame:
    data = (store or default_store()).get(ev.dataset_key, sha256=ev.dataset_sha256)
    return tables.read_table(data, ev.dataset_filename or "evaluation.csv")
