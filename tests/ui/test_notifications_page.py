"""Notifications on the Admin and Profile pages: an admin adds a webhook (its secret shown
once), reads the delivery log and replays a failed delivery; a person ticks e-mail events."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlmodel import select

from core import config, demo, migrate
from core.db import Database
from core.models import Delivery, MLModel, NotificationPreference
from core.services import portfolio, registry, users
from core.services.notifications import hooks, sending
from tests.ui.test_service_accounts_page import _clean, _open, _user_id  # noqa: F401


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('ui-notify') / 'quorum.db'}"
    migrate.upgrade(url)
    database = Database(url)
    demo.seed(database, with_models=False)
    ada = users.principal_by_email(database, "ada@demo.quorum")
    registry.create_model(
        database,
        ada,
        registry.ModelSpec(name="toy", team=demo.DEMO_TEAM, task="regression", target="y"),
    )
    hooks.allow_host(database, ada, "127.0.0.1", allow_private=True)
    settings = config.get_settings()
    hooks.create_webhook(
        database, ada, settings, demo.DEMO_TEAM, "closed port", "http://127.0.0.1:9/x"
    )
    with database.write() as session:
        model = session.exec(select(MLModel)).one()
        portfolio.notify(session, {ada.user_id}, "alert", "toy: incident opened", model_id=model.id)
    once = replace(settings, delivery_max_attempts=1, webhook_timeout_seconds=1)
    assert sending.send_due(database, once).failed == 1
    database.dispose()
    return url


def _statuses(url: str) -> list[str]:
    database = Database(url)
    with database.read() as session:
        found = [d.status for d in session.exec(select(Delivery))]
    database.dispose()
    return found


def test_admin_reads_the_delivery_log_and_replays_a_failed_delivery(store_url: str) -> None:
    at = _open("pages/8_Admin.py", _user_id(store_url, "ada@demo.quorum"))
    log = next(f.value for f in at.dataframe if "Attempts" in f.value.columns)
    assert log["Status"].tolist() == ["failed"] and log["To"].tolist() == ["webhook closed port"]
    assert "could not be reached" in log["Last error"].iloc[0]
    assert any("failed:" in t.value for t in at.text)  # the attempt, with what went wrong
    at.button(key="replay_delivery").click()
    at.run()
    assert not at.exception
    assert any("queued again" in s.value for s in at.success)
    assert _statuses(store_url) == ["pending"]


def test_admin_adds_a_webhook_and_its_secret_is_shown_once(store_url: str) -> None:
    at = _open("pages/8_Admin.py", _user_id(store_url, "ada@demo.quorum"))
    at.text_input(key="webhook_team").set_value(demo.DEMO_TEAM)
    at.text_input(key="webhook_name").set_value("second")
    at.text_input(key="webhook_url").set_value("http://127.0.0.1:9/y")
    at.button(key="FormSubmitter:new_webhook-Add webhook").click()
    at.run()
    secrets = [c.value for c in at.code]
    assert len(secrets) == 1 and len(secrets[0]) == 64
    at.run()
    assert [c.value for c in at.code] == []


def test_a_person_ticks_the_events_they_want_by_email(store_url: str) -> None:
    blake = _user_id(store_url, "blake@demo.quorum")
    at = _open("pages/9_Profile.py", blake)
    at.checkbox(key="pref_digest").check()
    at.button(key="FormSubmitter:notification_preferences-Save notification choices").click()
    at.run()
    assert not at.exception
    database = Database(store_url)
    with database.read() as session:
        rows = session.exec(
            select(NotificationPreference).where(NotificationPreference.user_id == blake)
        ).all()
    database.dispose()
    assert {r.event for r in rows if r.email} == {"digest"}
