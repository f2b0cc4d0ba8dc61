"""R1 for the registry, review and deployment services: each mutating service x each role.
Allowed roles succeed; everyone else gets PermissionDenied, one 'permission.denied' audit
event, and no other change (rows or stored files).

The world (people, a model, versions in every needed state) is built once per module in a
SQLite template file; each test works on its own copy.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sqlmodel import SQLModel

from core import audit, audit_anchor, config, demo, migrate
from core.artifacts import default_store
from core.auth import ROLE_PERMISSIONS, SYSTEM, Permission, Principal, principal_for
from core.config import get_settings
from core.db import Database
from core.errors import PermissionDenied
from core.models import Role, User
from core.services import deployments, findings, registry, revalidation, reviews, users, versions

MODEL = "perm-scorer"
OTHER = "perm-retired"
EMAILS: dict[Role | None, str] = {
    Role.DATA_SCIENTIST: "dana@demo.quorum",
    Role.REVIEWER: "riley@demo.quorum",
    Role.BUSINESS: "blake@demo.quorum",
    Role.COMPLIANCE: "casey@demo.quorum",
    Role.ADMIN: "ada@demo.quorum",
    None: "nora@demo.quorum",
}
ALL_ROLES: tuple[Role | None, ...] = tuple(EMAILS)
DUE = date.today() + timedelta(days=30)


def upload(seed: int) -> versions.VersionUpload:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(100, 2)), columns=["income", "debt"])
    frame["y"] = (frame["debt"] > frame["income"]).astype(int)
    estimator = LogisticRegression().fit(frame[["income", "debt"]], frame["y"])
    return versions.VersionUpload(
        model=MODEL,
        model_file=sio.dumps(estimator),
        model_filename="model.skops",
        eval_file=frame.to_csv(index=False).encode(),
        eval_filename="evaluation.csv",
    )


def _build(db: Database) -> None:
    """v1 registered, v2 in review, v3 and v4 approved and live in staging one after the other,
    v4 live in production with an open finding (#1) and a closed one (#2)."""
    demo.seed(db, with_models=False)
    with db.write() as session:
        session.add(User(email=EMAILS[None], name="Nora Noroles", is_demo=True))
    sam, riley = (users.principal_by_email(db, f"{n}@demo.quorum") for n in ("sam", "riley"))
    for name in (MODEL, OTHER):
        spec = registry.ModelSpec(
            name=name, team=demo.DEMO_TEAM, task="binary_classification", target="y"
        )
        registry.create_model(db, sam, spec)
    for seed in range(4):
        versions.register_version(db, sam, upload(seed))
    for number in (2, 3, 4):
        reviews.submit_for_review(db, sam, MODEL, number)
    for number in (3, 4):
        reviews.decide(db, riley, MODEL, number, "approve")
        deployments.promote(db, riley, MODEL, number, "staging")
    deployments.promote(db, riley, MODEL, 4, "production")
    casey = users.principal_by_email(db, "casey@demo.quorum")
    for text in ("Open: thresholds undocumented.", "Closed: slice metrics missing."):
        made = findings.raise_finding(
            db, riley, MODEL, 4, severity="low", text=text, owner="sam@demo.quorum", due_on=DUE
        )
    findings.close_finding(db, casey, made.id or 0, "slices added")


@pytest.fixture(scope="module")
def one_audit_key() -> Iterator[None]:
    """The template store and its per-test copies share one audit key, so a copy's trail still
    verifies (the development key is otherwise generated per store location)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QUORUM_AUDIT_KEY", "permission-matrix-audit-key-" + "5" * 32)
        config.reset_settings()
        yield
    config.reset_settings()


@pytest.fixture(scope="module")
def template(one_audit_key: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "quorum.db"
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


def actor_for(db: Database, role: Role | None) -> Principal:
    with db.read() as session:
        return principal_for(session, users.user_by_email(session, EMAILS[role]))


@dataclass(frozen=True)
class ServiceCase:
    name: str
    permission: Permission
    call: Callable[[Database, Principal], Any]


def _model_id(db: Database, name: str) -> tuple[int, int]:
    with db.read() as session:
        model = registry.model_row(session, name)
        return model.id or 0, model.row_version


CASES = [
    ServiceCase(
        "registry.create_model",
        Permission.REGISTER_MODEL,
        lambda db, p: registry.create_model(
            db,
            p,
            registry.ModelSpec(name="new-model", team=demo.DEMO_TEAM, task="regression"),
        ),
    ),
    ServiceCase(
        "registry.update_card",
        Permission.EDIT_MODEL,
        lambda db, p: registry.update_card(
            db,
            p,
            _model_id(db, MODEL)[0],
            {"purpose": "Scores applicants.", "limitations": "Synthetic data."},
            row_version=_model_id(db, MODEL)[1],
        ),
    ),
    ServiceCase(
        "registry.archive_model",
        Permission.ARCHIVE,
        lambda db, p: registry.archive_model(db, p, _model_id(db, OTHER)[0], "Retired."),
    ),
    ServiceCase(
        "registry.archive_version",
        Permission.ARCHIVE,
        lambda db, p: registry.archive_version(db, p, MODEL, 1, "Superseded."),
    ),
    ServiceCase(
        "versions.register_version",
        Permission.REGISTER_MODEL,
        lambda db, p: versions.register_version(db, p, upload(9)),
    ),
    ServiceCase(
        "reviews.update_policy",
        Permission.MANAGE_POLICIES,
        lambda db, p: reviews.update_policy(
            db, p, "medium", min_approvals=2, required_roles=["reviewer"], row_version=0
        ),
    ),
    ServiceCase(
        "reviews.submit_for_review",
        Permission.SUBMIT_REVIEW,
        lambda db, p: reviews.submit_for_review(db, p, MODEL, 1),
    ),
    ServiceCase(
        "reviews.decide (approve)",
        Permission.DECIDE,
        lambda db, p: reviews.decide(db, p, MODEL, 2, "approve"),
    ),
    ServiceCase(
        "reviews.decide (reject)",
        Permission.DECIDE,
        lambda db, p: reviews.decide(db, p, MODEL, 2, "reject", "Too few rows."),
    ),
    ServiceCase(
        "reviews.add_comment",
        Permission.COMMENT,
        lambda db, p: reviews.add_comment(db, p, MODEL, 2, "Looks fine, @riley?"),
    ),
    ServiceCase(
        "deployments.promote",
        Permission.DEPLOY,
        lambda db, p: deployments.promote(db, p, MODEL, 3, "production", "release"),
    ),
    ServiceCase(
        "findings.raise_finding",
        Permission.DECIDE,
        lambda db, p: findings.raise_finding(
            db,
            p,
            MODEL,
            3,
            severity="high",
            text="No fairness check.",
            owner="sam@demo.quorum",
            due_on=DUE,
        ),
    ),
    ServiceCase(
        "findings.close_finding",
        Permission.DECIDE,
        lambda db, p: findings.close_finding(db, p, 1, "thresholds now documented"),
    ),
    ServiceCase(
        "findings.reopen_finding",
        Permission.DECIDE,
        lambda db, p: findings.reopen_finding(db, p, 2, "slices still missing for age"),
    ),
    ServiceCase(
        "revalidation.start_revalidation",
        Permission.DECIDE,
        lambda db, p: revalidation.start_revalidation(db, p, MODEL, 4, "annual"),
    ),
    ServiceCase(
        "deployments.rollback",
        Permission.DEPLOY,
        lambda db, p: deployments.rollback(db, p, MODEL, "staging", "v4 misbehaves"),
    ),
]


def allowed_roles(permission: Permission) -> set[Role]:
    return {role for role, granted in ROLE_PERMISSIONS.items() if permission in granted}


def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order (SQLite keeps the schema fixed here)."""
    with db.engine.connect() as conn:
        return {
            table.name: [
                tuple(r) for r in conn.execute(table.select().order_by(*table.primary_key))
            ]
            for table in SQLModel.metadata.sorted_tables
        }


def stored_files() -> set[str]:
    return set(default_store().keys())


@pytest.mark.parametrize("role", ALL_ROLES, ids=lambda r: "no_role" if r is None else r.value)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_permission_matrix(case: ServiceCase, role: Role | None, world_db: Database) -> None:
    actor = actor_for(world_db, role)
    before, files_before = snapshot(world_db), stored_files()

    if role in allowed_roles(case.permission):
        case.call(world_db, actor)
        after = snapshot(world_db)
        new_events = after["audit_event"][len(before["audit_event"]) :]
        assert new_events, "an allowed mutation writes its audit event"
        with world_db.read() as session:
            newest = audit.query(session, audit.AuditFilter(limit=len(new_events)))
            assert audit_anchor.verify(session, get_settings()).intact
        assert all(e.actor_id == actor.user_id for e in newest)
        assert all(e.action != "permission.denied" for e in newest)
        return

    with pytest.raises(PermissionDenied) as refused:
        case.call(world_db, actor)
    assert refused.value.permission == case.permission.name
    assert "ask an admin" in refused.value.user_message.lower()
    after = snapshot(world_db)
    for table, rows in before.items():
        if table != "audit_event":
            assert after[table] == rows, f"{case.name} changed {table} although it was refused"
    assert stored_files() == files_before, "a refused call stored a file"
    added = after["audit_event"][len(before["audit_event"]) :]
    assert after["audit_event"][: len(before["audit_event"])] == before["audit_event"]
    assert len(added) == 1
    with world_db.read() as session:
        (denial,) = audit.query(session, audit.AuditFilter(limit=1))
        assert audit_anchor.verify(session, get_settings()).intact
    assert denial.action == "permission.denied"
    assert denial.actor_id == actor.user_id
    assert denial.object_id == case.permission.name
    assert actor.email in denial.summary


def test_every_role_is_allowed_something_and_refused_something() -> None:
    for role in Role:
        outcomes = {role in allowed_roles(c.permission) for c in CASES}
        assert outcomes == ({True} if role is Role.ADMIN else {True, False}), role


def test_template_world_has_the_states_the_cases_need(world_db: Database) -> None:
    with world_db.read() as session:
        model = registry.model_row(session, MODEL)
        states = {v.number: v.state for v in registry.versions_of(session, model.id or 0)}
    assert states == {1: "registered", 2: "in_review", 3: "approved", 4: "approved"}
    assert deployments.status(world_db, SYSTEM, MODEL) == {"staging": 4, "production": 4}
    assert [f.status for f in findings.findings(world_db, SYSTEM, MODEL)] == ["closed", "open"]
