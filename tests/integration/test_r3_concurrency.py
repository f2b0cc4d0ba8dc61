"""R3: two OS processes with four worker threads each make concurrent approvals, promotions and
rollbacks on one store (500 on PostgreSQL, fewer on SQLite). Afterwards: at most one live
deployment per model and environment, every approval counted once, no lost update, the audit
chain verifies and every successful operation left exactly one audit event."""

from __future__ import annotations

import multiprocessing
import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sqlalchemy import func
from sqlalchemy.engine import make_url
from sqlmodel import col, select

from core import audit, audit_anchor, demo, migrate
from core.artifacts import ArtifactStore
from core.auth import OPERATOR, Principal
from core.config import get_settings
from core.db import Database
from core.errors import QuorumError
from core.models import AuditEvent, Decision, DecisionKind, Deployment, ModelVersion, Role
from core.services import deployments, reviews, users, versions
from core.services import registry as registry_service

PROCESSES = 2
THREADS = 4
MODELS = 3
VERSIONS_PER_MODEL = 6
PRE_APPROVED = 2
REVIEWERS = 8
MIN_APPROVALS = 3
ENVIRONMENTS = ("staging", "production")
FEATURES = ["income", "debt", "age"]
DANA = "dana@demo.quorum"
ADMIN = "ada@demo.quorum"
POSTGRES_ENV = "QUORUM_TEST_POSTGRES_URL"


def reviewer_email(i: int) -> str:
    return f"reviewer{i}@load.quorum"


def model_name(i: int) -> str:
    return f"load-model-{i}"


# --- the store ---------------------------------------------------------------------------------


def small_model_and_data() -> tuple[bytes, bytes]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(100, 3)), columns=FEATURES)
    frame["defaulted"] = (frame["debt"] - frame["income"] > 0).astype(int)
    model = LogisticRegression().fit(frame[FEATURES], frame["defaulted"])
    return sio.dumps(model), frame.to_csv(index=False).encode()


def prepare_store(db: Database, artifacts: ArtifactStore) -> None:
    """A few models of medium risk needing 3 approvals, each with versions in review, the first
    ones approved; eight reviewers."""
    demo.seed(db, with_models=False)
    admin = users.principal_by_email(db, ADMIN)
    dana = users.principal_by_email(db, DANA)
    reviews.update_policy(  # the operator sets the policy from the shell, alone
        db,
        OPERATOR,
        "medium",
        min_approvals=MIN_APPROVALS,
        required_roles=["reviewer"],
        row_version=0,
    )
    for i in range(REVIEWERS):
        person = users.create_user(db, admin, reviewer_email(i), f"Load Reviewer {i}")
        users.grant_role(db, admin, person.id or 0, Role.REVIEWER.value, None)
    model_file, eval_file = small_model_and_data()
    prepared = None
    for m in range(MODELS):
        name = model_name(m)
        registry_service.create_model(
            db,
            dana,
            registry_service.ModelSpec(
                name=name,
                team=demo.DEMO_TEAM,
                task="binary_classification",
                target="defaulted",
                risk_tier="medium",
            ),
        )
        upload = versions.VersionUpload(name, model_file, "model.skops", eval_file, "eval.csv")
        prepared = versions.prepare_version(db, dana, upload)
        for _ in range(VERSIONS_PER_MODEL):
            version = versions.register_version(
                db, dana, upload, prepared=prepared, store=artifacts
            )
            reviews.submit_for_review(db, dana, name, version.number)
        for number in range(1, PRE_APPROVED + 1):
            for r in range(MIN_APPROVALS):
                reviewer = users.principal_by_email(db, reviewer_email(r))
                reviews.decide(db, reviewer, name, number, "approve")


# --- the workers -------------------------------------------------------------------------------


@dataclass
class Outcomes:
    """What the workers of one process saw: successes by kind, refusals by error class."""

    succeeded: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    decision_ids: list[int] = field(default_factory=list)
    deployment_ids: list[int] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def merge(self, other: Outcomes) -> None:
        self.succeeded.update(other.succeeded)
        self.refused.update(other.refused)
        self.decision_ids += other.decision_ids
        self.deployment_ids += other.deployment_ids
        self.unexpected += other.unexpected


