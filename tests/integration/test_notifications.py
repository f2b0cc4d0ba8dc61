"""Notifications beyond the inbox, against real servers on loopback: an e-mail reaches an
aiosmtpd server; a webhook reaches an HTTP receiver with a valid signature, is retried with
backoff, given up after the cap and replayed from the log; hosts not allowed (or private
ones not allowed to be) are refused; a webhook gets only its team's events and never an inbox
item's body; each person's e-mail choices are honoured."""

from __future__ import annotations

import hashlib
import hmac
import json
import multiprocessing
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import col, select

from core import config, scheduler
from core.auth import Principal
from core.config import Settings
from core.db import Database
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.models import (
    AuditEvent,
    Delivery,
    DeliveryAttempt,
    MLModel,
    Notification,
    Role,
    Team,
    utcnow,
)
from core.services import portfolio, registry, users
from core.services.notifications import hooks, preferences, sending

PrincipalFactory = Callable[[Role | None], Principal]
MODEL = "credit-default-scorer"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- real receivers ---------------------------------------------------------------------------


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[_Mailbox, int]]:
    box, port = _Mailbox(), _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@dataclass
class Receiver:
    port: int
    answers: list[int] = field(default_factory=list)  # status codes to answer, then 200
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append((dict(self.headers.items()), body))
            status = state.answers.pop(0) if state.answers else 200
            self.send_response(status)
            if status in (301, 302):
                self.send_header("Location", "http://169.254.169.254/latest")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("QUORUM_PUBLIC_URL", "https://quorum.example.org")
    config.reset_settings()
    return replace(config.get_settings(), delivery_retry_seconds=30, delivery_max_attempts=4)


