"""Demo models; replaced by real trained versions as the registry grows."""

from __future__ import annotations

from sqlmodel import select

from core.db import Database
from core.demo import DEMO_TEAM
from core.models import MLModel
from core.services import registry, users

DEMO_MODELS = (
    registry.ModelSpec(
        name="credit-default-scorer",
        team=DEMO_TEAM,
        task="binary_classification",
        purpose="Scores loan applications for the probability of default.",
        risk_tier="high",
        target="default",
        sensitive_column="region",
        goal_metric="roc_auc",
        goal_target=0.75,
        goal_description="Rank risky applicants well: ROC AUC at least 0.75",
        tags={"region": "eu", "domain": "credit"},
    ),
    registry.ModelSpec(
        name="bike-demand-forecaster",
        team=DEMO_TEAM,
        task="regression",
        purpose="Forecasts hourly bike rentals so vans rebalance stations in time.",
        risk_tier="medium",
        target="bikers",
        goal_metric="mae",
        goal_operator="<=",
        goal_target=60.0,
        goal_description="Hourly error at most 60 rentals",
        tags={"domain": "operations"},
    ),
)


def seed_models(db: Database) -> list[str]:
    owner = users.principal_by_email(db, "dana@demo.quorum")
    created = []
    for spec in DEMO_MODELS:
        with db.read() as session:
            exists = session.exec(select(MLModel).where(MLModel.name == spec.name)).first()
        if exists is None:
            registry.create_model(db, owner, spec)
            created.append(f"model {spec.name}")
    return created
