"""The whole lifecycle through the `quorum` client against a real server on loopback.

Every command runs in a fresh process whose environment holds QUORUM_URL and a token only
(no QUORUM_DATABASE_URL), and none of them imports SQLAlchemy, SQLModel, Streamlit or the
server's store and services.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from datetime import UTC, datetime
from pathlib import Path

import pytest
import skops.io as sio

from tests.fixtures.quorum_server import (
    FEATURES,
    QuorumServer,
    Result,
    fitted,
    frame,
    free_port,
    production,
    server_side_modules,
)

MODEL = "toy-scorer"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("client-files")
    paths = {
        "v1": root / "model-v1.skops",
        "v2": root / "model-v2.skops",
        "eval": root / "eval.csv",
        "eval_no_target": root / "eval-no-target.csv",
        "hostile": root / "model.pkl",
        "predictions": root / "predictions.csv",
        "labels": root / "labels.csv",
    }
    sio.dump(fitted(0), paths["v1"])
    sio.dump(fitted(1), paths["v2"])
    frame(7).to_csv(paths["eval"], index=False)
    frame(7).drop(columns=["y"]).to_csv(paths["eval_no_target"], index=False)
    paths["hostile"].write_bytes(pickle.dumps(os.system))
    prod = production()
    prod[["timestamp", "prediction_id", *FEATURES]].to_csv(paths["predictions"], index=False)
    prod[["prediction_id", "y"]].rename(columns={"y": "label"}).to_csv(paths["labels"], index=False)
    return paths


def ok(result: Result) -> Result:
    assert result.code == 0, result.err
    assert server_side_modules(result.modules) == [], "the client imported server code"
    assert "Traceback" not in result.err
    return result


def test_client_environment_has_no_database(server: QuorumServer, tmp_path: Path) -> None:
    env = server.client_env("dana", tmp_path)
    assert set(env) == {"PATH", "HOME", "PYTHONPATH", "QUORUM_URL", "QUORUM_PROGRESS",
                        "OMP_NUM_THREADS", "QUORUM_TOKEN"}  # fmt: skip
    me = ok(server.cli("dana", "whoami", cwd=tmp_path))
    assert me.out.startswith("Dana Scientist <dana@demo.quorum>: data_scientist")
    assert me.modules and "httpx" in me.modules
    assert "core.client.cli" in me.modules and "core.cli.main" not in me.modules


def test_full_lifecycle(server: QuorumServer, files: dict[str, Path], tmp_path: Path) -> None:
    def run(who: str, *args: str) -> Result:
        return ok(server.cli(who, *args, cwd=tmp_path))

    created = run("dana", "--json", "models", "create", MODEL, "--team", "risk-analytics",
                  "--task", "binary_classification", "--risk-tier", "high", "--target", "y",
                  "--tag", "owner=dana").json()  # fmt: skip
    assert created["name"] == MODEL and created["risk_tier"] == "high"
    listed = run("blake", "models", "list", "--json").json()
    assert [m["name"] for m in listed] == [MODEL]

    first = run("dana", "models", "register", MODEL, str(files["v1"]), "--eval",
                str(files["eval"]), "--target", "y", "--tag", "run=1", "--submit")  # fmt: skip
    assert f"{MODEL} v1 registered (in_review)" in first.out
    second = run("dana", "models", "register", MODEL, str(files["v2"]), "--eval",
                 str(files["eval"]), "--notes", "more data", "--json").json()  # fmt: skip
    assert second["number"] == 2 and second["state"] == "registered"
    run("dana", "review", "submit", MODEL, "2", "--note", "ready")

    shown = run("sam", "--json", "versions", "show", MODEL, "1").json()
    assert shown["artifact_sha256"] == hashlib.sha256(files["v1"].read_bytes()).hexdigest()
    assert shown["evaluation"]["n_rows"] == 200 and "accuracy" in shown["evaluation"]["metrics"]
    assert shown["tags"] == {"run": "1"}

    for number in ("1", "2"):
        half = run("riley", "review", "approve", MODEL, number, "--reason", "metrics fine")
        assert "now in review" in half.out
        done = run("casey", "--json", "review", "approve", MODEL, number).json()
        assert done["state"] == "approved"
    assert run("riley", "review", "queue", "--json").json() == []

    refused = server.cli("dana", "models", "card", MODEL, "--section", "colour=blue", cwd=tmp_path)
    assert refused.code != 0 and "must look like section=text" in refused.err
    written = run("dana", "models", "card", MODEL,
                  "--section", "intended_use=Scoring toy applications in tests.",
                  "--section", "limitations=Trained on 200 synthetic rows.",
                  "--section", "data=Synthetic features x1..x4.",
                  "--section", "ethics=No personal data.",
                  "--section", "caveats=Not for real decisions.")  # fmt: skip
    assert "caveats, data, ethics, intended_use, limitations written" in written.out
    card = run("blake", "--json", "models", "show", MODEL).json()["card"]
    assert card["limitations"] == "Trained on 200 synthetic rows." and card["ethics"]
    for number, env in (("1", "staging"), ("1", "production"), ("2", "production")):
        promoted = run("riley", "deploy", "promote", MODEL, number, "--env", env)
        assert f"v{number} is live in {env}" in promoted.out
    before_rollback = datetime.now(UTC).isoformat()
    rolled = run("riley", "deploy", "rollback", MODEL, "--env", "production", "--reason", "drift")
    assert "v1 is live" in rolled.out
    status = run("blake", "deploy", "status", MODEL, "--json").json()
    assert status["live"] == {"staging": 1, "production": 1}
    actions = [(h["version"], h["action"]) for h in status["history"] if
               h["environment"] == "production"]  # fmt: skip
    assert sorted(actions) == sorted([(1, "promote"), (2, "promote"), (1, "rollback")])
    was = run("blake", "--json", "deploy", "live-at", MODEL, "--env", "production",
              "--at", before_rollback).json()  # fmt: skip
    assert was["version"] == 2

    ingested = run("dana", "--json", "monitor", "ingest", MODEL, str(files["predictions"])).json()
    assert ingested["rows"] == 300 and ingested["version"] == 1
    labelled = run("dana", "--json", "monitor", "labels", MODEL, str(files["labels"])).json()
    assert labelled["rows"] == 300
    report = run("blake", "monitor", "report", MODEL, "--json").json()
    assert report["model"] == MODEL and report["window"].startswith("2026-01-0")
    assert {f["feature"] for f in report["features"]} >= set(FEATURES)

    checklists = run("casey", "--json", "compliance", "checklist", MODEL, "1").json()
    template = checklists[0]["template"]
    item = checklists[0]["items"][0]["key"]
    run("casey", "compliance", "evidence", MODEL, "1", template, item, "--kind", "model_card",
        "--link", "https://wiki.example.com/validation/toy-scorer")  # fmt: skip
    document = tmp_path / "validation report.txt"
    document.write_text("Independent validation of toy-scorer v1: passed.")
    run("casey", "compliance", "evidence", MODEL, "1", template, item, "--file", str(document))
    # an item is met only with evidence (or a written reason why it needs none)
    set_item = run("casey", "--json", "compliance", "item", MODEL, "1", template, item,
                   "--status", "met", "--notes", "Checked against the policy.").json()  # fmt: skip
    assert set_item["status"] == "met"
    again = run("casey", "--json", "compliance", "checklist", MODEL, "1").json()
    stored = next(i for i in again[0]["items"] if i["key"] == item)
    assert stored["status"] == "met"
    assert {e["kind"] for e in stored["evidence"]} == {"model_card", "document"}
    uploaded = next(e for e in stored["evidence"] if e["kind"] == "document")
    assert uploaded["document_sha256"] == hashlib.sha256(document.read_bytes()).hexdigest()
    # the policy names who may sign each meaning: a compliance officer approves for production
    signed = run("casey", "--json", "compliance", "sign", MODEL, "1", "--meaning",
                 "approved for production", "--name", "Casey Compliance").json()  # fmt: skip
    assert signed["printed_name"] == "Casey Compliance"
    assert signed["artifact_sha256"] == shown["artifact_sha256"]

    pack = tmp_path / "pack.html"
    written = run("casey", "compliance", "pack", MODEL, "1", "--out", str(pack))
    assert str(pack) in written.out
    html = pack.read_text()
    assert html.startswith("<!DOCTYPE html>") and "Casey Compliance" in html
    assert not list(tmp_path.glob(".pack-*"))

    verified = run("ada", "audit", "verify", "--json").json()
    assert verified["intact"] is True and verified["checked"] > 10
    events = run("ada", "--json", "audit", "events", "--model", MODEL, "--limit", "200").json()
    seen = {e["action"] for e in events}
    assert {
        "model.created", "version.registered", "version.submitted", "deployment.promote",
        "deployment.rollback", "checklist.item_updated", "checklist.evidence_added",
        "signoff.signed",
    } <= seen, seen  # fmt: skip


def test_forbidden_is_403_one_line_and_audited(server: QuorumServer, tmp_path: Path) -> None:
    denied_before = server.count("audit_event", "action = 'permission.denied'")
    before = server.counts()
    refused = server.cli("blake", "models", "create", "not-mine", "--team", "risk-analytics",
                         "--task", "regression", cwd=tmp_path)  # fmt: skip
    assert refused.code == 3
    assert "permission" in refused.error_line().lower()
    assert refused.out == ""
    users = server.cli("dana", "users", "list", cwd=tmp_path)
    assert users.code == 3 and users.error_line()
    after = server.counts()
    assert server.count("audit_event", "action = 'permission.denied'") >= denied_before + 1
    changed = {t for t in before if before[t] != after[t]}
    assert changed <= {"audit_event"}, changed


def test_malformed_requests_are_4xx_and_change_nothing(
    server: QuorumServer, files: dict[str, Path], tmp_path: Path
) -> None:
    before = server.counts()
    bad_env = server.cli("riley", "deploy", "promote", MODEL, "1", "--env", "moon", cwd=tmp_path)
    assert bad_env.code == 2 and "moon" in bad_env.error_line()
    no_target = server.cli("dana", "models", "register", MODEL, str(files["v1"]), "--eval",
                           str(files["eval_no_target"]), "--target", "y", cwd=tmp_path)  # fmt: skip
    assert no_target.code == 2 and "'y'" in no_target.error_line()
    hostile = server.cli("dana", "models", "register", MODEL, str(files["hostile"]), "--eval",
                         str(files["eval"]), "--target", "y", cwd=tmp_path)  # fmt: skip
    assert hostile.code == 2 and "system" in hostile.error_line()
    unknown = server.cli("dana", "versions", "show", MODEL, "99", cwd=tmp_path)
    assert unknown.code == 2 and unknown.error_line()
    bad_window = server.cli("dana", "monitor", "report", MODEL, "--window", "yesterday",
                            cwd=tmp_path)  # fmt: skip
    assert bad_window.code == 2 and bad_window.error_line()
    usage = server.cli("dana", "deploy", "promote", MODEL, "one", "--env", "staging", cwd=tmp_path)
    assert usage.code == 2 and "invalid int value" in usage.error_line()
    missing = server.cli("dana", "monitor", "ingest", MODEL, str(tmp_path / "nope.csv"),
                         cwd=tmp_path)  # fmt: skip
    assert missing.code == 2 and "nope.csv" in missing.error_line()
    after = server.counts()
    changed = {t for t in before if before[t] != after[t]}
    assert changed <= {"audit_event"}, changed


@pytest.mark.parametrize(("token", "expected"), [(None, "QUORUM_TOKEN"), ("qrm_forged", "token")])
def test_no_valid_token_exits_4(server: QuorumServer, tmp_path: Path, token, expected) -> None:
    result = server.cli(token, "whoami", cwd=tmp_path)
    assert result.code == 4
    assert expected in result.error_line()
    assert result.out == ""


def test_unreachable_server_exits_5(server: QuorumServer, tmp_path: Path) -> None:
    gone = f"http://127.0.0.1:{free_port()}"
    result = server.cli("dana", "models", "list", cwd=tmp_path, env={"QUORUM_URL": gone})
    assert result.code == 5
    assert gone in result.error_line() and "QUORUM_URL" in result.error_line()


def test_progress_bar_on_request(
    server: QuorumServer, files: dict[str, Path], tmp_path: Path
) -> None:
    shown = server.cli("dana", "models", "register", MODEL, str(files["v2"]), "--eval",
                       str(files["eval"]), cwd=tmp_path, env={"QUORUM_PROGRESS": "1"})  # fmt: skip
    assert shown.code == 0, shown.err
    assert "the server checks and evaluates it" in shown.err and "kB" in shown.err
    assert "registered" in shown.out and "━" not in shown.out


def test_tokens_and_service_accounts_for_pipelines(server: QuorumServer, tmp_path: Path) -> None:
    def run(who: str, *args: str) -> Result:
        return ok(server.cli(who, *args, cwd=tmp_path))

    people = run("ada", "users", "list", "--json").json()
    assert {"dana@demo.quorum", "ada@demo.quorum"} <= {p["email"] for p in people}

    made = run("dana", "--json", "tokens", "create", "laptop", "--expires-in-days", "7").json()
    secret = made["token"]
    assert secret.startswith("qrm_") and made["name"] == "laptop"
    assert "Dana Scientist" in run(secret, "whoami").out
    assert made["id"] in [t["id"] for t in run("dana", "tokens", "list", "--json").json()]
    run("dana", "tokens", "revoke", str(made["id"]))
    assert server.cli(secret, "whoami", cwd=tmp_path).code == 4

    refused = server.cli("dana", "service-accounts", "create", "ci-bot", "--team",
                         "risk-analytics", "--role", "data_scientist", cwd=tmp_path)  # fmt: skip
    assert refused.code == 3 and refused.error_line()
    bot = run("ada", "--json", "service-accounts", "create", "ci-bot", "--team",
              "risk-analytics", "--role", "data_scientist").json()  # fmt: skip
    me = run(bot["token"], "whoami", "--json").json()
    assert me["token"]["kind"] == "service"
    assert MODEL in [m["name"] for m in run(bot["token"], "models", "list", "--json").json()]
    run("ada", "service-accounts", "revoke", str(bot["id"]))
    assert server.cli(bot["token"], "whoami", cwd=tmp_path).code == 4

    run("dana", "models", "create", "short-lived", "--team", "risk-analytics", "--task",
        "regression")  # fmt: skip
    archived = run(
        "dana", "--json", "models", "archive", "short-lived", "--reason", "a test"
    ).json()
    assert archived["archived"] is True
