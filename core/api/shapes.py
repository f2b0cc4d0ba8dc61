"""Read models as JSON: the same facts the pages show, in the API's field names."""

from __future__ import annotations

from typing import Any

from core.models import Evaluation, MLModel, ModelVersion
from core.services.model_view import ModelDetail, VersionView


def goal(model: MLModel) -> dict[str, Any]:
    return {
        "metric": model.goal_metric,
        "operator": model.goal_operator,
        "target": model.goal_target,
        "description": model.goal_description,
    }


def model(detail: ModelDetail) -> dict[str, Any]:
    m = detail.model
    return {
        "name": m.name,
        "team": detail.team,
        "owner": detail.owner,
        "task": m.task,
        "risk_tier": m.risk_tier,
        "purpose": m.purpose,
        "target": m.target,
        "sensitive_column": m.sensitive_column,
        "goal": goal(m),
        "tags": m.tags,
        "card": m.model_card,
        "archived": m.archived_at is not None,
        "versions": [
            {
                "number": v.version.number,
                "state": v.version.state,
                "created_at": v.version.created_at,
                "registered_by": v.registered_by,
                "artifact_sha256": v.version.artifact_sha256,
            }
            for v in detail.versions
        ],
        "live": detail.live,
    }


def evaluation(ev: Evaluation | None) -> dict[str, Any] | None:
    if ev is None:
        return None
    return {
        "metrics": ev.result.get("metrics", {}),
        "fairness": ev.result.get("fairness"),
        "n_rows": ev.n_rows,
        "dataset_sha256": ev.dataset_sha256,
        "target": ev.target,
        "sensitive_column": ev.sensitive_column,
    }


def version(model_name: str, view: VersionView) -> dict[str, Any]:
    v: ModelVersion = view.version
    return {
        "model": model_name,
        "number": v.number,
        "state": v.state,
        "artifact_sha256": v.artifact_sha256,
        "artifact_size": v.artifact_size,
        "artifact_format": v.artifact_format,
        "estimator_class": v.estimator_class,
        "library_versions": v.library_versions,
        "feature_names": v.feature_names,
        "decision_threshold": v.decision_threshold,
        "warnings": view.warnings,
        "params": v.params,
        "tags": v.tags,
        "notes": v.notes,
        "code_ref": v.code_ref,
        "parent": view.parent_number,
        "registered_by": view.registered_by,
        "created_at": v.created_at,
        "evaluation": evaluation(view.evaluation),
    }
