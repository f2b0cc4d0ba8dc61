"""R1 through HTTP: the mutating actions of tests/integration/test_permissions.py that the API
exposes, for every demo role and both kinds of service account. Allowed callers get a 2xx;
everyone else gets 403, the store is left as it was, and the refusal is audited."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from core.auth import PERSON_ONLY, ROLE_PERMISSIONS, Permission  # noqa: E402
from core.models import Role  # noqa: E402
from core.services import registry, users  # noqa: E402
from tests.api.conftest import PEOPLE, Server  # noqa: E402
from tests.api.helpers import (  # noqa: E402
    assert_problem,
    audit_count,
    bike_rows,
    register_files,
    snapshot,
    toy_files,
)

# Each caller: (token key, role, is a service account)
CALLERS: dict[str, tuple[Role, bool]] = {
    "dana": (Role.DATA_SCIENTIST, False),
    "riley": (Role.REVIEWER, False),
    "casey": (Role.COMPLIANCE, False),
    "blake": (Role.BUSINESS, False),
    "ada": (Role.ADMIN, False),
    "svc-ds": (Role.DATA_SCIENTIST, True),
    "svc-rev": (Role.REVIEWER, True),
}


@dataclass
class World:
    server: Server
    tokens: dict[str, str]
    own_token: dict[str, int] = field(default_factory=dict)
    own_model: dict[str, str] = field(default_factory=dict)
    someone_elses_token: int = 0
    open_alerts: list[int] = field(default_factory=list)


Call = Callable[[World, str, httpx.Client], httpx.Response]


@dataclass(frozen=True)
class Case:
    name: str
    permission: Permission
    call: Call


CASES = [
    Case(
        "POST /tokens",
        Permission.MANAGE_OWN_TOKENS,
        lambda w, who, c: c.post("/tokens", json={"name": f"t-{who}"}),
    ),
    Case(
        "DELETE /tokens/{own}",
        Permission.MANAGE_OWN_TOKENS,
        lambda w, who, c: c.delete(f"/tokens/{w.own_token[who]}"),
    ),
    Case(
        "DELETE /tokens/{someone else's}",
        Permission.MANAGE_USERS,
        lambda w, who, c: c.delete(f"/tokens/{w.someone_elses_token}"),
    ),
    Case(
        "POST /models",
        Permission.REGISTER_MODEL,
        lambda w, who, c: c.post(
            "/models", json={"name": f"m-{who}", "team": "risk-analytics", "task": "regression"}
        ),
    ),
    Case(
        "PATCH /models/{model} card",
        Permission.EDIT_MODEL,
        lambda w, who, c: c.patch(
            "/models/credit-default-scorer", json={"card": {"limitations": f"EU only ({who})."}}
        ),
    ),
    Case(
        "POST /models/{model}/archive",
        Permission.ARCHIVE,
        lambda w, who, c: c.post(f"/models/{w.own_model[who]}/archive", json={"reason": "old"}),
    ),
    Case(
        "POST /models/{model}/versions",
        Permission.REGISTER_MODEL,
        lambda w, who, c: c.post(
            "/models/matrix-target/versions",
            files=register_files(*toy_files()),
        ),
    ),
    Case(
        "POST /models/{model}/predictions",
        Permission.INGEST,
        lambda w, who, c: c.post(
            "/models/bike-demand-forecaster/predictions",
            files={"file": ("p.csv", bike_rows(30, tag=f"matrix-{who}")[1])},
        ),
    ),
    Case(
        "PATCH /alerts/{id}",
        Permission.MANAGE_MONITORING,
        # one incident per model and kind now: acknowledging keeps it open for the next caller
        lambda w, who, c: c.patch(
            f"/alerts/{w.open_alerts[0]}", json={"status": "acknowledged", "note": who}
        ),
    ),
    Case(
        "POST /models/{model}/versions/{n}/findings",
        Permission.DECIDE,
        lambda w, who, c: c.post(
            "/models/credit-default-scorer/versions/2/findings",
            json={
                "severity": "low",
                "text": f"Threshold choice undocumented ({who}).",
                "owner": "dana@demo.quorum",
                "due_on": (date.today() + timedelta(days=30)).isoformat(),
            },
        ),
    ),
    Case(
        "POST /service-accounts",
        Permission.MANAGE_USERS,
        lambda w, who, c: c.post(
            "/service-accounts",
            json={"name": f"sa-{who}", "team": "risk-analytics", "role": "reviewer"},
        ),
    ),
]


def allowed(case: Case, who: str) -> bool:
    role, service = CALLERS[who]
    if service and case.permission in PERSON_ONLY:
        return False
    return case.permission in ROLE_PERMISSIONS[role]


@pytest.fixture(scope="module")
def world(server: Server) -> World:
    db = server.database()
    ada = users.principal_by_email(db, PEOPLE["ada"])
    dana = users.principal_by_email(db, PEOPLE["dana"])
    tokens = dict(server.tokens)
    for who in ("svc-ds", "svc-rev"):
        role = CALLERS[who][0]
        tokens[who] = users.create_service_account(db, ada, who, "risk-analytics", role).secret
    world = World(server, tokens)
    for who in CALLERS:
        with server.client(token=tokens[who]) as client:
            user_id = client.get("/me").json()["id"]
        owner_email = PEOPLE.get(who)
        user = users.principal_by_id(db, user_id)
        if owner_email is not None:
            world.own_token[who] = (
                users.issue_token_as_operator(db, owner_email, "own").token.id or 0
            )
        else:  # a service account's only token is its own
            world.own_token[who] = users.my_tokens(db, user)[0].id or 0
        spec = registry.ModelSpec(name=f"old-{who}", team="risk-analytics", task="regression")
        world.own_model[who] = registry.create_model(db, dana, spec).name
    target = registry.ModelSpec(
        name="matrix-target",
        team="risk-analytics",
        task="binary_classification",
        target="defaulted",
    )
    registry.create_model(db, dana, target)
    world.someone_elses_token = (
        users.issue_token_as_operator(db, PEOPLE["sam"], "sams").token.id or 0
    )
    with server.client("riley") as riley:
        alerts = riley.get(
            "/models/bike-demand-forecaster/alerts", params={"status": "open"}
        ).json()
    world.open_alerts = [a["id"] for a in alerts]
    db.dispose()
    return world


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_permission_matrix_through_http(case: Case, world: World, subtests: Any) -> None:
    db = world.server.database()
    ordered = sorted(CALLERS, key=lambda who: allowed(case, who))  # refusals first
    for who in ordered:
        with subtests.test(caller=who), world.server.client(token=world.tokens[who]) as client:
            if allowed(case, who):
                reply = case.call(world, who, client)
                assert 200 <= reply.status_code < 300, (who, reply.text)
                continue
            before, events = snapshot(db), audit_count(db)
            reply = case.call(world, who, client)
            assert_problem(reply, 403, "permission_denied")
            assert snapshot(db) == before, f"{case.name} by {who} changed the store"
            assert audit_count(db) == events + 1
            with db.engine.connect() as conn:
                action, label = conn.exec_driver_sql(
                    "SELECT action, actor_label FROM audit_event ORDER BY seq DESC LIMIT 1"
                ).one()
            assert action == "permission.denied"
            assert "via token" in label
    db.dispose()


def test_every_caller_is_allowed_something_and_refused_something() -> None:
    for who in CALLERS:
        outcomes = {allowed(case, who) for case in CASES}
        assert outcomes == ({True} if who == "ada" else {True, False}), who
