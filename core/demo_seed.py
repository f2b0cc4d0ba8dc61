"""Demo models with real trained versions, registered through the same service as uploads."""

from __future__ import annotations

import io

import skops.io as sio
from sqlmodel import select

from core.auth import Principal
from core.db import Database
from core.demo import DEMO_TEAM
from core.demo_data import DemoModel, demo_models
from core.models import MLModel
from core.services import registry, users, versions

OWNER = "dana@demo.quorum"
GOAL_DESCRIPTIONS = {
    "credit-default-scorer": "Rank risky applicants well enough to price loans",
    "bike-demand-forecaster": "Hourly error small enough to rebalance stations in time",
    "tumour-benchmark-classifier": "Miss as few malignant cases as possible",
}


def seed_models(db: Database) -> list[str]:
    owner = users.principal_by_email(db, OWNER)
    with db.read() as session:
        existing = {m.name for m in session.exec(select(MLModel))}
    created: list[str] = []
    for demo in demo_models():
        if demo.name in existing:
            continue
        registry.create_model(db, owner, _spec(demo))
        created.append(f"model {demo.name}")
        created += _register_versions(db, owner, demo)
    return created


def _spec(demo: DemoModel) -> registry.ModelSpec:
    return registry.ModelSpec(
        name=demo.name,
        team=DEMO_TEAM,
        task=demo.task,
        purpose=demo.purpose,
        risk_tier=demo.risk_tier,
        target=demo.target,
        sensitive_column=demo.sensitive,
        goal_metric=demo.goal_metric,
        goal_operator=demo.goal_operator,
        goal_target=demo.goal_target,
        goal_description=GOAL_DESCRIPTIONS.get(demo.name, ""),
        tags=demo.tags,
    )


def _register_versions(db: Database, owner: Principal, demo: DemoModel) -> list[str]:
    created = []
    for version in demo.versions:
        buffer = io.BytesIO()
        version.evaluation.to_csv(buffer, index=False)
        upload = versions.VersionUpload(
            model=demo.name,
            model_file=sio.dumps(version.estimator),
            model_filename=f"{demo.name}.skops",
            eval_file=buffer.getvalue(),
            eval_filename=f"{demo.name}-evaluation.csv",
            notes=version.notes,
            code_ref=version.code_ref,
            training_data=version.train,
        )
        registered = versions.register_version(db, owner, upload)
        created.append(f"{demo.name} v{registered.number}")
    return created