def one_operation(db: Database, people: list[Principal], rng: random.Random, out: Outcomes) -> None:
    actor = rng.choice(people)
    model = model_name(rng.randrange(MODELS))
    roll = rng.random()
    try:
        if roll < 0.5:
            number = rng.randint(1, VERSIONS_PER_MODEL)
            decision = reviews.decide(db, actor, model, number, DecisionKind.APPROVE)
            out.succeeded["approve"] += 1
            out.decision_ids.append(decision.id or 0)
        elif roll < 0.8:
            number = rng.randint(1, VERSIONS_PER_MODEL)
            env = rng.choice(ENVIRONMENTS)
            deployment = deployments.promote(db, actor, model, number, env, "load test")
            out.succeeded["promote"] += 1
            out.deployment_ids.append(deployment.id or 0)
        else:
            env = rng.choice(ENVIRONMENTS)
            deployment = deployments.rollback(db, actor, model, env, "load test rollback")
            out.succeeded["rollback"] += 1
            out.deployment_ids.append(deployment.id or 0)
    except QuorumError as refused:
        out.refused[type(refused).__name__] += 1
    except Exception as error:  # noqa: BLE001 - reported to the test, which fails on any
        out.unexpected.append(f"{type(error).__name__}: {str(error)[:300]}")


