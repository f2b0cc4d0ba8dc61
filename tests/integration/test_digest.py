"""The weekly digest for business stakeholders lists the models that meet their goal and
those that do not, as the stakeholder may see them, and what changed in the week; the jobs
that send it and the outbox run on the one scheduler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
import skops.io as sio
from sqlmodel import select

from core import config, demo, scheduler
from core.auth import Principal
from core.db import Database
from core.models import Delivery, Notification, Role, utcnow
from core.services import deployments, monitoring, registry, reviews, users, versions
from core.services.notifications import digest, preferences
from tests.integration.test_monitoring import _csv, _estimator, _frame, _labels, _production

PrincipalFactory = Callable[[Role | None], Principal]
ENV = "staging"


def _live_model(
    db: Database,
    owner: Principal,
    reviewer: Principal,
    name: str,
    team: str,
    goal: float,
) -> None:
    registry.create_model(
        db,
        owner,
        registry.ModelSpec(
            name=name,
            team=team,
            task="binary_classification",
            target="y",
            goal_metric="accuracy",
            goal_operator=">=",
            goal_target=goal,
        ),
    )
    rng = np.random.default_rng(0)
    versions.register_version(
        db,
        owner,
        versions.VersionUpload(
            model=name,
            model_file=sio.dumps(_estimator(_frame(rng, 600))),
            model_filename="toy.skops",
            eval_file=_frame(rng, 800).to_csv(index=False).encode(),
            eval_filename="eval.csv",
        ),
    )
    reviews.submit_for_review(db, owner, name, 1)
    reviews.decide(db, reviewer, name, 1, "approve", "fine")
    deployments.promote(db, reviewer, name, 1, ENV, "first release")
    frame = _production(14, start="2026-11-02", per_day=80)
    monitoring.configure(db, reviewer, name, {"window": "W", "min_labelled": 50})
    monitoring.ingest(db, owner, name, _csv(frame), env=ENV)
    monitoring.ingest_labels(db, owner, name, _labels(frame), env=ENV)


def test_the_digest_lists_the_right_models(
    people_db: Database, principal: PrincipalFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    dana, riley, admin = (
        principal(Role.DATA_SCIENTIST),
        principal(Role.REVIEWER),
        principal(Role.ADMIN),
    )
    blake = principal(Role.BUSINESS)
    _live_model(people_db, dana, riley, "toy-meets", demo.DEMO_TEAM, 0.6)
    _live_model(people_db, dana, riley, "toy-misses", demo.DEMO_TEAM, 0.995)
    payments = users.create_team(people_db, admin, "payments")
    users.grant_role(people_db, admin, dana.user_id, Role.DATA_SCIENTIST, payments.id)
    users.grant_role(people_db, admin, riley.user_id, Role.REVIEWER, payments.id)
    _live_model(people_db, dana, riley, "toy-elsewhere", "payments", 0.6)

    settings = config.get_settings()
    seen = digest.build(people_db, blake, settings)
    assert [line.split(" in ")[0] for line in seen.meeting] == ["toy-meets"]
    assert [line.split(" in ")[0] for line in seen.missing] == ["toy-misses"]
    assert seen.unjudged == []  # the bare demo models are not live anywhere
    assert any("toy-meets v1 promoted to staging" in c for c in seen.changes)
    assert any("(approved)" in c and "toy-misses v1" in c for c in seen.changes)
    assert sum("(promoted)" in c for c in seen.changes) == 2
    # the promotion itself reached the owner's inbox (the reviewer who did it is not told)
    with people_db.read() as session:
        told = session.exec(
            select(Notification.user_id).where(Notification.kind == "deployment.promoted")
        ).all()
    assert dana.user_id in told and riley.user_id not in told
    assert not any("toy-elsewhere" in c for c in seen.changes)  # another team's model
    text = seen.text()
    assert "toy-meets in staging (v1): Goal met" in text and "toy-elsewhere" not in text
    everything = digest.build(people_db, admin, settings)  # a global role sees every team
    assert sorted(line.split(" in ")[0] for line in everything.meeting) == [
        "toy-elsewhere",
        "toy-meets",
    ]

    # the weekly job: an inbox item for each stakeholder, an e-mail for those who opted in
    monkeypatch.setenv("QUORUM_SMTP_HOST", "127.0.0.1")
    config.reset_settings()
    preferences.set_preferences(people_db, blake, {"digest": True})
    written = scheduler.run_job(
        people_db,
        "notifications.digest",
        replace(config.get_settings(), database_url=people_db.url),
    )
    assert written.status == "succeeded" and written.message == "1 weekly digests written."
    with people_db.read() as session:
        (item,) = session.exec(select(Notification).where(Notification.kind == "digest")).all()
        mails = session.exec(select(Delivery).where(Delivery.event == "digest")).all()
    assert item.user_id == blake.user_id and "1 of 2 live model(s) meet their goal" in item.title
    assert "toy-misses" in item.body and "toy-elsewhere" not in item.body
    assert [(m.channel, m.user_id) for m in mails] == [("email", blake.user_id)]
    assert [m.webhook_id for m in mails] == [None]  # a digest never goes to a webhook
    # written again the same week (the demo seed, a new store's first job run): no second one
    assert digest.send_weekly(people_db, config.get_settings()) == 0
    later = digest.send_weekly(people_db, config.get_settings(), now=utcnow() + timedelta(days=7))
    assert later == 1


def test_the_jobs_run_on_the_one_scheduler() -> None:
    every = {j.name: j.every for j in scheduler.jobs()}
    assert every["notifications.deliver"] == timedelta(seconds=30)
    assert every["notifications.digest"] == timedelta(days=7)
    assert every["compliance.remind_expiring"] == timedelta(days=1)
