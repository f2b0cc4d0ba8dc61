"""Champion and challenger: a candidate beside the live (or previous) version, same data."""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlmodel import Session, col, select

from core import audit, evaluation
from core.artifacts import ArtifactStore
from core.auth import SYSTEM, Principal
from core.db import Database
from core.errors import InvalidInput, NotFound, QuorumError
from core.models import (
    Deployment,
    Evaluation,
    MLModel,
    ModelVersion,
    StoredComparison,
    Task,
    VersionState,
)
from core.services import read_as, unit_of_work
from core.services.registry import get_model, get_version
from core.services.sandboxed import allowed_patterns, audited, version_sandbox
from core.services.versions import evaluation_of, load_evaluation_frame

PRODUCTION = "production"


@dataclass(frozen=True)
class Comparison:
    model: str
    candidate: int
    champion: int
    champion_basis: str  # why this version is the champion, in plain words
    candidate_result: dict[str, Any]
    champion_result: dict[str, Any]
    rows: list[dict[str, Any]]
    features_added: list[str]
    features_removed: list[str]
    features_retyped: list[str]
    params_changed: list[dict[str, Any]]
    goal_candidate: str
    goal_champion: str


def live_version(session: Session, model: MLModel, environment: str) -> ModelVersion | None:
    deployment = session.exec(
        select(Deployment).where(
            Deployment.model_id == model.id,
            Deployment.environment == environment,
            col(Deployment.live_until).is_(None),
        )
    ).first()
    return session.get(ModelVersion, deployment.version_id) if deployment else None


def champion_for(
    session: Session, model: MLModel, candidate: ModelVersion
) -> tuple[ModelVersion | None, str]:
    live = live_version(session, model, PRODUCTION)
    if live is not None and live.id != candidate.id:
        return live, f"v{live.number} is live in production"
    itself = live is not None  # the candidate is the live version: say so, never "nothing is live"
    head = (
        f"v{candidate.number} itself is live in production"
        if itself
        else "no version is live in production"
    )
    if candidate.parent_id is not None:
        parent = session.get(ModelVersion, candidate.parent_id)
        if parent is not None:
            if itself:
                return parent, f"{head}; v{parent.number} is its parent"
            return parent, f"nothing else is live in production; v{parent.number} is the parent"
    return None, f"{head} and this version has no parent"


def compare(
    db: Database,
    actor: Principal,
    model_name: str,
    candidate_number: int,
    champion_number: int | None = None,
    *,
    store: ArtifactStore | None = None,
) -> Comparison:
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        candidate = get_version(session, model, candidate_number)
        champion, basis = _champion(session, model, candidate, champion_number)
        cand_eval = evaluation_of(session, candidate.id or 0)
        patterns = allowed_patterns(session)
    if cand_eval is None:
        raise NotFound(f"v{candidate.number} has no evaluation to compare on.")
    frame = load_evaluation_frame(cand_eval, store)
    with audited(db, actor, model, "comparison", sha256=champion.artifact_sha256):
        champ_result = _scored(champion, frame, cand_eval, model.task, patterns, store)
    return _build(model, candidate, champion, basis, cand_eval.result, champ_result)


def compare_with_champion(
    db: Database,
    actor: Principal,
    model_name: str,
    number: int,
    *,
    store: ArtifactStore | None = None,
) -> Comparison | None:
    """The comparison with the version live in production (or the parent), None when there is
    nothing to compare with."""
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        champion, _basis = champion_for(session, model, get_version(session, model, number))
    if champion is None:
        return None
    return compare(db, actor, model_name, number, store=store)


def _scored(
    version: ModelVersion,
    frame: pd.DataFrame,
    ev: Evaluation,
    task: str,
    patterns: list[str],
    store: ArtifactStore | None,
) -> dict[str, Any]:
    """`version` scored in its own sandbox on `frame` (which holds `ev`'s target column)."""
    box = version_sandbox(version, patterns, store)
    summary = box.check()
    x, as_array = evaluation.feature_frame(
        frame, summary.feature_names, ev.target, ev.sensitive_column
    )
    scored = box.predict(x, as_array=as_array, proba=task != Task.REGRESSION)
    return evaluation.evaluate_predictions(
        frame,
        ev.target,
        task,
        y_pred=evaluation.thresholded(
            scored.prediction, scored.proba, summary.classes, version.decision_threshold
        ),
        proba=scored.proba,
        classes=summary.classes,
        sensitive=ev.sensitive_column,
    )


# --- comparisons computed once and stored ---------------------------------------------------

EVALUATION_DATA, PRODUCTION_DATA = "evaluation", "production"
RECENT_LABELLED = 5_000  # the newest labelled production rows both versions are scored on
MIN_LABELLED = 50  # fewer labelled production rows give no production comparison
KEPT = (  # every version still shown on the pages (an archived one is not)
    VersionState.REGISTERED,
    VersionState.IN_REVIEW,
    VersionState.CHANGES_REQUESTED,
    VersionState.APPROVED,
    VersionState.REJECTED,
)


