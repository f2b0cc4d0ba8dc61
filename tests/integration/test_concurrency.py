"""Concurrent clicks on SQLite and PostgreSQL: real threads (and, on PostgreSQL, real processes)
lined up with a barrier. No double count, no two live versions, the audit chain intact."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sqlmodel import col, select

from core import audit_anchor, demo
from core.auth import SYSTEM, Principal
from core.config import get_settings
from core.db import Database
from core.errors import Conflict, InvalidTransition, QuorumError
from core.models import AuditEvent, Decision, Deployment, ModelVersion, VersionState
from core.services import deployments, registry, reviews, users, versions

MEDIUM = "toy-scorer"
HIGH = "credit-default-scorer"  # high risk: a reviewer and a compliance officer
ROUNDS = 2


def _who(db: Database, name: str) -> Principal:
    return users.principal_by_email(db, f"{name}@demo.quorum")


@pytest.fixture
def store(people_db: Database) -> Database:
    dana = _who(people_db, "dana")
    spec = registry.ModelSpec(
        name=MEDIUM, team=demo.DEMO_TEAM, task="binary_classification", target="y"
    )
    registry.create_model(people_db, dana, spec)
    return people_db


def register(db: Database, model: str, seed: int) -> int:
    target = "default" if model == HIGH else "y"
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(120, 2)), columns=["income", "debt"])
    frame[target] = (frame["debt"] - frame["income"] + rng.normal(size=120) > 0).astype(int)
    estimator = LogisticRegression().fit(frame[["income", "debt"]], frame[target])
    upload = versions.VersionUpload(
        model=model,
        model_file=sio.dumps(estimator),
        model_filename="model.skops",
        eval_file=frame.to_csv(index=False).encode(),
        eval_filename="evaluation.csv",
    )
    number = versions.register_version(db, _who(db, "dana"), upload).number
    reviews.submit_for_review(db, _who(db, "dana"), model, number)
    return number


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released at the same moment; exceptions are returned."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[index] = call()
        except BaseException as error:  # noqa: BLE001 - the test inspects it
            results[index] = error

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a call hung"
    return results


def version_row(db: Database, model: str, number: int) -> ModelVersion:
    with db.read() as session:
        return registry.get_version(session, registry.model_row(session, model), number)


def decisions_on(db: Database, version_id: int) -> list[Decision]:
    with db.read() as session:
        return list(session.exec(select(Decision).where(Decision.version_id == version_id)))


def approval_events(db: Database, version_id: int) -> list[AuditEvent]:
    with db.read() as session:
        return list(
            session.exec(
                select(AuditEvent).where(
                    AuditEvent.action == "decision.approve",
                    AuditEvent.object_id == str(version_id),
                )
            )
        )


def assert_chain_intact(db: Database) -> None:
    with db.read() as session:
        report = audit_anchor.verify(session, get_settings())
    assert report.intact, report.message


def assert_approved_once(db: Database, model: str, number: int, approvers: int) -> None:
    version = version_row(db, model, number)
    assert version.state == VersionState.APPROVED
    recorded = decisions_on(db, version.id or 0)
    assert len(recorded) == approvers
    assert len({d.reviewer_id for d in recorded}) == approvers, "each approval counted once"
    events = approval_events(db, version.id or 0)
    assert len(events) == approvers
    became_approved = [e for e in events if e.details["state"] == VersionState.APPROVED]
    assert len(became_approved) == 1, "the version is approved exactly once"


# --- two reviewers at once ---------------------------------------------------------------------


def test_two_required_approvers_at_once_are_both_counted(store: Database) -> None:
    riley, casey = _who(store, "riley"), _who(store, "casey")
    for seed in range(ROUNDS):
        number = register(store, HIGH, seed)
        before = version_row(store, HIGH, number).row_version
        results = race(
            [
                lambda: reviews.decide(store, riley, HIGH, number, "approve", "metrics ok"),
                lambda: reviews.decide(store, casey, HIGH, number, "approve", "files ok"),
            ]
        )
        assert all(isinstance(r, Decision) for r in results), results
        assert_approved_once(store, HIGH, number, approvers=2)
        assert version_row(store, HIGH, number).row_version == before + 2, "no lost update"
    assert_chain_intact(store)


def test_two_reviewers_racing_for_a_single_approval(store: Database) -> None:
    riley, morgan = _who(store, "riley"), _who(store, "morgan")
    for seed in range(ROUNDS):
        number = register(store, MEDIUM, seed)
        results = race(
            [
                lambda: reviews.decide(store, riley, MEDIUM, number, "approve"),
                lambda: reviews.decide(store, morgan, MEDIUM, number, "approve"),
            ]
        )
        winners = [r for r in results if isinstance(r, Decision)]
        losers = [r for r in results if not isinstance(r, Decision)]
        assert len(winners) == 1 and len(losers) == 1, results
        assert isinstance(losers[0], Conflict | InvalidTransition), losers
        assert "approved" in losers[0].user_message
        assert_approved_once(store, MEDIUM, number, approvers=1)
    assert_chain_intact(store)


def test_double_click_records_one_decision(store: Database) -> None:
    riley = _who(store, "riley")
    for model, seed in ((MEDIUM, 0), (HIGH, 1)):
        number = register(store, model, seed)
        results = race(
            [lambda m=model: reviews.decide(store, riley, m, number, "approve")] * 2  # type: ignore[misc]
        )
        winners = [r for r in results if isinstance(r, Decision)]
        losers = [r for r in results if not isinstance(r, Decision)]
        assert len(winners) == 1, results
        assert len(losers) == 1 and isinstance(losers[0], Conflict), losers
        assert "already" in losers[0].user_message
        version = version_row(store, model, number)
        assert len(decisions_on(store, version.id or 0)) == 1
        assert len(approval_events(store, version.id or 0)) == 1
    assert_chain_intact(store)


# --- two promotions at once --------------------------------------------------------------------


def test_two_promotions_at_once_leave_one_live_version(store: Database) -> None:
    riley, morgan = _who(store, "riley"), _who(store, "morgan")
    for seed in range(ROUNDS):
        first, second = register(store, MEDIUM, 2 * seed), register(store, MEDIUM, 2 * seed + 1)
        for number in (first, second):
            reviews.decide(store, morgan, MEDIUM, number, "approve")
        results = race(
            [
                lambda: deployments.promote(store, riley, MEDIUM, first, "production"),
                lambda: deployments.promote(store, morgan, MEDIUM, second, "production"),
            ]
        )
        for result in results:
            if not isinstance(result, Deployment):
                assert isinstance(result, Conflict), result
                assert "reload" in result.user_message.lower()
        winners = [r for r in results if isinstance(r, Deployment)]
        assert winners, results
        with store.read() as session:
            rows = list(session.exec(select(Deployment).order_by(col(Deployment.id))))
        live = [d for d in rows if d.live_until is None]
        assert len(live) == 1, "never two live versions"
        assert live[0].id == max(w.id or 0 for w in winners), "the later winner is live"
        assert deployments.status(store, SYSTEM, MEDIUM)["production"] == version_number(
            store, live[0]
        )
        for replaced in (d for d in rows if d.live_until is not None):
            assert replaced.replaced_by_id is not None
    assert_chain_intact(store)


def version_number(db: Database, deployment: Deployment) -> int:
    with db.read() as session:
        version = session.get(ModelVersion, deployment.version_id)
        assert version is not None
        return version.number


# --- real processes on PostgreSQL ------------------------------------------------------------------


def approve_in_process(
    url: str, email: str, model: str, number: int, barrier: Any, out: Any
) -> None:
    db = Database(url)
    try:
        actor = users.principal_by_email(db, email)
        barrier.wait(timeout=60)
        reviews.decide(db, actor, model, number, "approve", f"from process {email}")
        out.put((email, "ok"))
    except QuorumError as error:
        out.put((email, f"{type(error).__name__}: {error.user_message}"))
    finally:
        db.dispose()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_two_processes_approving_on_postgres(store: Database) -> None:
    assert not store.sqlite
    number = register(store, HIGH, 0)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    out = context.Queue()
    processes = [
        context.Process(
            target=approve_in_process, args=(store.url, email, HIGH, number, barrier, out)
        )
        for email in ("riley@demo.quorum", "casey@demo.quorum")
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert all(p.exitcode == 0 for p in processes)
    outcomes = dict(out.get(timeout=5) for _ in processes)
    assert outcomes == {"riley@demo.quorum": "ok", "casey@demo.quorum": "ok"}
    assert_approved_once(store, HIGH, number, approvers=2)
    assert_chain_intact(store)
