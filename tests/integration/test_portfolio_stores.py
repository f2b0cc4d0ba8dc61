"""The portfolio's team-scoped reads on both stores (SQLite and PostgreSQL): the recent events
(read per visible model on PostgreSQL) and the state counts are what a plain filter over the
whole trail and every version gives, with another team's newer events in between."""

from __future__ import annotations

from sqlmodel import col, func, select

from core import audit, demo
from core.auth import Role
from core.db import Database
from core.models import AuditEvent, MLModel, ModelVersion
from core.services import portfolio, registry, reviews, users, versions
from core.services.registry import state_label
from tests.integration.test_scoped_reads import _upload

MODELS = {"scoped-a": demo.DEMO_TEAM, "scoped-b": demo.DEMO_TEAM, "scoped-other": "fraud"}


def _expected_recent(db: Database, team_ids: set[int], n: int) -> list[int]:
    with db.read() as session:
        visible = select(MLModel.id).where(col(MLModel.team_id).in_(team_ids))
        return list(
            session.exec(
                select(AuditEvent.seq)
                .where(col(AuditEvent.model_id).in_(visible))
                .order_by(col(AuditEvent.seq).desc())
                .limit(n)
            ).all()
        )


def _expected_counts(db: Database, team_ids: set[int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    with db.read() as session:
        models = session.exec(
            select(MLModel.id).where(
                col(MLModel.team_id).in_(team_ids), col(MLModel.archived_at).is_(None)
            )
        ).all()
        for model_id in models:
            newest = session.exec(
                select(func.max(ModelVersion.number)).where(ModelVersion.model_id == model_id)
            ).one()
            if newest is None:
                continue
            state = session.exec(
                select(ModelVersion.state).where(
                    ModelVersion.model_id == model_id, ModelVersion.number == newest
                )
            ).one()
            counts[state_label(state)] = counts.get(state_label(state), 0) + 1
    return counts


def test_scoped_recent_events_and_counts_on_each_store(db: Database) -> None:
    demo.seed(db, with_models=False)
    ada = users.principal_by_email(db, "ada@demo.quorum")
    dana = users.principal_by_email(db, "dana@demo.quorum")
    fraud = users.create_team(db, ada, "fraud", "Card fraud models")
    fiona = users.create_user(db, ada, "fiona@demo.quorum", "Fiona")
    users.grant_role(db, ada, fiona.id or 0, Role.DATA_SCIENTIST, fraud.id)
    fiona_p = users.principal_by_email(db, "fiona@demo.quorum")
    ids = {}
    for name, team in MODELS.items():
        author = fiona_p if team == "fraud" else dana
        spec = registry.ModelSpec(name=name, team=team, task="binary_classification", target="y")
        ids[name] = registry.create_model(db, author, spec).id
    versions.register_version(db, dana, _upload("scoped-a", 1))
    versions.register_version(db, dana, _upload("scoped-a", 2))
    reviews.submit_for_review(db, dana, "scoped-a", 2)
    versions.register_version(db, dana, _upload("scoped-b", 3))
    versions.register_version(db, fiona_p, _upload("scoped-other", 4))
    with db.write() as session:  # interleaved events; the other team's are the newest
        for i in range(12):
            name = ("scoped-a", "scoped-b", "scoped-other")[i % 3] if i < 6 else "scoped-other"
            audit.record(
                session,
                ada,
                "model.note",
                object_type="model",
                object_id=ids[name],
                summary=f"note {i} on {name}",
                model_id=ids[name],
            )
    with db.read() as session:
        own = {registry.get_model(session, ada, "scoped-a").team_id}
    for n in (1, 2, 3, 5, 100):
        got = portfolio.portfolio(db, dana, recent=n)
        assert [e.seq for e in got.recent] == _expected_recent(db, own, n)
        assert all(e.model_id != ids["scoped-other"] for e in got.recent)
    assert portfolio.portfolio(db, dana, recent=0).recent == []
    everyone = portfolio.portfolio(db, ada, recent=3)
    assert {e.model_id for e in everyone.recent} == {ids["scoped-other"]}
    counts = portfolio.portfolio(db, dana).state_counts
    assert counts == _expected_counts(db, own) and sum(counts.values()) == 2
