"""Demo findings and revalidation: an open finding on the live credit scorer, and a live bike
forecaster whose approval is older than the medium-risk revalidation interval (overdue)."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select

from core.db import Database
from core.models import Decision, DecisionKind, Finding, utcnow
from core.services import findings, registry, revalidation, users

CREDIT, BIKE = "credit-default-scorer", "bike-demand-forecaster"
APPROVED_MONTHS_AGO = 25  # the medium-risk policy asks for revalidation every 24 months


def seed_findings(db: Database) -> list[str]:
    with db.read() as session:
        if session.exec(select(Finding).limit(1)).first() is not None:
            return []
    morgan = users.principal_by_email(db, "morgan@demo.quorum")
    findings.raise_finding(
        db,
        morgan,
        CREDIT,
        2,
        severity="medium",
        text="Calibration above a 0.6 score is not shown for the south region; add the "
        "calibration chart by region and say whether the threshold still holds there.",
        owner="dana@demo.quorum",
        due_on=utcnow().date() + timedelta(days=21),
        anchor="chart: calibration",
    )
    _approved_long_ago(db, BIKE, 2)
    revalidation.notify_due(db)
    return ["an open finding on the credit scorer and an overdue revalidation of the forecaster"]


def _approved_long_ago(db: Database, model_name: str, number: int) -> None:
    """The demo's history: the forecaster's live version was approved over two years ago."""
    then = utcnow() - timedelta(days=31 * APPROVED_MONTHS_AGO)
    with db.write() as session:
        version = registry.get_version(session, registry.model_row(session, model_name), number)
        rows = session.exec(
            select(Decision).where(
                Decision.version_id == version.id,
                Decision.kind == DecisionKind.APPROVE,
                col(Decision.review_round) == version.review_round,
            )
        ).all()
        for d in rows:
            d.created_at = then
            session.add(d)
