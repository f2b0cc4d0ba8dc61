"""Service accounts for CI and idempotent retries, through a real server.

A service account registers, submits, ingests and reads; it never decides a review, signs, or
makes a version live in production, and every audit event of its calls names its token."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tests.api.conftest import Server  # noqa: E402
from tests.api.helpers import (  # noqa: E402
    assert_problem,
    bike_rows,
    new_model,
    register_files,
    snapshot,
    toy_files,
)

BIKE = "bike-demand-forecaster"
CREDIT = "credit-default-scorer"


def _service_account(server: Server, name: str, role: str) -> tuple[int, str]:
    with server.client("ada") as ada:
        made = ada.post(
            "/service-accounts",
            json={"name": name, "team": "risk-analytics", "role": role, "expires_in_days": 30},
        )
        assert made.status_code == 201, made.text
        body = made.json()
        listed = ada.get("/service-accounts").json()
    assert body["token"].startswith("qrm_")
    assert any(a["id"] == body["id"] and "token" not in a for a in listed)
    return body["id"], body["token"]


def test_service_accounts_work_for_ci_but_never_decide_sign_or_go_to_production(
    server: Server,
) -> None:
    _, train_token = _service_account(server, "ci-train", "data_scientist")
    deploy_id, deploy_token = _service_account(server, "ci-deploy", "reviewer")
    with server.client("dana") as dana:
        new_model(dana, "ci-model")
    with server.client(token=train_token) as ci:
        me = ci.get("/me").json()
        assert me["token"] == {
            "name": "ci-train",
            "kind": "service",
            "expires_at": me["token"]["expires_at"],
        }
        registered = ci.post(
            "/models/ci-model/versions",
            files=register_files(*toy_files()),
            data={"submit": "true", "notes": "from CI"},
        )
        assert registered.status_code == 201, registered.text
        assert registered.json()["state"] == "in_review"
        _, rows = bike_rows(50)
        ingested = ci.post(f"/models/{BIKE}/predictions", files={"file": ("ci.csv", rows)})
        assert ingested.status_code == 201, ingested.text
        assert_problem(ci.post("/tokens", json={"name": "more"}), 403, "permission_denied")
    with server.client("casey") as casey:
        events = casey.get("/audit/events", params={"model": "ci-model", "limit": 5}).json()
    assert any(
        e["action"] == "version.registered" and "via token 'ci-train'" in e["actor"] for e in events
    ), events
    assert all("service account ci-train" in e["actor"] for e in events if "ci-train" in e["actor"])

    with server.client(token=deploy_token) as ci:
        refused = ci.post(
            "/models/ci-model/versions/1/decisions", json={"decision": "approve", "reason": "ok"}
        )
        assert "service account" in assert_problem(refused, 403, "permission_denied")["detail"]
    with server.client("riley") as riley:
        approved = riley.post("/models/ci-model/versions/1/decisions", json={"decision": "approve"})
        assert approved.json()["state"] == "approved"
    with server.client(token=deploy_token) as ci:
        staged = ci.post(
            "/models/ci-model/deployments", json={"version": 1, "environment": "staging"}
        )
        assert staged.status_code == 200, staged.text
        production = ci.post(
            "/models/ci-model/deployments", json={"version": 1, "environment": "production"}
        )
        assert_problem(production, 403, "permission_denied")
        rollback = ci.post(
            f"/models/{BIKE}/rollback", json={"environment": "production", "reason": "x"}
        )
        assert_problem(rollback, 403, "permission_denied")
        sign = ci.post(
            f"/models/{CREDIT}/versions/3/signoffs",
            json={"meaning": "validated", "typed_name": "ci-deploy"},
        )
        assert_problem(sign, 403, "permission_denied")
    with server.client("ada") as ada:
        assert ada.delete(f"/service-accounts/{deploy_id}").status_code == 204
        assert_problem(ada.delete(f"/service-accounts/{deploy_id}"), 409)
    with server.client(token=deploy_token) as revoked:
        assert_problem(revoked.get("/me"), 401)


def test_service_account_roles_are_limited_to_machine_work(server: Server) -> None:
    with server.client("ada") as ada:
        for role in ("admin", "compliance_officer", "business_stakeholder"):
            reply = ada.post(
                "/service-accounts",
                json={"name": f"ci-{role[:5]}", "team": "risk-analytics", "role": role},
            )
            assert_problem(reply, 422, "invalid_input")
    with server.client("dana") as dana:
        assert_problem(dana.get("/service-accounts"), 403, "permission_denied")


def test_people_without_the_permission_are_403(server: Server) -> None:
    with server.client("dana") as dana:
        approve = dana.post(f"/models/{CREDIT}/versions/3/decisions", json={"decision": "approve"})
        assert_problem(approve, 403, "permission_denied")
    with server.client("blake") as blake:
        register = blake.post(f"/models/{CREDIT}/versions", files=register_files(*toy_files()))
        assert_problem(register, 403, "permission_denied")


def test_register_replay_returns_the_first_answer_and_key_reuse_is_409(server: Server) -> None:
    with server.client("dana") as dana:
        new_model(dana, "idem-model")
        files = register_files(*toy_files())
        key = {"Idempotency-Key": "build-4711"}
        first = dana.post(
            "/models/idem-model/versions", files=files, data={"notes": "a"}, headers=key
        )
        assert first.status_code == 201, first.text
        again = dana.post(
            "/models/idem-model/versions", files=files, data={"notes": "a"}, headers=key
        )
        assert again.status_code == 200
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        assert [v["number"] for v in dana.get("/models/idem-model").json()["versions"]] == [1]
        other = dana.post(
            "/models/idem-model/versions", files=files, data={"notes": "b"}, headers=key
        )
        assert_problem(other, 409, "conflict")
        assert_problem(
            dana.post(
                "/models/idem-model/versions", files=files, headers={"Idempotency-Key": "x" * 201}
            ),
            422,
        )
    with server.client("sam") as sam:  # a key belongs to one token: sam's build-4711 is his own
        own = sam.post("/models/idem-model/versions", files=files, data={"notes": "a"}, headers=key)
        assert own.status_code == 201, own.text
        assert own.json()["number"] == 2


def test_ingest_replay_stores_one_batch(server: Server) -> None:
    db = server.database()
    _, rows = bike_rows(120)
    key = {"Idempotency-Key": "ingest-2026-11-30"}
    with server.client("dana") as dana:
        first = dana.post(
            f"/models/{BIKE}/predictions", files={"file": ("h.csv", rows)}, headers=key
        )
        assert first.status_code == 201, first.text
        before = snapshot(db)
        again = dana.post(
            f"/models/{BIKE}/predictions", files={"file": ("h.csv", rows)}, headers=key
        )
        assert again.status_code == 200 and again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert snapshot(db) == before
        _, other_rows = bike_rows(10)
        other = dana.post(
            f"/models/{BIKE}/predictions", files={"file": ("h.csv", other_rows)}, headers=key
        )
        assert_problem(other, 409, "conflict")
    db.dispose()


def test_a_failed_request_releases_its_key(server: Server) -> None:
    with server.client("dana") as dana:
        key = {"Idempotency-Key": "retry-after-fix"}
        bad = dana.post(
            f"/models/{BIKE}/predictions", files={"file": ("x.csv", b"a\n1\n")}, headers=key
        )
        assert_problem(bad, 422)
        _, rows = bike_rows(20)
        fixed = dana.post(
            f"/models/{BIKE}/predictions", files={"file": ("x.csv", rows)}, headers=key
        )
        assert fixed.status_code == 201, fixed.text