def run_process(url: str, process_index: int, operations: int, threads: int) -> Outcomes:
    """One app process: `threads` workers share one Database, as Streamlit sessions do."""
    db = Database(url)
    people = [users.principal_by_email(db, reviewer_email(i)) for i in range(REVIEWERS)]
    results = [Outcomes() for _ in range(threads)]
    start = threading.Barrier(threads)

    def work(thread_index: int) -> None:
        rng = random.Random(process_index * 100 + thread_index)
        start.wait()
        for _ in range(operations // threads + (thread_index < operations % threads)):
            one_operation(db, people, rng, results[thread_index])

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    db.dispose()
    total = Outcomes()
    for result in results:
        total.merge(result)
    return total


def run_everything(url: str, operations: int) -> Outcomes:
    context = multiprocessing.get_context("spawn")
    share = [operations // PROCESSES + (i < operations % PROCESSES) for i in range(PROCESSES)]
    with ProcessPoolExecutor(max_workers=PROCESSES, mp_context=context) as pool:
        futures = [pool.submit(run_process, url, i, share[i], THREADS) for i in range(PROCESSES)]
        total = Outcomes()
        for future in futures:
            total.merge(future.result(timeout=300))
    return total


# --- the checks --------------------------------------------------------------------------------


def assert_one_live_deployment_per_model_and_environment(db: Database) -> None:
    with db.read() as session:
        doubled = session.exec(
            select(Deployment.model_id, Deployment.environment, func.count())
            .where(col(Deployment.live_until).is_(None))
            .group_by(col(Deployment.model_id), col(Deployment.environment))
            .having(func.count() > 1)
        ).all()
        chained = session.exec(
            select(func.count())
            .select_from(Deployment)
            .where(
                col(Deployment.live_until).is_not(None), col(Deployment.replaced_by_id).is_(None)
            )
        ).one()
    assert doubled == []
    assert chained == 0, "a deployment was ended without naming what replaced it"


def assert_every_approval_counted_once(db: Database) -> None:
    with db.read() as session:
        repeated = session.exec(
            select(Decision.version_id, Decision.review_round, Decision.reviewer_id)
            .group_by(
                col(Decision.version_id), col(Decision.review_round), col(Decision.reviewer_id)
            )
            .having(func.count() > 1)
        ).all()
        assert repeated == []
        for version in session.exec(select(ModelVersion)):
            approvals = session.exec(
                select(func.count())
                .select_from(Decision)
                .where(Decision.version_id == version.id, Decision.kind == DecisionKind.APPROVE)
            ).one()
            assert approvals <= MIN_APPROVALS, "a version took approvals after it was approved"
            expected = "approved" if approvals >= MIN_APPROVALS else "in_review"
            assert version.state == expected, (version.id, approvals, version.state)
            assert version.row_version == 2 + approvals, "a concurrent update was lost"


def assert_one_audit_event_per_success(db: Database, since_seq: int, out: Outcomes) -> None:
    with db.read() as session:
        events = session.exec(select(AuditEvent).where(AuditEvent.seq > since_seq)).all()
        actions = Counter(e.action for e in events)
        assert (
            actions
            == Counter(
                {
                    "decision.approve": out.succeeded["approve"],
                    "deployment.promote": out.succeeded["promote"],
                    "deployment.rollback": out.succeeded["rollback"],
                }
            )
            - Counter()
        )  # drop zero counts
        deployment_events = Counter(
            int(e.object_id) for e in events if e.action.startswith("deployment.")
        )
        assert deployment_events == Counter(out.deployment_ids)
        assert all(n == 1 for n in deployment_events.values())
        new_decisions = session.exec(
            select(Decision.id).where(col(Decision.id).in_(out.decision_ids))
        ).all()
        assert sorted(new_decisions) == sorted(out.decision_ids)
        report = audit_anchor.verify(session, get_settings())
    assert report.intact, report.message


def run_r3(db: Database, artifacts: ArtifactStore, operations: int) -> Outcomes:
    prepare_store(db, artifacts)
    with db.read() as session:
        since = audit.count(session)
        decisions_before = session.exec(select(func.count()).select_from(Decision)).one()
        deployments_before = session.exec(select(func.count()).select_from(Deployment)).one()
    started = time.perf_counter()
    out = run_everything(db.url, operations)
    elapsed = time.perf_counter() - started
    print(
        f"R3: {operations} operations in {elapsed:.1f} s: {dict(out.succeeded)} {dict(out.refused)}"
    )

    assert out.unexpected == [], out.unexpected[:5]
    assert sum(out.succeeded.values()) + sum(out.refused.values()) == operations
    assert out.succeeded["approve"] > 0 and out.succeeded["promote"] > 0
    assert out.succeeded["rollback"] > 0
    assert_one_live_deployment_per_model_and_environment(db)
    assert_every_approval_counted_once(db)
    with db.read() as session:
        decisions = session.exec(select(func.count()).select_from(Decision)).one()
        deployment_rows = session.exec(select(func.count()).select_from(Deployment)).one()
    assert decisions == decisions_before + out.succeeded["approve"]
    assert (
        deployment_rows == deployments_before + out.succeeded["promote"] + out.succeeded["rollback"]
    )
    assert_one_audit_event_per_success(db, since, out)
    return out


# --- the tests ---------------------------------------------------------------------------------


def _admin_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def postgres_db() -> Iterator[Database]:
    """Its own, uniquely named database on the test server, dropped afterwards."""
    import psycopg

    server = os.environ.get(POSTGRES_ENV, "").strip()
    if not server:
        if os.environ.get("QUORUM_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"QUORUM_REQUIRE_POSTGRES=1 but {POSTGRES_ENV} is not set", pytrace=False)
        pytest.skip(f"R3 on PostgreSQL needs {POSTGRES_ENV}")
    name = f"quorum_r3_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_dsn(server), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    db = Database(url)
    yield db
    db.dispose()
    with psycopg.connect(_admin_dsn(server), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_r3_500_concurrent_operations_on_postgresql(postgres_db: Database, tmp_path: Path) -> None:
    out = run_r3(postgres_db, ArtifactStore(tmp_path / "artifacts"), 500)
    assert out.refused, "some operations should have met a conflict or a rule"


def test_r3_reduced_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'quorum.db'}"
    migrate.upgrade(url)
    db = Database(url)
    try:
        run_r3(db, ArtifactStore(tmp_path / "artifacts"), 120)
    finally:
        db.dispose()