@dataclass(frozen=True)
class StoredView:
    """A stored comparison read back: the comparison and the data it was made on."""

    comparison: Comparison
    data: str
    n_rows: int
    data_from: datetime | None
    data_to: datetime | None
    created_at: datetime

    @property
    def data_words(self) -> str:
        if self.data == PRODUCTION_DATA:
            span = ""
            if self.data_from and self.data_to:
                span = f" from {self.data_from:%Y-%m-%d} to {self.data_to:%Y-%m-%d}"
            return f"the {self.n_rows:,} most recent labelled production rows{span}"
        return f"v{self.comparison.candidate}'s evaluation data ({self.n_rows:,} rows)"


def stored_comparisons(
    db: Database, actor: Principal, model_name: str, number: int, champion_number: int | None
) -> dict[str, StoredView]:
    """The newest stored comparison on each kind of data (evaluation, production) of version
    `number` with its champion (or `champion_number`). Reads only: nothing is scored."""
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        candidate = get_version(session, model, number)
        champion, basis = _champion(session, model, candidate, champion_number)
        rows = session.exec(
            select(StoredComparison)
            .where(
                StoredComparison.candidate_id == candidate.id,
                StoredComparison.champion_id == champion.id,
            )
            .order_by(col(StoredComparison.id).desc())
        ).all()
        found: dict[str, StoredView] = {}
        for row in rows:
            if row.data in found:
                continue
            result = row.result
            found[row.data] = StoredView(
                _build(
                    model,
                    candidate,
                    champion,
                    basis,
                    result["candidate"],
                    result["champion"],
                ),
                row.data,
                row.n_rows,
                row.data_from,
                row.data_to,
                row.created_at,
            )
        return found


def _champion(
    session: Session, model: MLModel, candidate: ModelVersion, number: int | None
) -> tuple[ModelVersion, str]:
    if number is None:
        champion, basis = champion_for(session, model, candidate)
    else:
        champion, basis = get_version(session, model, number), "chosen by you"
    if champion is None:
        raise NotFound(f"There is nothing to compare v{candidate.number} with: {basis}.")
    if champion.id == candidate.id:
        raise InvalidInput("Choose two different versions to compare.")
    return champion, basis


def compute_comparisons(
    db: Database,
    actor: Principal,
    model_name: str,
    number: int,
    champion_number: int | None = None,
    *,
    store: ArtifactStore | None = None,
) -> int:
    """Score version `number` and its champion on the candidate's evaluation data and, when
    there are at least `MIN_LABELLED` labelled production rows, both on the newest of them;
    store each result under the hash of both artifacts and the data. A hash already stored
    is not scored again. Returns how many comparisons were computed."""
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        candidate = get_version(session, model, number)
        champion, _basis = _champion(session, model, candidate, champion_number)
        cand_eval = evaluation_of(session, candidate.id or 0)
        patterns = allowed_patterns(session)
        if cand_eval is None:
            raise NotFound(f"v{candidate.number} has no evaluation to compare on.")
        pair = f"{candidate.artifact_sha256}:{champion.artifact_sha256}"
        wanted = {EVALUATION_DATA: _digest(EVALUATION_DATA, pair, cand_eval.dataset_sha256)}
        labelled = _labelled_production(session, model, [candidate, champion], store)
        if len(labelled.frame) >= MIN_LABELLED:
            wanted[PRODUCTION_DATA] = _digest(PRODUCTION_DATA, pair, labelled.digest)
        known = set(
            session.exec(
                select(StoredComparison.content_hash).where(
                    col(StoredComparison.content_hash).in_(list(wanted.values()))
                )
            ).all()
        )
    todo = {kind: digest for kind, digest in wanted.items() if digest not in known}
    if not todo:
        return 0
    frame = load_evaluation_frame(cand_eval, store)
    made: list[StoredComparison] = []
    with audited(db, actor, model, "comparison", sha256=champion.artifact_sha256):
        if EVALUATION_DATA in todo:
            result = {
                "candidate": cand_eval.result,
                "champion": _scored(champion, frame, cand_eval, model.task, patterns, store),
            }
            made.append(
                _stored(model, candidate, champion, EVALUATION_DATA, todo, len(frame), result)
            )
        if PRODUCTION_DATA in todo:
            production = _production_frame(labelled.frame, frame, cand_eval.target)
            result = {
                "candidate": _scored(candidate, production, cand_eval, model.task, patterns, store),
                "champion": _scored(champion, production, cand_eval, model.task, patterns, store),
            }
            stored = _stored(
                model, candidate, champion, PRODUCTION_DATA, todo, len(production), result
            )
            stored.data_from = labelled.first
            stored.data_to = labelled.last
            made.append(stored)
    _save(db, actor, model, candidate, champion, made)
    return len(made)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _stored(
    model: MLModel,
    candidate: ModelVersion,
    champion: ModelVersion,
    kind: str,
    digests: dict[str, str],
    n_rows: int,
    result: dict[str, Any],
) -> StoredComparison:
    return StoredComparison(
        model_id=model.id or 0,
        candidate_id=candidate.id or 0,
        champion_id=champion.id or 0,
        data=kind,
        content_hash=digests[kind],
        n_rows=n_rows,
        result=json.loads(json.dumps(result, default=_plain)),
    )


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _save(
    db: Database,
    actor: Principal,
    model: MLModel,
    candidate: ModelVersion,
    champion: ModelVersion,
    made: list[StoredComparison],
) -> None:
    with unit_of_work(db, actor) as session:
        for stored in made:
            exists = session.exec(
                select(StoredComparison.id).where(
                    StoredComparison.content_hash == stored.content_hash
                )
            ).first()
            if exists is not None:  # another process stored it meanwhile
                continue
            session.add(stored)
            session.flush()
            audit.record(
                session,
                actor,
                "version.compared",
                object_type="comparison",
                object_id=stored.id,
                model_id=model.id,
                summary=f"{model.name} v{candidate.number} compared with v{champion.number} on "
                f"{'recent labelled production data' if stored.data == PRODUCTION_DATA else 'its evaluation data'}"
                f" ({stored.n_rows:,} rows)",
                details={"data": stored.data, "rows": stored.n_rows, "hash": stored.content_hash},
            )


