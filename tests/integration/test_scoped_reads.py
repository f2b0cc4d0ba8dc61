"""R12: reads are scoped to the teams where a person holds a role. Every read service x every
role x a model of the actor's own team and one of another team: the own team's model reads,
the other team's answers exactly like a model that does not exist (NotFound, one sentence),
and a signed-in person with no role sees nothing at all. Global roles see every team.

The world is built once per module in a SQLite template file; each test works on a copy.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression

from core import config, demo, migrate
from core.auth import Principal, principal_for
from core.db import Database
from core.errors import NotFound, PermissionDenied
from core.models import Role, User
from core.services import (
    audit_trail,
    board,
    compare,
    compliance,
    deployments,
    model_view,
    monitoring,
    portfolio,
    registry,
    reviews,
    users,
    versions,
)

OWN = "risk-scorer"  # team risk-analytics (the demo team)
OTHER = "fraud-scorer"  # team fraud
ENV = "staging"
ACTORS = ("dana", "riley", "blake", "casey", "ada", "fiona", "nora")
# who sees which model: team roles see their team, compliance and admin are global
SEES = {
    OWN: {"dana", "riley", "blake", "casey", "ada"},
    OTHER: {"fiona", "casey", "ada"},
}


def _frame(seed: int, n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 2)), columns=["income", "debt"])
    frame["y"] = (frame["debt"] > frame["income"]).astype(int)
    return frame


def _upload(model: str, seed: int) -> versions.VersionUpload:
    frame = _frame(seed)
    estimator = LogisticRegression().fit(frame[["income", "debt"]], frame["y"])
    return versions.VersionUpload(
        model=model,
        model_file=sio.dumps(estimator),
        model_filename="model.skops",
        eval_file=frame.to_csv(index=False).encode(),
        eval_filename="evaluation.csv",
    )


def _production(seed: int) -> bytes:
    frame = _frame(seed, 96)
    stamps = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(96) * 1800, "s")
    frame.insert(0, "timestamp", stamps)
    frame.insert(1, "prediction_id", [f"{seed}-{i}" for i in range(96)])
    return frame.drop(columns=["y"]).to_csv(index=False).encode()


def _by_email(db: Database, name: str) -> Principal:
    with db.read() as session:
        return principal_for(session, users.user_by_email(session, f"{name}@demo.quorum"))


def _build(db: Database) -> None:
    """Two teams with one live, monitored, discussed model each."""
    demo.seed(db, with_models=False)
    with db.write() as session:
        session.add(User(email="nora@demo.quorum", name="Nora Noroles", is_demo=True))
    ada = _by_email(db, "ada")
    fraud = users.create_team(db, ada, "fraud", "Card fraud models")
    for name, role in (("fiona", Role.DATA_SCIENTIST), ("rex", Role.REVIEWER)):
        person = users.create_user(db, ada, f"{name}@demo.quorum", name.title())
        users.grant_role(db, ada, person.id or 0, role, fraud.id)
    for model, team, author, reviewer in (
        (OWN, demo.DEMO_TEAM, "sam", "riley"),
        (OTHER, "fraud", "fiona", "rex"),
    ):
        scientist, checker = _by_email(db, author), _by_email(db, reviewer)
        spec = registry.ModelSpec(name=model, team=team, task="binary_classification", target="y")
        registry.create_model(db, scientist, spec)
        for seed in (1, 2):
            versions.register_version(db, scientist, _upload(model, seed))
        reviews.submit_for_review(db, scientist, model, 1)
        reviews.decide(db, checker, model, 1, "approve", "fine")
        deployments.promote(db, checker, model, 1, ENV, "shadow")
        reviews.add_comment(db, checker, model, 2, "Compare with v1 please.")
        monitoring.ingest(db, scientist, model, _production(7), env=ENV, filename="day.csv")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scoped") / "quorum.db"
    url = f"sqlite:///{path}"
    config.reset_settings()
    migrate.upgrade(url)
    db = Database(url)
    _build(db)
    db.dispose()
    return path


@pytest.fixture
def world_db(template: Path, tmp_path: Path) -> Iterator[Database]:
    for suffix in ("", "-wal", "-shm"):
        source = template.with_name(template.name + suffix)
        if source.exists():
            shutil.copy(source, tmp_path / f"quorum.db{suffix}")
    db = Database(f"sqlite:///{tmp_path / 'quorum.db'}")
    yield db
    db.dispose()


@dataclass(frozen=True)
class Read:
    name: str
    call: Callable[[Database, Principal, str], Any]


def _versions(db: Database, actor: Principal, model: str) -> list[int]:
    with db.read() as session:
        found = registry.get_model(session, actor, model)
        return [v.number for v in registry.versions_of(session, found.id or 0)]


def _evaluation(db: Database, actor: Principal, model: str) -> Any:
    detail = model_view.model_detail(db, actor, model, (ENV,))
    return detail.version(1).evaluation


# every read of one model; each must answer NotFound for a model the actor cannot see
READS = [
    Read("registry.get_model", lambda db, p, m: _versions(db, p, m)),
    Read("model_view.model_detail", lambda db, p, m: model_view.model_detail(db, p, m, (ENV,))),
    Read("evaluation", _evaluation),
    Read("compare.compare", lambda db, p, m: compare.compare(db, p, m, 2)),
    Read("reviews.review_detail", lambda db, p, m: reviews.review_detail(db, p, m, 1)),
    Read("reviews.comments_of", lambda db, p, m: reviews.comments_of(db, p, m, 2)),
    Read("deployments.status", lambda db, p, m: deployments.status(db, p, m)),
    Read("deployments.history", lambda db, p, m: deployments.history(db, p, m)),
    Read("deployments.readiness", lambda db, p, m: deployments.readiness(db, p, m, 1)),
    Read(
        "deployments.live_at",
        lambda db, p, m: deployments.live_at(db, p, m, ENV, pd.Timestamp.now(tz="UTC")),
    ),
    Read("monitoring.report", lambda db, p, m: monitoring.report(db, p, m, ENV)),
    Read("monitoring.monitoring_data", lambda db, p, m: monitoring.monitoring_data(db, p, m, ENV)),
    Read("monitoring.alerts", lambda db, p, m: monitoring.alerts(db, p, m, ENV)),
    Read("monitoring.retraining_tasks", lambda db, p, m: monitoring.retraining_tasks(db, p, m)),
    Read(
        "monitoring.data_fingerprint", lambda db, p, m: monitoring.data_fingerprint(db, p, m, ENV)
    ),
    Read("compliance.checklists", lambda db, p, m: compliance.checklists(db, p, m, 1)),
    Read("compliance.signoffs", lambda db, p, m: compliance.signoffs(db, p, m, 1)),
    Read(
        "compliance.version_compliance",
        lambda db, p, m: compliance.version_compliance(db, p, m, 1),
    ),
    Read("compliance.timeline", lambda db, p, m: compliance.timeline(db, p, m)),
    Read("versions.artifact_of (live)", lambda db, p, m: versions.artifact_of(db, p, m, env=ENV)),
    Read("versions.artifact_of (number)", lambda db, p, m: versions.artifact_of(db, p, m, 2)),
]


@pytest.mark.parametrize("model", [OWN, OTHER])
@pytest.mark.parametrize("actor_name", ACTORS)
@pytest.mark.parametrize("read", READS, ids=lambda r: r.name)
def test_read_matrix(read: Read, actor_name: str, model: str, world_db: Database) -> None:
    actor = _by_email(world_db, actor_name)
    if actor_name in SEES[model]:
        assert read.call(world_db, actor, model) is not None
        return
    with pytest.raises(NotFound) as hidden:
        read.call(world_db, actor, model)
    with pytest.raises(NotFound) as absent:
        read.call(world_db, actor, "no-such-model")
    assert hidden.value.user_message == absent.value.user_message.replace("no-such-model", model)
    assert "is visible to you" in hidden.value.user_message


# listings: another team's model is simply not there
LISTINGS: list[tuple[str, Callable[[Database, Principal], list[str]]]] = [
    (
        "registry.list_models",
        lambda db, p: [m.name for m in _in_session(db, lambda s: registry.list_models(s, p))],
    ),
    ("portfolio.model_names", lambda db, p: portfolio.model_names(db, p)),
    ("portfolio.portfolio", lambda db, p: [r.name for r in portfolio.portfolio(db, p).models]),
    ("board.health_board", lambda db, p: [r.model for r in board.health_board(db, p)]),
    ("monitoring.monitored_models", lambda db, p: monitoring.monitored_models(db, p)),
    (
        "compliance.compliance_queue",
        lambda db, p: [r.model for r in compliance.compliance_queue(db, p)],
    ),
    ("reviews.review_queue", lambda db, p: [q.model for q in reviews.review_queue(db, p)]),
]


def _in_session(db: Database, fn: Callable[[Any], Any]) -> Any:
    with db.read() as session:
        return fn(session)


@pytest.mark.parametrize("actor_name", ACTORS)
@pytest.mark.parametrize("listing", LISTINGS, ids=lambda item: item[0])
def test_listings_hold_only_visible_models(
    listing: tuple[str, Callable[[Database, Principal], list[str]]],
    actor_name: str,
    world_db: Database,
) -> None:
    name, list_them = listing
    actor = _by_email(world_db, actor_name)
    listed = set(list_them(world_db, actor))
    for model in (OWN, OTHER):
        if actor_name not in SEES[model]:
            assert model not in listed, f"{name} shows {model} to {actor_name}"
    if name in (
        "registry.list_models",
        "portfolio.model_names",
        "portfolio.portfolio",
        "board.health_board",
    ):
        assert listed == {m for m in (OWN, OTHER) if actor_name in SEES[m]}
    if actor_name == "nora":
        assert listed == set()


def test_portfolio_counts_and_recent_events_hold_only_visible_models(world_db: Database) -> None:
    dana, nora, ada = (_by_email(world_db, n) for n in ("dana", "nora", "ada"))
    with world_db.read() as session:
        other_id = registry.get_model(session, ada, OTHER).id
    mine = portfolio.portfolio(world_db, dana, recent=500)
    everything = portfolio.portfolio(world_db, ada, recent=500)
    assert mine.total_models == 1 and everything.total_models == 2
    assert sum(mine.state_counts.values()) == 1 and mine.live_count == 1
    assert all(e.model_id != other_id for e in mine.recent)
    assert any(e.model_id == other_id for e in everything.recent)
    nothing = portfolio.portfolio(world_db, nora, recent=500)
    assert (nothing.total_models, nothing.live_count, nothing.recent) == (0, 0, [])


def test_audit_events_of_another_team_are_not_readable(world_db: Database) -> None:
    riley, casey, ada = (_by_email(world_db, n) for n in ("riley", "casey", "ada"))
    rex = _by_email(world_db, "rex")
    with world_db.read() as session:
        own_id = registry.get_model(session, ada, OWN).id
        other_id = registry.get_model(session, ada, OTHER).id
    assert audit_trail.search(world_db, riley, model_id=other_id) == []
    assert audit_trail.search(world_db, rex, model_id=own_id) == []
    assert audit_trail.search(world_db, riley, model_id=own_id)
    assert audit_trail.search(world_db, rex, model_id=other_id)
    seen_by_riley = {e.model_id for e in audit_trail.search(world_db, riley)}
    assert seen_by_riley == {own_id}, "a team reviewer reads only its team's model events"
    assert {own_id, other_id, None} <= {e.model_id for e in audit_trail.search(world_db, casey)}
    for name in ("dana", "blake", "fiona", "nora"):
        with pytest.raises(PermissionDenied):
            audit_trail.search(world_db, _by_email(world_db, name))


def test_evidence_document_of_another_team_is_not_readable(world_db: Database) -> None:
    casey, fiona = _by_email(world_db, "casey"), _by_email(world_db, "fiona")
    lists = compliance.checklists(world_db, casey, OTHER, 1)
    item = lists[0].items[0]
    evidence = compliance.add_evidence(
        world_db,
        casey,
        OTHER,
        1,
        lists[0].key,
        item.key,
        kind="document",
        document=b"validation report",
        filename="report.txt",
    )
    assert compliance.evidence_document(world_db, fiona, evidence.id or 0)[1] == (
        b"validation report"
    )
    for name in ("dana", "riley", "nora"):
        with pytest.raises(NotFound, match="visible to you"):
            compliance.evidence_document(world_db, _by_email(world_db, name), evidence.id or 0)


def test_mutations_on_another_teams_model_answer_as_absent(world_db: Database) -> None:
    """A data scientist of one team may edit cards, but another team's model is not there."""
    dana = _by_email(world_db, "dana")
    with world_db.read() as session:
        other = registry.get_model(session, _by_email(world_db, "ada"), OTHER)
    with pytest.raises(NotFound, match="visible to you"):
        registry.update_card(
            world_db, dana, other.id or 0, {"purpose": "x"}, row_version=other.row_version
        )
    with pytest.raises(NotFound, match="visible to you"):
        registry.archive_version(world_db, dana, OTHER, 2, "mine now")
    with pytest.raises(NotFound, match="visible to you"):
        versions.prepare_version(world_db, dana, _upload(OTHER, 3))


def test_a_mention_does_not_reach_someone_who_cannot_see_the_model(world_db: Database) -> None:
    riley = _by_email(world_db, "riley")
    reviews.add_comment(world_db, riley, OWN, 2, "@fiona and @dana, have a look at v2.")
    fiona, dana = _by_email(world_db, "fiona"), _by_email(world_db, "dana")
    assert [n for n in portfolio.inbox(world_db, fiona) if n.kind == "mention"] == []
    assert len([n for n in portfolio.inbox(world_db, dana) if n.kind == "mention"]) == 1