def _with_smtp(monkeypatch: pytest.MonkeyPatch, port: int) -> Settings:
    monkeypatch.setenv("QUORUM_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("QUORUM_PUBLIC_URL", "https://quorum.example.org")
    monkeypatch.setenv("QUORUM_SMTP_PORT", str(port))
    monkeypatch.setenv("QUORUM_SMTP_FROM", "quorum@bank.example")
    monkeypatch.setenv("QUORUM_SMTP_PASSWORD", "never-shown-anywhere")
    config.reset_settings()
    return config.get_settings()


def _model(db: Database, name: str = MODEL) -> MLModel:
    with db.read() as session:
        return session.exec(select(MLModel).where(MLModel.name == name)).one()


def _notify(
    db: Database, user_ids: set[int], kind: str, title: str, model: MLModel, body: str = ""
) -> None:
    with db.write() as session:
        portfolio.notify(
            session,
            user_ids,
            kind,
            title,
            body=body,
            link=f"pages/5_Monitoring.py?model={model.name}",
            model_id=model.id,
        )


def _deliveries(db: Database, channel: str | None = None) -> list[Delivery]:
    with db.read() as session:
        stmt = select(Delivery).order_by(col(Delivery.id))
        if channel:
            stmt = stmt.where(Delivery.channel == channel)
        return list(session.exec(stmt).all())


def _hook(
    db: Database, admin: Principal, settings: Settings, receiver: Receiver, **kw: Any
) -> hooks.NewWebhook:
    hooks.allow_host(db, admin, "127.0.0.1", allow_private=True, reason="the test receiver")
    return hooks.create_webhook(
        db, admin, settings, "risk-analytics", "Team channel", receiver.url, kw.get("events")
    )


# --- e-mail -----------------------------------------------------------------------------------


def test_an_email_arrives_at_the_smtp_server_for_those_who_chose_it(
    people_db: Database,
    principal: PrincipalFactory,
    smtp: tuple[_Mailbox, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box, port = smtp
    settings = _with_smtp(monkeypatch, port)
    dana, riley = principal(Role.DATA_SCIENTIST), principal(Role.REVIEWER)
    chosen = preferences.set_preferences(people_db, dana, {"incident": True, "mention": False})
    assert chosen["incident"] and not chosen["mention"] and not chosen["digest"]
    model = _model(people_db)
    _notify(
        people_db,
        {dana.user_id, riley.user_id},
        "alert",
        f"{model.name}: drift incident opened",
        model,
        "drift in income",
    )
    _notify(people_db, {dana.user_id}, "mention", "Riley mentioned you", model)

    with people_db.read() as session:
        inbox = session.exec(select(Notification).where(Notification.user_id == dana.user_id)).all()
    assert sorted(n.kind for n in inbox) == ["alert", "mention"]  # the inbox gets everything
    emails = _deliveries(people_db, "email")
    assert [(d.user_id, d.kind) for d in emails] == [(dana.user_id, "alert")]  # only her choice

    report = sending.send_due(people_db, settings)
    assert (report.sent, report.retrying, report.failed) == (1, 0, 0)
    assert len(box.messages) == 1
    envelope = box.messages[0]
    assert envelope.rcpt_tos == [dana.email] and envelope.mail_from == "quorum@bank.example"
    mail = message_from_bytes(envelope.content)
    text = mail.get_payload(decode=True).decode()
    assert mail["Subject"] == f"[Quorum] {model.name}: drift incident opened"
    assert "drift in income" in text
    assert f"https://quorum.example.org/Monitoring?model={model.name}" in text
    assert _deliveries(people_db, "email")[0].status == "sent"
    assert "never-shown-anywhere" not in repr(settings)
    # sent once: the next pass finds nothing to do
    assert sending.send_due(people_db, settings).sent == 0 and len(box.messages) == 1


def test_a_mail_server_that_is_down_is_retried_then_failed(
    people_db: Database, principal: PrincipalFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = replace(_with_smtp(monkeypatch, _free_port()), delivery_max_attempts=2)
    dana = principal(Role.DATA_SCIENTIST)
    preferences.set_preferences(people_db, dana, {"incident": True})
    _notify(people_db, {dana.user_id}, "incident.closed", "Incident closed", _model(people_db))
    start = utcnow()
    assert sending.send_due(people_db, settings, now=start).retrying == 1
    assert sending.send_due(people_db, settings, now=start + timedelta(seconds=31)).failed == 1
    (delivery,) = _deliveries(people_db, "email")
    assert delivery.status == "failed" and "could not be reached" in delivery.last_error


def test_preferences_name_unknown_events(people_db: Database, principal: PrincipalFactory) -> None:
    with pytest.raises(InvalidInput, match="no event named sms.*review_requested"):
        preferences.set_preferences(people_db, principal(Role.BUSINESS), {"sms": True})


# --- webhooks ---------------------------------------------------------------------------------


def test_a_webhook_arrives_signed_and_carries_ids_names_and_links_only(
    people_db: Database, principal: PrincipalFactory, settings: Settings, receiver: Receiver
) -> None:
    admin, dana = principal(Role.ADMIN), principal(Role.DATA_SCIENTIST)
    new = _hook(people_db, admin, settings, receiver)
    assert len(new.secret) == 64
    with people_db.read() as session:  # the store keeps no secret, only what it derives from
        assert new.secret not in json.dumps(
            session.get(type(new.webhook), new.webhook.id).model_dump(mode="json")
        )
    model = _model(people_db)
    rows = "income,debt,region\n51.2,20.1,north"
    _notify(people_db, {dana.user_id}, "alert", f"{model.name}: drift incident opened", model, rows)

    assert sending.send_due(people_db, settings).sent == 1
    ((headers, body),) = receiver.received
    timestamp = headers["X-Quorum-Timestamp"]
    expected = hmac.new(new.secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert headers["X-Quorum-Signature"] == "sha256=" + expected.hexdigest()
    assert abs(int(timestamp) - time.time()) < 60
    payload = json.loads(body)
    assert payload["text"] == f"{model.name}: drift incident opened"
    assert payload["blocks"][0]["text"]["text"] == payload["text"]
    assert payload["model"] == {"id": model.id, "name": model.name}
    assert payload["team"]["name"] == "risk-analytics" and payload["event"] == "incident"
    assert payload["link"] == f"https://quorum.example.org/Monitoring?model={model.name}"
    assert "income" not in body.decode() and "51.2" not in body.decode()  # never the body's rows
    tampered = hmac.new(new.secret.encode(), f"{timestamp}.".encode() + body + b" ", hashlib.sha256)
    assert headers["X-Quorum-Signature"] != "sha256=" + tampered.hexdigest()


def test_another_teams_event_never_reaches_the_webhook(
    people_db: Database, principal: PrincipalFactory, settings: Settings, receiver: Receiver
) -> None:
    admin = principal(Role.ADMIN)
    _hook(people_db, admin, settings, receiver, events=["incident", "deployment"])
    users.create_team(people_db, admin, "payments")
    other = registry.create_model(
        people_db,
        admin,
        registry.ModelSpec(
            name="fraud-flagger",
            team="payments",
            task="binary_classification",
            purpose="Flags fraud.",
            target="fraud",
        ),
    )
    mine = _model(people_db)
    _notify(people_db, {admin.user_id}, "alert", "fraud-flagger: incident opened", other)
    _notify(people_db, {admin.user_id}, "mention", "Ada mentioned you", mine)  # not chosen
    _notify(people_db, {admin.user_id}, "deployment.promoted", f"{mine.name} v1 promoted", mine)
    sent = _deliveries(people_db, "webhook")
    assert [(d.kind, d.model_id) for d in sent] == [("deployment.promoted", mine.id)]
    sending.send_due(people_db, settings)
    assert [json.loads(b)["model"]["name"] for _, b in receiver.received] == [mine.name]


def test_a_receiver_that_fails_twice_gets_the_third_attempt_after_backoff(
    people_db: Database, principal: PrincipalFactory, settings: Settings, receiver: Receiver
) -> None:
    admin = principal(Role.ADMIN)
    _hook(people_db, admin, settings, receiver)
    receiver.answers = [500, 503]
    model = _model(people_db)
    _notify(people_db, {admin.user_id}, "alert", "incident opened", model)
    start = utcnow()
    assert sending.send_due(people_db, settings, now=start).retrying == 1
    # the backoff holds: 30 s after the first failure, 60 s after the second
    assert sending.send_due(people_db, settings, now=start + timedelta(seconds=10)).retrying == 0
    assert sending.send_due(people_db, settings, now=start + timedelta(seconds=31)).retrying == 1
    assert sending.send_due(people_db, settings, now=start + timedelta(seconds=80)).sent == 0
    third = sending.send_due(people_db, settings, now=start + timedelta(seconds=92))
    assert third.sent == 1
    assert len(receiver.received) == 3
    assert len({h["X-Quorum-Delivery"] for h, _ in receiver.received}) == 1
    (delivery,) = _deliveries(people_db, "webhook")
    assert (delivery.status, delivery.attempts) == ("sent", 3)
    with people_db.read() as session:
        tries = session.exec(select(DeliveryAttempt).order_by(col(DeliveryAttempt.id))).all()
    assert [t.ok for t in tries] == [False, False, True]
    assert "HTTP 500" in tries[0].detail and "HTTP 503" in tries[1].detail


def test_after_the_cap_a_delivery_fails_and_an_admin_replays_it_from_the_log(
    people_db: Database, principal: PrincipalFactory, settings: Settings, receiver: Receiver
) -> None:
    admin, riley = principal(Role.ADMIN), principal(Role.REVIEWER)
    _hook(people_db, admin, settings, receiver)
    receiver.answers = [302, 500, 500, 500]  # a redirect is a failure, never followed
    _notify(people_db, {admin.user_id}, "alert", "incident opened", _model(people_db))
    moment = utcnow()
    for _ in range(4):
        sending.send_due(people_db, settings, now=moment)
        moment += timedelta(hours=1)
    (row,) = hooks.delivery_log(people_db, admin)
    assert (row.status, row.attempts, row.to) == ("failed", 4, "webhook Team channel")
    tries = hooks.attempts_of(people_db, admin, row.id)
    assert "redirects are not followed" in tries[0].detail and len(receiver.received) == 4
    with pytest.raises(PermissionDenied):
        hooks.delivery_log(people_db, riley)
    with pytest.raises(PermissionDenied):
        hooks.replay(people_db, riley, row.id)

    hooks.replay(people_db, admin, row.id)
    with pytest.raises(Conflict, match="still pending"):
        hooks.replay(people_db, admin, row.id)
    assert sending.send_due(people_db, settings).sent == 1
    assert hooks.delivery_log(people_db, admin)[0].status == "sent"
    with people_db.read() as session:
        replayed = session.exec(
            select(AuditEvent).where(AuditEvent.action == "delivery.replayed")
        ).all()
    assert len(replayed) == 1 and f"#{row.id}" in replayed[0].summary


def test_hosts_not_allowed_and_private_addresses_are_refused(
    people_db: Database, principal: PrincipalFactory, settings: Settings, receiver: Receiver
) -> None:
    admin, dana = principal(Role.ADMIN), principal(Role.DATA_SCIENTIST)
    with pytest.raises(InvalidInput, match="127.0.0.1 is not on the webhook allow-list"):
        hooks.create_webhook(people_db, admin, settings, "risk-analytics", "Hook", receiver.url)
    with pytest.raises(PermissionDenied):
        hooks.allow_host(people_db, dana, "127.0.0.1", allow_private=True)
    hooks.allow_host(people_db, admin, "localhost")  # allowed, but not to private addresses
    with pytest.raises(InvalidInput, match="plain http is only for private hosts"):
        hooks.create_webhook(
            people_db,
            admin,
            settings,
            "risk-analytics",
            "Hook",
            f"http://localhost:{receiver.port}/",
        )
    with pytest.raises(InvalidInput, match="resolves to a private, loopback.*refused"):
        hooks.create_webhook(
            people_db,
            admin,
            settings,
            "risk-analytics",
            "Hook",
            f"https://localhost:{receiver.port}/",
        )
    for address in (
        "169.254.169.254",
        "10.0.0.8",
        "::1",
        "::ffff:127.0.0.1",
        "100.64.1.1",
        "fd00:ec2::254",
    ):
        assert sending.is_restricted(address), address
    assert not sending.is_restricted("93.184.215.14")
    with pytest.raises(InvalidInput, match="not a host name"):
        hooks.allow_host(people_db, admin, "https://evil.example/path")

    # checked again at send time: a host removed from the list gets nothing more
    _hook(people_db, admin, settings, receiver)
    _notify(people_db, {admin.user_id}, "alert", "incident opened", _model(people_db))
    hooks.revoke_host(people_db, admin, "127.0.0.1")
    assert sending.send_due(people_db, settings).retrying == 1
    (delivery,) = _deliveries(people_db, "webhook")
    assert "not on the webhook allow-list" in delivery.last_error and receiver.received == []
    with pytest.raises(NotFound):
        hooks.revoke_host(people_db, admin, "127.0.0.1")


def test_webhook_events_are_checked_and_a_team_admin_is_needed(
    people_db: Database, principal: PrincipalFactory, settings: Settings, receiver: Receiver
) -> None:
    admin = principal(Role.ADMIN)
    hooks.allow_host(people_db, admin, "127.0.0.1", allow_private=True)
    with pytest.raises(InvalidInput, match="cannot take the event.*digest"):
        hooks.create_webhook(
            people_db, admin, settings, "risk-analytics", "H", receiver.url, ["digest"]
        )
    with pytest.raises(PermissionDenied):
        hooks.create_webhook(
            people_db, principal(Role.REVIEWER), settings, "risk-analytics", "H", receiver.url
        )
    new = hooks.create_webhook(people_db, admin, settings, "risk-analytics", "H", receiver.url)
    assert [w.name for w in hooks.webhooks(people_db, admin)] == ["H"]
    assert hooks.webhooks(people_db, principal(Role.REVIEWER)) == []  # not a team admin
    hooks.revoke_webhook(people_db, admin, new.webhook.id or 0)
    assert hooks.webhooks(people_db, admin) == []
    with people_db.read() as session:
        assert session.exec(select(Team).where(Team.name == "risk-analytics")).one()


def _deliver_in_process(url: str, settings: Settings) -> bool:
    database = Database(url)
    try:
        return scheduler.run_job(database, "notifications.deliver", settings).ran
    finally:
        database.dispose()


def test_two_processes_run_the_delivery_job_once_and_each_message_goes_once(
    people_db: Database, principal: PrincipalFactory, settings: Settings, receiver: Receiver
) -> None:
    admin = principal(Role.ADMIN)
    _hook(people_db, admin, settings, receiver)
    model = _model(people_db)
    for n in range(3):
        _notify(people_db, {admin.user_id}, "alert", f"incident {n} opened", model)
    people_db.dispose()
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        ran = list(pool.map(_deliver_in_process, [people_db.url] * 4, [settings] * 4))
    assert ran.count(True) == 1
    ids = [h["X-Quorum-Delivery"] for h, _ in receiver.received]
    assert len(ids) == 3 and len(set(ids)) == 3
    assert [d.status for d in _deliveries(people_db, "webhook")] == ["sent"] * 3
