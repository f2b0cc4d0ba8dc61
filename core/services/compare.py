"""Champion and challenger: a candidate beside the live (or previous) version, same data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlmodel import Session, col, select

from core import evaluation
from core.artifacts import ArtifactStore
from core.auth import Principal
from core.db import Database
from core.errors import InvalidInput, NotFound
from core.models import Deployment, Evaluation, MLModel, ModelVersion, Task
from core.services import read_as
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
        if champion_number is None:
            champion, basis = champion_for(session, model, candidate)
        else:
            champion, basis = get_version(session, model, champion_number), "chosen by you"
        if champion is None:
            raise NotFound(f"There is nothing to compare v{candidate.number} with: {basis}.")
        if champion.id == candidate.id:
            raise InvalidInput("Choose two different versions to compare.")
        cand_eval = evaluation_of(session, candidate.id or 0)
        patterns = allowed_patterns(session)
    if cand_eval is None:
        raise NotFound(f"v{candidate.number} has no evaluation to compare on.")
    frame = load_evaluation_frame(cand_eval, store)
    with audited(db, actor, model, "comparison", sha256=champion.artifact_sha256):
        champ_result = _champion_result(champion, frame, cand_eval, model.task, patterns, store)
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


def _champion_result(
    champion: ModelVersion,
    frame: pd.DataFrame,
    ev: Evaluation,
    task: str,
    patterns: list[str],
    store: ArtifactStore | None,
) -> dict[str, Any]:
    """The champion scored in its own sandbox on the candidate's evaluation data."""
    box = version_sandbox(champion, patterns, store)
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
            scored.prediction, scored.proba, summary.classes, champion.decision_threshold
        ),
        proba=scored.proba,
        classes=summary.classes,
        sensitive=ev.sensitive_column,
    )


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
        params_changed=param_diff(candidate.params, champion.params),
        goal_candidate=goal_sentence(model, cand_result),
        goal_champion=goal_sentence(model, champ_result),
    )


MISSING = "—"  # in a parameter row: the version does not have this parameter
PARAM_WIDTH = 90


def param_diff(new: dict[str, Any], old: dict[str, Any]) -> list[dict[str, Any]]:
    keys = sorted(set(new) | set(old))
    return [
        {"parameter": k, "candidate": new.get(k, MISSING), "champion": old.get(k, MISSING)}
        for k in keys
        if k not in new or k not in old or new[k] != old[k]
    ]


def param_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per changed parameter, champion -> candidate: "max_depth: 3 → 5"."""
    return [_shorten(_param_line(row)) for row in rows]


def _param_line(row: dict[str, Any]) -> str:
    name, new, old = row["parameter"], row["candidate"], row["champion"]
    if old is MISSING:
        return f"{name}: {new!r} (new in the candidate)"
    if new is MISSING:
        return f"{name}: {old!r} (not in the candidate)"
    return f"{name}: {old!r} → {new!r}"


def _shorten(line: str) -> str:
    return line if len(line) <= PARAM_WIDTH else line[: PARAM_WIDTH - 1] + "…"


def goal_sentence(model: MLModel, result: dict[str, Any]) -> str:
    if not model.goal_metric or model.goal_target is None:
        return "No business goal is set for this model."
    value = result.get("metrics", {}).get(model.goal_metric)
    return evaluation.describe_goal(
        model.goal_metric, model.goal_operator, model.goal_target, value
    )
