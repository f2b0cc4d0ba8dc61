"""`quorum admin ...`, the operator commands, run as a real subprocess against a temporary
SQLite file (the client commands are tested against a real server in tests/client)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AUDIT_KEY = "cli-test-audit-key-" + "7" * 32
QUORUM = [sys.executable, "-m", "core.entry"]


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


@dataclass(frozen=True)
class Store:
    path: Path
    env: dict[str, str]
    upgrade: Result
    seed: Result


def run(env: dict[str, str], *args: str) -> Result:
    """`quorum admin ARGS` (`--json` may come first, like `quorum --json admin ...`)."""
    environ = {**env, "PYTHONPATH": str(ROOT)}
    head = ["--json"] if args[:1] == ("--json",) else []
    rest = list(args[1:] if head else args)
    done = subprocess.run(
        [*QUORUM, *head, "admin", *rest],
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,  # seeding trains the demo models; a busy machine takes minutes
        cwd=ROOT,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def environment(database: Path, artifacts: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUORUM_")}
    env["QUORUM_DATABASE_URL"] = f"sqlite:///{database}"
    env["QUORUM_ARTIFACT_STORE"] = str(artifacts)
    env["QUORUM_AUDIT_DIR"] = str(artifacts.parent / "audit")
    env["QUORUM_AUDIT_KEY"] = AUDIT_KEY  # one key, so a copy of the store verifies too
    env["QUORUM_SCHEDULER"] = "off"
    return env


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Migrated and seeded once through the CLI (seeding trains the demo models)."""
    root = tmp_path_factory.mktemp("cli")
    env = environment(root / "quorum.db", root / "artifacts")
    upgrade = run(env, "db", "upgrade")
    seed = run(env, "--json", "demo", "seed")
    return Store(root / "quorum.db", env, upgrade, seed)


def copy_of(store: Store, tmp_path: Path) -> dict[str, str]:
    """A private copy of the seeded store (artifacts shared), for tests that change it."""
    target = tmp_path / "copy.db"
    with sqlite3.connect(store.path) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return environment(target, Path(store.env["QUORUM_ARTIFACT_STORE"]))


def count(path: Path, table: str, where: str = "1=1") -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0])


def test_db_upgrade_then_demo_seed(store: Store) -> None:
    assert store.upgrade.code == 0, store.upgrade.err
    assert one_line(store.upgrade.out) == "Schema is at the latest revision."
    assert store.seed.code == 0, store.seed.err
    seeded = store.seed.json()
    assert seeded["status"] == "ok"
    assert "team risk-analytics" in seeded["created"]
    assert "user ada@demo.quorum" in seeded["created"]
    assert any(item.startswith("model ") for item in seeded["created"])
    assert count(store.path, "user") == 7
    assert count(store.path, "ml_model") >= 2


def test_demo_seed_twice_changes_nothing(store: Store) -> None:
    tables = ("user", "team", "rolegrant", "ml_model", "model_version", "audit_event")
    before = {t: count(store.path, t) for t in tables}
    again = run(store.env, "--json", "demo", "seed")
    assert again.code == 0, again.err
    assert again.json()["created"] == []
    assert {t: count(store.path, t) for t in tables} == before
    skipped = run(store.env, "demo", "seed", "--if-empty")
    assert skipped.code == 0 and "nothing seeded" in one_line(skipped.out)


def test_audit_verify_intact(store: Store) -> None:
    plain = run(store.env, "audit", "verify")
    assert plain.code == 0, plain.err
    assert one_line(plain.out).startswith("Audit trail intact")
    report = run(store.env, "audit", "verify", "--json").json()
    assert report["intact"] is True
    assert report["checked"] == count(store.path, "audit_event")


def test_audit_verify_fails_after_tampering(store: Store, tmp_path: Path) -> None:
    env = copy_of(store, tmp_path)
    with sqlite3.connect(tmp_path / "copy.db") as conn:
        conn.execute("DROP TRIGGER audit_event_no_update")  # as an insider with the file would
        conn.execute("UPDATE audit_event SET summary = 'nothing to see' WHERE seq = 4")
    plain = run(env, "audit", "verify")
    assert plain.code == 1
    line = one_line(plain.out)
    assert "broken at event #4" in line and "event #4 was rewritten" in line
    report = run(env, "--json", "audit", "verify")
    assert report.code == 1
    assert report.json()["intact"] is False and report.json()["first_broken_seq"] == 4


def test_operator_token_is_stored_only_as_a_hash(store: Store) -> None:
    issued = run(store.env, "users", "token", "dana@demo.quorum")
    assert issued.code == 0, issued.err
    token = one_line(issued.out)
    assert token.startswith("qrm_")
    with sqlite3.connect(store.path) as conn:
        stored = [row[0] for row in conn.execute("SELECT token_hash FROM accesstoken")]
    assert token not in stored and len(stored) >= 1
    as_json = run(store.env, "--json", "users", "token", "dana@demo.quorum", "--name", "ci")
    assert as_json.json()["token"].startswith("qrm_") and as_json.json()["expires_at"]


def test_create_and_grant_as_the_operator(store: Store, tmp_path: Path) -> None:
    env = copy_of(store, tmp_path)
    path = tmp_path / "copy.db"
    grants_before = count(path, "rolegrant")
    made = run(env, "users", "create", "new.admin@example.com", "New Admin", "--json")
    assert made.code == 0, made.err
    assert made.json()["email"] == "new.admin@example.com"
    granted = run(env, "users", "grant", "new.admin@example.com", "admin", "--as-operator")
    assert granted.code == 0, granted.err
    assert one_line(granted.out) == "new.admin@example.com now holds admin globally."
    in_team = run(env, "--json", "users", "grant", "blake@demo.quorum", "reviewer", "--team",
                  "risk-analytics")  # fmt: skip
    assert in_team.code == 0, in_team.err
    assert "in team risk-analytics" in in_team.json()["message"]
    assert count(path, "rolegrant") == grants_before + 2
    assert run(env, "audit", "verify").code == 0


def test_admin_refuses_without_an_explicit_database_url(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUORUM_")}
    for args in (("db", "upgrade"), ("demo", "seed"), ("users", "token", "ada@demo.quorum")):
        refused = run(env, *args)
        assert refused.code != 0 and refused.out == ""
        line = one_line(refused.err)
        assert "QUORUM_DATABASE_URL" in line and "QUORUM_URL" in line
        assert "Traceback" not in refused.err


def test_admin_help_says_it_runs_on_the_server(tmp_path: Path) -> None:
    helped = run({k: v for k, v in os.environ.items() if not k.startswith("QUORUM_")}, "--help")
    assert helped.code == 0
    text = " ".join(helped.out.split())
    assert "run on the server" in text and "QUORUM_DATABASE_URL" in text


def test_errors_are_one_line_and_non_zero(store: Store, tmp_path: Path) -> None:
    unknown = run(store.env, "users", "token", "ghost@example.com")
    assert unknown.code != 0 and "ghost@example.com" in one_line(unknown.err)
    bad_role = run(store.env, "users", "grant", "blake@demo.quorum", "overlord", "--as-operator")
    assert bad_role.code != 0 and "is not a role" in one_line(bad_role.err)
    usage = run(store.env, "users", "grant", "blake@demo.quorum")
    assert usage.code == 2 and "required: role" in one_line(usage.err)
    empty = environment(tmp_path / "never-migrated.db", tmp_path / "artifacts")
    unmigrated = run(empty, "audit", "verify")
    assert unmigrated.code != 0
    assert "quorum admin db upgrade" in one_line(unmigrated.err)
