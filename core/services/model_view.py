"""Read models for the model page: the model, its versions, lineage, evaluations."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select

from core.auth import Principal
from core.db import Database
from core.models import Evaluation, MLModel, ModelVersion, Team, User
from core.services import read_as
from core.services.compare import live_version
from core.services.registry import CARD_SECTIONS, get_model, state_label, versions_of
from core.services.reviews import user_names
from core.services.versions import same_file_warnings


@dataclass(frozen=True)
class VersionView:
    version: ModelVersion
    state_label: str
    registered_by: str
    parent_number: int | None
    evaluation: Evaluation | None
    same_artifact_as: tuple[int, ...] = ()  # earlier versions holding the very same file

    @property
    def warnings(self) -> list[str]:
        return same_file_warnings(f"v{self.version.number}'s file", self.same_artifact_as)


@dataclass(frozen=True)
class ModelDetail:
    model: MLModel
    team: str
    owner: str
    versions: list[VersionView]
    live: dict[str, int]

    def version(self, number: int) -> VersionView:
        return next(v for v in self.versions if v.version.number == number)


def model_detail(
    db: Database, actor: Principal, name: str, environments: tuple[str, ...]
) -> ModelDetail:
    with read_as(db, actor) as session:
        model = get_model(session, actor, name)
        team = session.get(Team, model.team_id)
        owner = session.get(User, model.owner_id)
        rows = versions_of(session, model.id or 0)
        people = user_names(session, {v.registered_by_id for v in rows})
        numbers = {v.id: v.number for v in rows}
        evaluations = {
            e.version_id: e
            for e in session.exec(
                select(Evaluation).where(col(Evaluation.version_id).in_([v.id for v in rows]))
            )
        }
        live = {}
        for env in environments:
            current = live_version(session, model, env)
            if current is not None:
                live[env] = current.number
        return ModelDetail(
            model=model,
            team=team.name if team else "?",
            owner=owner.name if owner else "?",
            versions=[
                VersionView(
                    v,
                    state_label(v.state),
                    people.get(v.registered_by_id, "?"),
                    numbers.get(v.parent_id),
                    evaluations.get(v.id or 0),
                    tuple(
                        sorted(
                            o.number
                            for o in rows
                            if o.number < v.number and o.artifact_sha256 == v.artifact_sha256
                        )
                    ),
                )
                for v in rows
            ],
            live=live,
        )


def card_markdown(detail: ModelDetail) -> str:
    m = detail.model
    lines = [
        f"# Model card: {m.name}",
        "",
        f"- Team: {detail.team}",
        f"- Owner: {detail.owner}",
        f"- Task: {m.task.replace('_', ' ')}",
        f"- Risk tier: {m.risk_tier}",
    ]
    if m.goal_metric:
        lines.append(
            f"- Business goal: {m.goal_metric} {m.goal_operator} {m.goal_target}"
            + (f" ({m.goal_description})" if m.goal_description else "")
        )
    for section in CARD_SECTIONS:
        lines += [
            "",
            f"## {section.replace('_', ' ').capitalize()}",
            "",
            m.model_card.get(section, "") or "_Not written yet._",
        ]
    latest = detail.versions[0] if detail.versions else None
    if latest and latest.evaluation:
        lines += ["", f"## Metrics (v{latest.version.number})", ""]
        for key, value in latest.evaluation.result.get("metrics", {}).items():
            if value is not None:
                lines.append(f"- {key}: {value:.4f}")
        fairness = latest.evaluation.result.get("fairness") or {}
        if fairness:
            lines += ["", "## Fairness", ""]
            lines += [f"- {k}: {v}" for k, v in fairness.items()]
    return "\n".join(lines) + "\n"


def card_json(detail: ModelDetail) -> str:
    m = detail.model
    latest = detail.versions[0] if detail.versions else None
    payload: dict[str, Any] = {
        "model": m.name,
        "team": detail.team,
        "owner": detail.owner,
        "task": m.task,
        "risk_tier": m.risk_tier,
        "goal": {
            "metric": m.goal_metric,
            "operator": m.goal_operator,
            "target": m.goal_target,
            "description": m.goal_description,
        },
        "card": {s: m.model_card.get(s, "") for s in CARD_SECTIONS},
        "tags": m.tags,
        "latest_version": None
        if latest is None
        else {
            "number": latest.version.number,
            "state": latest.version.state,
            "artifact_sha256": latest.version.artifact_sha256,
            "metrics": latest.evaluation.result.get("metrics") if latest.evaluation else None,
            "fairness": latest.evaluation.result.get("fairness") if latest.evaluation else None,
        },
    }
    return json.dumps(payload, indent=2, default=str)