@dataclass(frozen=True)
class _Labelled:
    frame: pd.DataFrame  # features and `__label__`, newest first
    digest: str  # of the prediction ids and labels
    first: datetime | None
    last: datetime | None


def _labelled_production(
    session: Session, model: MLModel, versions: list[ModelVersion], store: ArtifactStore | None
) -> _Labelled:
    """The newest `RECENT_LABELLED` labelled rows of production, whichever version scored
    them (rows of voided batches are gone), with the features either version reads."""
    from core.services.monitoring import rows  # monitoring reads the champion from here
    from core.services.monitoring.common import ID_COL, TS_COL

    features = sorted({name for v in versions for name in v.feature_types})
    found = rows.recent_labelled(
        session, rows.store(), model.id or 0, PRODUCTION, features, RECENT_LABELLED
    )
    digest = hashlib.sha256()
    for key, label in zip(found[ID_COL], found["__label__"], strict=True):
        digest.update(f"{key}:{label}\n".encode())
    stamps = pd.to_datetime(found[TS_COL])
    return _Labelled(
        frame=found.drop(columns=[ID_COL, TS_COL]),
        digest=digest.hexdigest(),
        first=stamps.min().to_pydatetime() if len(found) else None,
        last=stamps.max().to_pydatetime() if len(found) else None,
    )


def _production_frame(labelled: pd.DataFrame, reference: pd.DataFrame, target: str) -> pd.DataFrame:
    """Labelled production rows as a frame with the evaluation data's column types."""
    frame = labelled.rename(columns={"__label__": target})
    for column in reference.columns:
        if column not in frame.columns:
            continue
        if column == target and pd.api.types.is_numeric_dtype(reference[column]):
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
        try:
            frame[column] = frame[column].astype(reference[column].dtype)
        except (TypeError, ValueError):
            continue
    return frame.dropna(subset=[target]).reset_index(drop=True)


def refresh_comparisons(db: Database, *, store: ArtifactStore | None = None) -> str:
    """Compute what is missing for every version not archived, beside its champion (the
    periodic job): a new version, a new champion, or new labels give a new hash."""
    computed, versions, failed = refresh_counts(db, store=store)
    return f"{computed} comparison(s) computed for {versions} version(s)" + (
        f"; {failed} could not be scored (see the audit trail)." if failed else "."
    )


def refresh_counts(db: Database, *, store: ArtifactStore | None = None) -> tuple[int, int, int]:
    """(comparisons computed, versions looked at, versions that could not be scored)."""
    with db.read() as session:
        rows = session.exec(
            select(MLModel.name, ModelVersion.number)
            .join(MLModel, col(MLModel.id) == ModelVersion.model_id)
            .where(col(ModelVersion.state).in_(KEPT), col(MLModel.archived_at).is_(None))
            .order_by(col(ModelVersion.id))
        ).all()
    computed, failed = 0, 0
    for name, number in rows:
        try:
            computed += compute_comparisons(db, SYSTEM, name, number, store=store)
        except NotFound:  # nothing to compare with: not a failure
            continue
        except QuorumError:
            failed += 1
    return computed, len(rows), failed


