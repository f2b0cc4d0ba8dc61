"""Demo models with real trained versions, registered through the same service as uploads."""

from __future__ import annotations

import io

import skops.io as sio
from sqlmodel import select

from core.auth import Principal
from core.db import Database
from core.demo.data import (
    DemoModel,
    bike_demand_model,
    credit_risk_model,
    iris_or_breast_cancer_model,
)
from core.demo.people import DEMO_TEAM
from core.models import MLModel
from core.services import registry, users, versions

OWNER = "dana@demo.quorum"
GOAL_DESCRIPTIONS = {
    "credit-default-scorer": "Rank risky applicants well enough to price loans",
    "bike-demand-forecaster": "Hourly error small enough to rebalance stations in time",
    "tumour-benchmark-classifier": "Miss as few malignant cases as possible",
}


DEMO_BUILDERS = (
    ("credit-default-scorer", credit_risk_model),
    ("bike-demand-forecaster", bike_demand_model),
    ("tumour-benchmark-classifier", iris_or_breast_cancer_model),
)


def seed_models(db: Database) -> list[str]:
    owner = users.principal_by_email(db, OWNER)
    with db.read() as session:
        existing = {m.name for m in session.exec(select(MLModel))}
    created: list[str] = []
    for name, build in DEMO_BUILDERS:
        if name in existing:
            continue
        demo = build()
        model = registry.create_model(db, owner, _spec(demo))
        if demo.name in DEMO_CARDS:
            card = {"purpose": demo.purpose, **DEMO_CARDS[demo.name]}
            registry.update_card(db, owner, model.id or 0, card, row_version=model.row_version)
        created.append(f"model {demo.name}")
        created += _register_versions(db, owner, demo)
    return created


# The high-risk demo model's card is written in full: its policy requires every section.
DEMO_CARDS = {
    "credit-default-scorer": {
        "intended_use": (
            "Ranks consumer loan applications by the probability of default within 12 months, "
            "as one input to an underwriter who makes and explains the decision."
        ),
        "limitations": (
            "Trained on applications from one lender between 2019 and 2023; scores for thin "
            "credit files and for self-employed applicants are less reliable."
        ),
        "data": (
            "Synthetic applications with income, debt-to-income, employment length, credit "
            "history and region; the default label is observed 12 months after the decision."
        ),
        "ethics": (
            "Region is used only to check fairness and is not a feature; approval rates by "
            "region are compared at every release and monitored in production."
        ),
        "caveats": (
            "Recalibrate when the approval policy or the applicant mix changes; do not use the "
            "score for pricing or for marketing decisions."
        ),
    }
}


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


def seed_reviews(db: Database) -> list[str]:
    """Versions in every state, an open review with a thread, and a rollback in the history."""
    from core.models import Decision
    from core.services import deployments, reviews

    with db.read() as session:
        if session.exec(select(Decision).limit(1)).first() is not None:
            return []
    person = {
        p: users.principal_by_email(db, f"{p}@demo.quorum")
        for p in ("dana", "riley", "morgan", "casey")
    }
    dana, riley, morgan, casey = (person[p] for p in ("dana", "riley", "morgan", "casey"))
    credit, bike, tumour = (
        "credit-default-scorer",
        "bike-demand-forecaster",
        "tumour-benchmark-classifier",
    )

    for number in (1, 2):
        reviews.submit_for_review(db, dana, credit, number)
        reviews.decide(db, riley, credit, number, "approve", "Metrics and slices reviewed.")
        reviews.decide(db, casey, credit, number, "approve", "Validation file complete.")
        deployments.promote(db, riley, credit, number, "production", f"Release of v{number}")
    registry.archive_version(db, dana, credit, 1, "Superseded by v2 in production")
    reviews.submit_for_review(db, dana, credit, 3, note="Balanced class weights: recall up a lot.")
    reviews.add_comment(
        db,
        riley,
        credit,
        3,
        "Recall on the south region still trails the "
        "others; @dana can you add a slice table for it?",
        anchor="chart: slices by group",
    )
    reviews.add_comment(
        db,
        dana,
        credit,
        3,
        "Added to the notes: south has the fewest "
        "defaults in the evaluation set; @riley see the slice chart.",
    )
    reviews.decide(db, riley, credit, 3, "approve", "Recall gain is worth the precision drop.")

    for number in (1, 2, 3):
        reviews.submit_for_review(db, dana, bike, number)
        reviews.decide(db, morgan, bike, number, "approve", "Error within goal on spring data.")
    deployments.promote(db, riley, bike, 1, "production", "First forecaster")
    deployments.promote(db, riley, bike, 2, "staging", "Shadow test")
    deployments.promote(db, riley, bike, 2, "production", "Lower error than v1")
    deployments.promote(db, riley, bike, 3, "staging", "Shadow test of Poisson loss")
    deployments.rollback(
        db, morgan, bike, "staging", "Night-time forecasts were worse in the shadow test"
    )

    reviews.submit_for_review(db, dana, tumour, 1)
    reviews.decide(
        db,
        riley,
        tumour,
        1,
        "reject",
        "A single tree misses too many malignant "
        "cases (recall 0.80); retrain with a linear or ensemble model.",
    )
    reviews.submit_for_review(db, dana, tumour, 2)
    reviews.decide(
        db,
        morgan,
        tumour,
        2,
        "request_changes",
        "Please add a calibration check and the reasoning for the threshold.",
    )
    return ["reviews, decisions, deployments and a rollback"]
