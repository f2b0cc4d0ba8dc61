"""Months of production data for the live demo models, ingested like a real team would:
predictions in batches, labels later. The bike model's error rises with the summer traffic
(drift and degradation); the credit model sees a drift episode of stressed borrowers."""

from __future__ import annotations

import pandas as pd
from sqlmodel import select

from core.db import Database
from core.demo.data import (
    BIKE_TARGET,
    CREDIT_TARGET,
    bikeshare_production_stream,
    credit_production_stream,
)
from core.errors import NotFound
from core.models import InferenceBatch, ModelVersion
from core.services import monitoring, users
from core.services.compare import live_version
from core.services.registry import model_row

ACTOR = "dana@demo.quorum"
REVIEWER = "riley@demo.quorum"
SETTINGS = {"window": "W", "min_labelled": 50}
# The bike stream replays the real 2011 counts, years before the demo registers its versions;
# production data that old is refused by default, so the demo widens the accepted range.
REPLAY_DAYS = {"days_before_registration": 366 * 20}
ENV = "production"
BIKE, CREDIT = "bike-demand-forecaster", "credit-default-scorer"


def seed_monitoring(db: Database) -> list[str]:
    """Ingest the demo streams for each demo model live in production; skip what is not."""
    actor = users.principal_by_email(db, ACTOR)
    created: list[str] = []
    for name, target in ((BIKE, BIKE_TARGET), (CREDIT, CREDIT_TARGET)):
        version = _live(db, name)
        if version is None:
            created.append(f"{name}: nothing live in {ENV}, monitoring data skipped")
            continue
        if _already_seeded(db, name):
            continue
        settings = {**SETTINGS, **(REPLAY_DAYS if name == BIKE else {})}
        monitoring.configure(db, users.principal_by_email(db, REVIEWER), name, settings)
        stream = bikeshare_production_stream() if name == BIKE else credit_production_stream()
        batches = _monthly(stream)
        for month, batch in batches:
            frame = batch[["timestamp", "prediction_id", *version.feature_types]]
            monitoring.ingest(
                db, actor, name, frame, env=ENV, source="demo", filename=f"{name}-{month}.csv"
            )
            labels = batch[["prediction_id", target]].rename(columns={target: "label"})
            monitoring.ingest_labels(
                db, actor, name, labels, env=ENV, source="demo", filename=f"{month}-labels.csv"
            )
        created.append(f"{name}: {len(stream):,} production rows in {len(batches)} batches")
    return created


def _live(db: Database, name: str) -> ModelVersion | None:
    with db.read() as session:
        try:
            model = model_row(session, name)
        except NotFound:
            return None
        return live_version(session, model, ENV)


def _already_seeded(db: Database, name: str) -> bool:
    with db.read() as session:
        model = model_row(session, name)
        found = session.exec(
            select(InferenceBatch).where(
                InferenceBatch.model_id == model.id, InferenceBatch.source == "demo"
            )
        ).first()
        return found is not None


def _monthly(stream: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    months = pd.to_datetime(stream["timestamp"], utc=True).dt.strftime("%Y-%m")
    return [(str(month), part) for month, part in stream.groupby(months.to_numpy(), sort=True)]