def _build(
    model: MLModel,
    candidate: ModelVersion,
    champion: ModelVersion,
    basis: str,
    cand_result: dict[str, Any],
    champ_result: dict[str, Any],
) -> Comparison:
    new, old = candidate.feature_types, champion.feature_types
    return Comparison(
        model=model.name,
        candidate=candidate.number,
        champion=champion.number,
        champion_basis=basis,
        candidate_result=cand_result,
        champion_result=champ_result,
        rows=evaluation.compare(cand_result, champ_result),
        features_added=sorted(set(new) - set(old)),
        features_removed=sorted(set(old) - set(new)),
        features_retyped=sorted(k for k in set(new) & set(old) if new[k] != old[k]),
        params_changed=param_diff(
            readable_params(candidate.params), readable_params(champion.params)
        ),
        goal_candidate=goal_sentence(model, cand_result),
        goal_champion=goal_sentence(model, champ_result),
    )


MISSING = "—"  # in a parameter row: the version does not have this parameter


def param_diff(new: dict[str, Any], old: dict[str, Any]) -> list[dict[str, Any]]:
    keys = sorted(set(new) | set(old))
    return [
        {"parameter": k, "candidate": new.get(k, MISSING), "champion": old.get(k, MISSING)}
        for k in keys
        if k not in new or k not in old or new[k] != old[k]
    ]


def readable_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters with the estimators inside them opened up: a pipeline's `steps` (stored as
    the estimators' reprs) become one entry per step ("model": "GradientBoostingClassifier")
    and one per argument given ("model › learning_rate": "0.05"), recursively, so that a
    change shows as the one argument that changed rather than two long reprs."""
    flat: dict[str, Any] = {}
    for name, value in params.items():
        opened = _open_value(value, "" if name == "steps" else name)  # a pipeline's steps
        flat.update(opened if opened is not None else {name: value})
    return flat


def _open_value(value: Any, path: str) -> dict[str, str] | None:
    """`value` opened into path -> text entries, or None when it holds no estimator."""
    if isinstance(value, str):
        try:
            node = ast.parse(" ".join(value.split()), mode="eval").body
        except SyntaxError:
            return None
        return _open_node(node, " ".join(value.split()), path)
    if isinstance(value, (list, tuple)) and value and all(_is_step(v) for v in value):
        flat: dict[str, str] = {}
        for step in value:
            inner = _open_value(step[1], _join(path, step[0]))
            flat.update(inner if inner is not None else {_join(path, step[0]): str(step[1])})
        return flat
    return None


def _join(path: str, name: str) -> str:
    return f"{path} › {name}" if path else name


def _is_step(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) >= 2 and isinstance(value[0], str)


def _open_node(node: ast.AST, source: str, path: str) -> dict[str, str] | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        flat = {path: node.func.id}
        for keyword in node.keywords:
            if keyword.arg is None:
                continue
            inner = _open_node(keyword.value, source, _join(path, keyword.arg))
            text = (
                str(keyword.value.value)
                if isinstance(keyword.value, ast.Constant)
                else ast.get_source_segment(source, keyword.value) or ""
            )
            flat.update(inner if inner is not None else {_join(path, keyword.arg): text})
        return flat
    if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
        steps = [e for e in node.elts if isinstance(e, (ast.List, ast.Tuple)) and len(e.elts) >= 2]
        named = [e for e in steps if isinstance(e.elts[0], ast.Constant)]
        if len(named) != len(node.elts):
            return None
        flat = {}
        for step in named:
            name = str(step.elts[0].value)  # type: ignore[attr-defined]
            inner = _open_node(step.elts[1], source, _join(path, name))
            text = ast.get_source_segment(source, step.elts[1]) or ""
            flat.update(inner if inner is not None else {_join(path, name): text})
        return flat
    return None


def param_table(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The changed parameters as people read them, whole (never cut): the parameter's name
    (a pipeline step's parameter as "step › name"), its value before (the champion) and after
    (the candidate), "not set" where a version does not have it."""
    return [
        {
            "Parameter": str(row["parameter"]).replace("__", " › "),
            "Before": param_value(row["champion"]),
            "After": param_value(row["candidate"]),
        }
        for row in rows
    ]


def param_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per changed parameter, champion -> candidate: "max_depth: 3 → 5"."""
    return [f"{row['Parameter']}: {row['Before']} → {row['After']}" for row in param_table(rows)]


def param_value(value: Any) -> str:
    """A parameter value in words: 0.01, l2, none, true, [1, 2]; "not set" when absent."""
    if value is MISSING:
        return "not set"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def goal_sentence(model: MLModel, result: dict[str, Any]) -> str:
    if not model.goal_metric or model.goal_target is None:
        return "No business goal is set for this model."
    value = result.get("metrics", {}).get(model.goal_metric)
    return evaluation.describe_goal(
        model.goal_metric, model.goal_operator, model.goal_target, value
    )
