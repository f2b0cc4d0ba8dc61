"""Every endpoint's happy path through a real server, and the errors a client meets: 401, 403,
404, 409, 413, 400/422 with the store unchanged."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tests.api.conftest import MAX_UPLOAD_MB, Server  # noqa: E402
from tests.api.helpers import (  # noqa: E402
    assert_problem,
    bike_rows,
    labels_csv,
    new_model,
    register_files,
    snapshot,
    toy_files,
)

BIKE = "bike-demand-forecaster"
CREDIT = "credit-default-scorer"


def test_pages_health_and_api_answer_on_one_port(server: Server) -> None:
    assert httpx.get(server.url + "/", timeout=30).status_code == 200
    assert httpx.get(server.url + "/_stcore/health", timeout=30).text == "ok"
    schema = httpx.get(server.api + "/openapi.json", timeout=30).json()
    assert "/models/{model}/versions" in schema["paths"]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    docs = httpx.get(server.api + "/docs", timeout=30)
    assert docs.status_code == 200
    assert "/api/v1/docs-assets/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    asset = httpx.get(server.api + "/docs-assets/swagger-ui-bundle.js", timeout=30)
    assert asset.status_code == 200 and len(asset.content) > 100_000


def test_no_token_or_a_bad_token_is_401(server: Server) -> None:
    with server.client() as anonymous:
        reply = anonymous.get("/me")
        assert_problem(reply, 401, "authentication_failed")
        assert reply.headers["www-authenticate"] == "Bearer"
    with server.client(token="qrm_not-a-real-token") as forged:
        assert_problem(forged.get("/models"), 401, "authentication_failed")
    with server.client() as basic:
        reply = basic.get("/models", headers={"Authorization": "Basic ZGFuYTpwdw=="})
        assert_problem(reply, 401)


def test_me_users_and_personal_tokens(server: Server) -> None:
    with server.client("dana") as dana:
        me = dana.get("/me").json()
        assert me["email"] == "dana@demo.quorum"
        assert {"role": "data_scientist", "team": None} in me["roles"] or me["roles"]
        assert me["token"]["kind"] == "personal"
        assert me["token"]["name"] == "api-tests-dana"
        assert_problem(dana.get("/users"), 403, "permission_denied")
        made = dana.post("/tokens", json={"name": "laptop", "expires_in_days": 7})
        assert made.status_code == 201, made.text
        secret, token_id = made.json()["token"], made.json()["id"]
        assert any(t["id"] == token_id and "token" not in t for t in dana.get("/tokens").json())
    with server.client(token=secret) as laptop:
        assert laptop.get("/me").json()["token"]["name"] == "laptop"
        assert laptop.delete(f"/tokens/{token_id}").status_code == 204
        assert_problem(laptop.get("/me"), 401)
    with server.client("ada") as ada:
        people = ada.get("/users").json()
        assert {p["email"] for p in people} >= {"dana@demo.quorum", "ada@demo.quorum"}


def test_model_review_and_deployment_journey(server: Server) -> None:
    dana, riley = server.client("dana"), server.client("riley")
    created = new_model(dana, "api-journey")
    assert created["name"] == "api-journey" and created["versions"] == []
    assert any(m["name"] == "api-journey" for m in dana.get("/models").json())
    edited = dana.patch(
        "/models/api-journey",
        json={"tags": {"origin": "api", "stage": "pilot"}, "card": {"limitations": "Toy data."}},
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["tags"] == {"origin": "api", "stage": "pilot"}
    assert edited.json()["card"]["limitations"] == "Toy data."

    model_bytes, eval_bytes = toy_files()
    reply = dana.post(
        "/models/api-journey/versions",
        files=register_files(model_bytes, eval_bytes),
        data={"notes": "first", "tags": '{"data": "2026-q3"}', "submit": "false"},
    )
    assert reply.status_code == 201, reply.text
    version = reply.json()
    assert version["number"] == 1 and version["state"] == "registered"
    assert version["evaluation"]["metrics"]["roc_auc"] > 0.5
    assert (
        dana.get("/models/api-journey/versions/1").json()["artifact_sha256"]
        == version["artifact_sha256"]
    )
    assert dana.get("/models/api-journey/versions/1/compare").json()["champion"] is None

    submitted = dana.post("/models/api-journey/versions/1/submit", json={"note": "please"})
    assert submitted.json()["state"] == "in_review"
    assert any(q["model"] == "api-journey" for q in riley.get("/reviews/queue").json())
    comment = riley.post(
        "/models/api-journey/versions/1/comments", json={"body": "Looks fine @dana", "anchor": ""}
    )
    assert comment.status_code == 201, comment.text
    assert [c["body"] for c in dana.get("/models/api-journey/versions/1/comments").json()] == [
        "Looks fine @dana"
    ]
    decided = riley.post(
        "/models/api-journey/versions/1/decisions", json={"decision": "approve", "reason": "ok"}
    )
    assert decided.status_code == 200, decided.text
    assert decided.json() == {"decision": "approve", "state": "approved"}

    promoted = riley.post(
        "/models/api-journey/deployments",
        json={"version": 1, "environment": "staging", "reason": "try it"},
    )
    assert promoted.json() == {"environment": "staging", "version": 1}
    status = riley.get("/models/api-journey/deployments").json()
    assert status["live"]["staging"] == 1
    assert status["history"][0]["action"] == "promote"
    since = status["history"][0]["live_from"]
    live = riley.get(
        "/models/api-journey/deployments/live-at", params={"environment": "staging", "at": since}
    )
    assert live.json()["version"] == 1

    second = dana.post(
        "/models/api-journey/versions", files=register_files(*toy_files(seed=1, c=0.5))
    )
    assert second.json()["number"] == 2
    compared = dana.get("/models/api-journey/versions/2/compare").json()
    assert compared["champion"] == 1 and compared["rows"]
    dana.post("/models/api-journey/versions/2/submit", json={})
    riley.post("/models/api-journey/versions/2/decisions", json={"decision": "approve"})
    riley.post("/models/api-journey/deployments", json={"version": 2, "environment": "staging"})
    assert riley.get("/models/api-journey/deployments").json()["live"]["staging"] == 2
    rolled = riley.post(
        "/models/api-journey/rollback", json={"environment": "staging", "reason": "v2 is worse"}
    )
    assert rolled.status_code == 200, rolled.text
    assert rolled.json() == {"environment": "staging", "version": 1}
    dana.close()
    riley.close()


def test_archive(server: Server) -> None:
    with server.client("dana") as dana:
        new_model(dana, "api-archive-me")
        archived = dana.post("/models/api-archive-me/archive", json={"reason": "replaced"})
        assert archived.status_code == 200, archived.text
        assert archived.json()["archived"] is True
        again = dana.post("/models/api-archive-me/archive", json={"reason": "again"})
        assert_problem(again, 409, "conflict")


def test_monitoring_ingest_labels_report_and_alerts(server: Server) -> None:
    stream, rows = bike_rows(400)
    with server.client("dana") as dana:
        reply = dana.post(
            f"/models/{BIKE}/predictions",
            files={"file": ("hours.csv", rows, "text/csv")},
            data={"environment": "production"},
        )
        assert reply.status_code == 201, reply.text
        batch = reply.json()
        assert batch["rows"] == 400 and batch["model"] == BIKE and batch["windows"]
        labelled = dana.post(
            f"/models/{BIKE}/labels", files={"file": ("labels.csv", labels_csv(stream), "text/csv")}
        )
        assert labelled.status_code == 201, labelled.text
        assert labelled.json()["rows"] == 400
        report = dana.get(f"/models/{BIKE}/monitoring/report", params={"environment": "production"})
        assert report.status_code == 200, report.text
        assert report.json()
        alerts = dana.get(f"/models/{BIKE}/alerts", params={"status": "open"}).json()
    assert alerts, "the demo's summer drift leaves open alerts"
    with server.client("riley") as riley:
        changed = riley.patch(f"/alerts/{alerts[0]['id']}", json={"status": "acknowledged"})
        assert changed.status_code == 200, changed.text
        assert changed.json()["status"] == "acknowledged"


def test_compliance_checklists_evidence_signoffs_and_pack(server: Server) -> None:
    casey = server.client("casey")
    lists = casey.get(f"/models/{CREDIT}/versions/3/checklists").json()
    assert lists and lists[0]["items"]
    template, item = lists[0]["template"], lists[0]["items"][0]["key"]
    path = f"/models/{CREDIT}/versions/3/checklists/{template}/{item}"
    edited = casey.patch(path, json={"status": "met", "notes": "checked through the API"})
    assert edited.status_code == 200, edited.text
    assert edited.json()["status"] == "met"
    link = casey.post(path + "/evidence", json={"kind": "model_card", "reference": "card v3"})
    assert link.status_code == 201, link.text
    document = casey.post(
        path + "/evidence", files={"file": ("memo.txt", b"validation memo", "text/plain")}
    )
    assert document.status_code == 201, document.text
    assert document.json()["document_sha256"]
    signed = casey.post(
        f"/models/{CREDIT}/versions/3/signoffs",
        json={"meaning": "compliance reviewed", "typed_name": "Casey Compliance", "reason": ""},
    )
    assert signed.status_code == 201, signed.text
    assert signed.json()["printed_name"] == "Casey Compliance"
    listed = casey.get(f"/models/{CREDIT}/versions/3/signoffs").json()
    assert any(s["id"] == signed.json()["id"] for s in listed)
    revoked = casey.post(f"/signoffs/{signed.json()['id']}/revoke", json={"reason": "wrong one"})
    assert revoked.status_code == 201, revoked.text
    assert revoked.json()["kind"] == "revocation"
    pack = casey.get(f"/models/{CREDIT}/versions/3/pack", params={"format": "html"})
    assert pack.status_code == 200, pack.text
    assert pack.headers["content-disposition"].startswith("attachment")
    assert b"credit-default-scorer" in pack.content
    casey.close()


def test_audit_events_and_verify(server: Server) -> None:
    with server.client("casey") as casey:
        events = casey.get("/audit/events", params={"model": CREDIT, "limit": 5}).json()
        assert 0 < len(events) <= 5 and all(e["model"] == CREDIT for e in events)
        older = casey.get("/audit/events", params={"before_seq": events[-1]["seq"], "limit": 2})
        assert all(e["seq"] < events[-1]["seq"] for e in older.json())
        verified = casey.get("/audit/verify").json()
        assert verified["intact"] is True and verified["checked"] > 0, verified
    with server.client("dana") as dana:
        assert_problem(dana.get("/audit/verify"), 403, "permission_denied")


def test_absent_objects_are_404(server: Server) -> None:
    with server.client("dana") as dana:
        assert_problem(dana.get("/models/no-such-model"), 404, "not_found")
        assert_problem(dana.get(f"/models/{CREDIT}/versions/99"), 404, "not_found")
        assert_problem(dana.get("/no/such/route"), 404)


def test_state_conflicts_are_409(server: Server) -> None:
    with server.client("dana") as dana:
        assert_problem(
            dana.post(
                "/models", json={"name": CREDIT, "team": "risk-analytics", "task": "regression"}
            ),
            409,
            "conflict",
        )
        in_review = dana.post(f"/models/{CREDIT}/versions/3/submit", json={})
        assert_problem(in_review, 409)


def test_bad_bodies_change_nothing(server: Server) -> None:
    db = server.database()
    before = snapshot(db)
    with server.client("dana") as dana:
        malformed = dana.post(
            "/models", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert_problem(malformed, 400, "malformed_request")
        missing = dana.post("/models", json={"name": "x"})
        body = assert_problem(missing, 422, "invalid_input")
        assert any("team" in line for line in body["errors"])
        wrong_task = dana.post(
            "/models", json={"name": "ok-name", "team": "risk-analytics", "task": "clustering"}
        )
        assert_problem(wrong_task, 422)
        bad_name = dana.post(
            "/models", json={"name": "../etc", "team": "risk-analytics", "task": "regression"}
        )
        assert_problem(bad_name, 422, "invalid_input")
        no_file = dana.post(f"/models/{CREDIT}/versions", data={"notes": "x"})
        assert_problem(no_file, 422)
        bad_tags = dana.post(
            "/models/credit-default-scorer/versions",
            files=register_files(*toy_files()),
            data={"tags": "[1, 2]"},
        )
        assert_problem(bad_tags, 422, "invalid_input")
        bad_csv = dana.post(
            f"/models/{BIKE}/predictions", files={"file": ("x.csv", b"a,b\n1,2\n", "text/csv")}
        )
        assert_problem(bad_csv, 422, "invalid_input")
    assert snapshot(db) == before
    db.dispose()


def test_oversized_upload_is_413_and_changes_nothing(server: Server) -> None:
    db = server.database()
    before = snapshot(db)
    big = b"x" * (MAX_UPLOAD_MB * 1024 * 1024 + 10)
    with server.client("dana") as dana:
        declared = dana.post(f"/models/{BIKE}/predictions", files={"file": ("big.csv", big)})
        body = assert_problem(declared, 413, "too_large")
        assert f"{MAX_UPLOAD_MB} MB" in body["detail"]

        def chunks():  # a valid multipart body without Content-Length: refused while streaming
            yield (
                b'--zzz\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
                b"Content-Type: text/csv\r\n\r\n"
            )
            for _ in range(MAX_UPLOAD_MB * 4 + 1):
                yield b"y" * (256 * 1024)
            yield b"\r\n--zzz--\r\n"

        streamed = dana.post(
            f"/models/{BIKE}/predictions",
            content=chunks(),
            headers={"content-type": "multipart/form-data; boundary=zzz"},
        )
        assert_problem(streamed, 413, "too_large")
        assert dana.get("/me").status_code == 200  # the server keeps serving
    assert snapshot(db) == before
    db.dispose()


@pytest.mark.parametrize("fmt", ["pdf"])
def test_pack_as_pdf(server: Server, fmt: str) -> None:
    with server.client("casey") as casey:
        pack = casey.get(f"/models/{CREDIT}/versions/2/pack", params={"format": fmt})
        assert pack.status_code == 200, pack.text
        assert pack.content.startswith(b"%PDF")
