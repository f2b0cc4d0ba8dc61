"""Registering a model version: check, load and score it in its sandbox, evaluate, store,
record. One service for the page, the CLI and the SDK."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from core import audit, evaluation, tables, validation
from core.artifacts import ArtifactStore, default_store
from core.auth import Permission, Principal, require
from core.config import known_environment
from core.db import Database
from core.errors import Conflict, InvalidInput, NotFound, SandboxFailure
from core.models import (
    Evaluation,
    MLModel,
    ModelVersion,
    PendingChange,
    Task,
    VersionState,
    utcnow,
)
from core.monitoring.profile import build_reference
from core.sandbox.client import Predictions, Sandbox
from core.sandbox.summary import ModelSummary
from core.services import changes, read_as, unit_of_work
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
    # The feature names, in the order the model was trained on, for a model saved without
    # them (fitted on a bare array); checked against the evaluation file's columns.
    features: list[str] | None = None
    decision_threshold: float | None = None


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
    decision_threshold: float | None = None
    # Earlier versions of this model holding the very same file (same SHA-256).
    same_artifact_as: list[int] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """What the summary shows before confirming (the version itself is not refused)."""
        return same_file_warnings("This file", self.same_artifact_as)


def same_file_warnings(subject: str, same: list[int] | tuple[int, ...]) -> list[str]:
    """The flag for a file identical to earlier versions of the model (never a refusal)."""
    if not same:
        return []
    listed = ", ".join(f"v{n}" for n in same)
    return [
        f"{subject} is identical (same SHA-256) to {listed}; it adds a version with nothing "
        "new in it."
    ]


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
        earlier = dict(
            session.exec(
                select(ModelVersion.number, ModelVersion.artifact_sha256).where(
                    ModelVersion.model_id == model.id
                )
            ).all()
        )
    digest = hashlib.sha256(upload.model_file).hexdigest()
    same = sorted(n for n, sha in earlier.items() if sha == digest)
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
            ready = _prepare(box, model, upload)
    finally:
        box.close()
    ready.same_artifact_as = same
    return ready


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
    threshold = evaluation.check_threshold(upload.decision_threshold)
    if threshold is not None and model.task != Task.BINARY:
        raise InvalidInput(
            f"A decision threshold applies to binary classifiers only; {model.name} is a "
            f"{model.task.replace('_', ' ')} model. Leave the threshold empty."
        )
    names = given_features(inspected, frame, target, sensitive, upload.features)
    features = _feature_types(inspected, frame, target, sensitive, names)
    result, scored = _evaluate(
        box, inspected, frame, target, model.task, sensitive, features, threshold, names
    )
    ignored = {str(c) for c in frame.columns} - set(names) - {target, sensitive or target}
    if ignored:
        result["notes"] = [*result.get("notes", []), tables.ignored_note(ignored)]
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
        decision_threshold=threshold,
    )


def given_features(
    inspected: ModelSummary,
    frame: pd.DataFrame,
    target: str,
    sensitive: str | None,
    given: list[str] | None,
) -> list[str]:
    """The model's features in training order: its own names, or the names given for a model
    saved without them. Never the evaluation file's column order: a swapped column would be
    scored as the wrong feature with no error."""
    names = [str(n).strip() for n in given or [] if str(n).strip()]
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise InvalidInput(f"The feature list names {repeated[0]!r} twice; list each once.")
    known = inspected.feature_names
    if known is not None:
        if names and names != [str(n) for n in known]:
            raise InvalidInput(
                "The features given differ from the names saved in the model ("
                + ", ".join(map(str, known[:20]))
                + "); leave the feature list empty to use the model's own."
            )
        return [str(n) for n in known]
    if not names:
        count = f"{inspected.n_features} " if inspected.n_features is not None else ""
        raise InvalidInput(
            f"The model was saved without feature names, so its {count}features cannot be "
            "matched to the evaluation columns safely; give them in training order "
            "(--features a,b,c, the Features field, or the API's features)."
        )
    if inspected.n_features is not None and len(names) != inspected.n_features:
        raise InvalidInput(
            f"{len(names)} feature(s) were given but the model takes {inspected.n_features}; "
            "list every feature in training order."
        )
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise InvalidInput(
            "The evaluation data has no column "
            + ", ".join(repr(n) for n in missing[:10])
            + " named in the feature list; check the spelling or the file."
        )
    clash = [n for n in names if n in (target, sensitive)]
    if clash:
        raise InvalidInput(
            f"{clash[0]!r} is the target or sensitive column, so it cannot also be a feature."
        )
    return names


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
                    "decision_threshold": ready.decision_threshold,
                    "same_artifact_as": ready.same_artifact_as,
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
        decision_threshold=ready.decision_threshold,
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
    inspected: ModelSummary,
    frame: pd.DataFrame,
    target: str,
    sensitive: str | None,
    names: list[str],
) -> dict[str, str]:
    if not target:
        raise InvalidInput("Name the target column of the evaluation data.")
    if target not in frame.columns:
        raise InvalidInput(
            f"The evaluation data has no target column {target!r}.",
            details=[f"columns found: {', '.join(map(str, frame.columns[:30]))}"],
        )
    types = {
        str(n): "numeric" if pd.api.types.is_numeric_dtype(frame[n]) else "categorical"
        for n in names
        if n in frame.columns
    }
    allow = [target] + ([sensitive] if sensitive else [])
    allow += [str(c) for c in frame.columns if str(c) not in names]
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
    threshold: float | None,
    names: list[str],
) -> tuple[dict[str, Any], Predictions]:
    if sensitive and sensitive not in frame.columns:
        raise InvalidInput(f"The evaluation data has no sensitive column {sensitive!r}.")
    x = frame[names]
    try:
        scored = box.predict(
            x, as_array=inspected.feature_names is None, proba=task != Task.REGRESSION
        )
    except SandboxFailure as failed:
        failed.details = failed.details + data_hints(frame, features)
        raise
    scored = replace(
        scored,
        prediction=evaluation.thresholded(
            scored.prediction, scored.proba, inspected.classes, threshold
        ),
    )
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
            label_mismatch(frame[target], target, inspected.classes, scored.prediction),
            details=_text_in_numeric_columns(frame, features),
        ) from None
    return result, scored


def label_mismatch(values: pd.Series, target: str, classes: Any, predicted: Any) -> str:
    """One sentence naming the target column, values it holds and what the model predicts."""
    known = list(classes) if classes is not None else list(pd.unique(np.asarray(predicted)))
    held = [str(v) for v in pd.unique(values.dropna())[:5]]
    expected = ", ".join(repr(str(c)) for c in known[:10])
    return (
        f"The target column '{target}' holds {', '.join(repr(v) for v in held)}, which the "
        f"model's predictions ({expected}) cannot be compared with; give the target in the "
        "model's own labels."
    )


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
            env = known_environment(env)
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


# --- the decision threshold, edited after registration -----------------------------------------


def set_decision_threshold(
    db: Database,
    actor: Principal,
    model_name: str,
    number: int,
    threshold: float | str | None,
    reason: str,
) -> PendingChange | ModelVersion:
    """Propose a new decision threshold for a version: it can drop a requirement (a class
    metric the goal or a reviewer relied on), so a compliance officer of the model's team
    confirms it; then the version is evaluated again at it and its gate reopens."""
    value = evaluation.check_threshold(threshold)
    why = validation.plain_text(reason, "reason", max_length=500, required=True)
    with unit_of_work(db, actor) as session:
        model = get_model(
            session,
            actor,
            model_name,
            permission=Permission.EDIT_MODEL,
            what="change the decision threshold of {model}",
        )
        version = get_version(session, model, number)
        if model.task != Task.BINARY:
            raise InvalidInput(
                f"{model.name} is a {model.task.replace('_', ' ')} model; a decision threshold "
                "applies to binary classifiers only."
            )
        if value == version.decision_threshold:
            raise InvalidInput(
                f"{model.name} v{number} already has that decision threshold; nothing to change."
            )
        payload = {
            "model_id": model.id,
            "version_id": version.id,
            "fields": {"decision_threshold": value},
            "before": {"decision_threshold": version.decision_threshold},
            "reason": why,
        }
        shown = "the model's own" if value is None else f"{value:g}"
        summary = f"{model.name} v{number}: decision threshold -> {shown}: {why}"
        if changes.acts_alone(actor):
            apply_threshold(session, actor, actor, model, payload)
            return version
        return changes.propose(session, actor, changes.METADATA, payload, summary)


def apply_threshold(
    session: Session,
    proposer: Principal,
    confirmer: Principal,
    model: MLModel,
    payload: dict[str, Any],
) -> str:
    """Store the confirmed threshold, evaluate the version again at it (a new evaluation row on
    the same data), audit both and reopen the version's gate."""
    from core.services.registry import reopen_gate

    version = session.get(ModelVersion, payload["version_id"])
    if version is None:
        raise NotFound("The version of this change no longer exists.")
    before = payload["before"]["decision_threshold"]
    if version.decision_threshold != before:
        raise Conflict(
            f"The decision threshold of {model.name} v{version.number} changed after this was "
            "proposed. Refuse this change and propose again if it is still wanted."
        )
    value = payload["fields"]["decision_threshold"]
    ev = evaluation_of(session, version.id or 0)
    if ev is None:
        raise NotFound(f"{model.name} v{version.number} has no evaluation to compute again.")
    result = _rescored(session, model, version, ev, value)
    version.decision_threshold = value
    version.row_version += 1
    version.updated_at = utcnow()
    session.add(version)
    session.add(
        Evaluation(
            version_id=version.id or 0,
            dataset_sha256=ev.dataset_sha256,
            dataset_key=ev.dataset_key,
            dataset_filename=ev.dataset_filename,
            n_rows=ev.n_rows,
            target=ev.target,
            sensitive_column=ev.sensitive_column,
            result=result,
            reference_profile=ev.reference_profile,
        )
    )
    shown = "the model's own" if value is None else f"{value:g}"
    audit.record(
        session,
        confirmer,
        "version.threshold_changed",
        object_type="version",
        object_id=version.id,
        model_id=model.id,
        summary=f"{model.name} v{version.number}: decision threshold -> {shown}, evaluated "
        f"again: {payload['reason']}",
        details={
            "before": before,
            "after": value,
            "reason": payload["reason"],
            "proposed_by": proposer.user_id,
            "metrics": result.get("metrics", {}),
        },
    )
    reopen_gate(session, confirmer, model, f"decision threshold -> {shown} ({payload['reason']})")
    return f"{model.name} v{version.number} now decides at {shown}; the gate was reopened"


def _rescored(
    session: Session,
    model: MLModel,
    version: ModelVersion,
    ev: Evaluation,
    threshold: float | None,
) -> dict[str, Any]:
    from core.services.sandboxed import version_sandbox

    frame = load_evaluation_frame(ev)
    box = version_sandbox(version, allowed_patterns(session))
    inspected = box.check()
    names = list(version.feature_names)
    scored = box.predict(frame[names], as_array=inspected.feature_names is None, proba=True)
    return evaluation.evaluate_predictions(
        frame,
        ev.target,
        model.task,
        y_pred=evaluation.thresholded(
            scored.prediction, scored.proba, inspected.classes, threshold
        ),
        proba=scored.proba,
        classes=inspected.classes,
        sensitive=ev.sensitive_column,
    )
