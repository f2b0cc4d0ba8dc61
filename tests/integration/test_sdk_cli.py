"""The SDK Client and the `quorum` console script against a real SQLite store and artifact
directory, acting as token users with the same rules as the pages."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sqlmodel import select

from core import demo, migrate
from core.db import Database
from core.errors import AuthenticationFailed, NotFound, PermissionDenied, QuorumError
from core.models import ModelVersion
from core.sdk import Client
from core.services import registry, users

MODEL = "toy-scorer"
QUORUM = Path(sys.executable).with_name("quorum")


@dataclass
class Store:
    url: str
    db: Database
    artifacts: Path
    tokens: dict[str, str]

    def client(self, who: str) -> Client:
        return Client(self.tokens[who], database_url=self.url, artifact_store=str(self.artifacts))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    url = f"sqlite:///{tmp_path / 'quorum.db'}"
    migrate.upgrade(url)
    db = Database(url)
    demo.seed(db, with_models=False)
    dana = users.principal_by_email(db, "dana@demo.quorum")
    spec = registry.ModelSpec(
        name=MODEL, team=demo.DEMO_TEAM, task="binary_classification", target="y"
    )
    registry.create_model(db, dana, spec)
    tokens = {
        who: users.issue_token_as_operator(db, f"{who}@demo.quorum", "tests").secret
        for who in ("dana", "riley", "blake")
    }
    yield Store(url, db, tmp_path / "artifacts", tokens)
    db.dispose()


def data(seed: int, rows: int = 150) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 3)), columns=["income", "debt", "age"])
    frame["y"] = (frame["debt"] - frame["income"] + rng.normal(scale=0.5, size=rows) > 0).astype(
        int
    )
    return frame


def fitted(seed: int = 0):
    frame = data(seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5 + seed))
    return model.fit(frame[["income", "debt", "age"]], frame["y"])


# --- SDK ---------------------------------------------------------------------------------------


def test_sdk_register_review_deploy_and_load(store: Store) -> None:
    dana, riley = store.client("dana"), store.client("riley")
    estimator = fitted(0)
    first = dana.register_version(
        MODEL, estimator, data(1), target="y", tags={"run": "nightly"}, training_data=data(0)
    )
    assert first["version"] == 1 and first["state"] == "registered"
    second = dana.register_version(MODEL, fitted(1), data(2), target="y", submit=True)
    assert second["state"] == "in_review"
    assert dana.list_models() == [
        {"name": MODEL, "task": "binary_classification", "risk_tier": "medium", "versions": [2, 1]}
    ]
    with store.db.read() as session:
        v1 = session.exec(select(ModelVersion).where(ModelVersion.number == 1)).one()
    assert v1.tags == {"run": "nightly"} and v1.training_fingerprint["rows"] == 150
    assert v1.artifact_sha256 == first["artifact_sha256"]

    with pytest.raises(NotFound):
        dana.load_model(MODEL, env="production")
    assert dana.submit(MODEL, 1) == "in_review"
    with pytest.raises(PermissionDenied):
        dana.approve(MODEL, 1)
    assert riley.approve(MODEL, 1, "metrics fine") == "approved"
    riley.promote(MODEL, 1, "production", "first release")
    assert riley.approve(MODEL, 2) == "approved"
    riley.promote(MODEL, 2, "production")
    assert riley.deploy_status(MODEL) == {"staging": None, "production": 2}
    riley.rollback(MODEL, "production", "v2 drifts")
    assert riley.deploy_status(MODEL) == {"staging": None, "production": 1}

    live = store.client("blake").load_model(MODEL, env="production")
    x = data(7)[["income", "debt", "age"]]
    assert (live.predict(x) == estimator.predict(x)).all()
    np.testing.assert_allclose(live.predict_proba(x), estimator.predict_proba(x))
    assert type(dana.load_model(MODEL, version=2)).__name__ == "Pipeline"

    path = store.artifacts / v1.artifact_key
    raw = path.read_bytes()
    path.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    with pytest.raises(QuorumError) as tampered:
        dana.load_model(MODEL, env="production")
    assert "SHA-256" in tampered.value.user_message


def test_sdk_refuses_without_a_valid_token(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUORUM_TOKEN", raising=False)
    with pytest.raises(AuthenticationFailed):
        Client(database_url=store.url, artifact_store=str(store.artifacts))
    with pytest.raises(AuthenticationFailed):
        Client("qrm_not-a-token", database_url=store.url, artifact_store=str(store.artifacts))
    blake = store.client("blake")
    with pytest.raises(PermissionDenied):
        blake.register_version(MODEL, fitted(0), data(1), target="y")
    assert not store.artifacts.exists() or not any(store.artifacts.rglob("*.skops"))


# --- CLI ---------------------------------------------------------------------------------------


def quorum(store: Store, who: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "QUORUM_DATABASE_URL": store.url,
        "QUORUM_ARTIFACT_STORE": str(store.artifacts),
        "QUORUM_TOKEN": store.tokens[who],
    }
    return subprocess.run(
        [str(QUORUM), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def refused(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


def test_cli_register_review_and_deploy(store: Store, tmp_path: Path) -> None:
    model_file, eval_file = tmp_path / "model.skops", tmp_path / "eval.csv"
    sio.dump(fitted(0), model_file)
    data(1).to_csv(eval_file, index=False)
    hostile = tmp_path / "model.pkl"
    hostile.write_bytes(pickle.dumps(os.system))

    ok = quorum(
        store, "dana", "models", "register", MODEL, str(model_file), "--eval", str(eval_file),
        "--target", "y", "--tag", "team=risk", "--tag", "ci=yes", "--submit",
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert f"{MODEL} v1 registered (in_review)" in ok.stdout
    bad = quorum(
        store, "dana", "models", "register", MODEL, str(hostile), "--eval", str(eval_file),
        "--target", "y",
    )  # fmt: skip
    refused(bad, "posix.system")
    with store.db.read() as session:
        (v1,) = session.exec(select(ModelVersion)).all()
    assert v1.tags == {"team": "risk", "ci": "yes"} and v1.state == "in_review"

    refused(quorum(store, "dana", "review", "approve", MODEL, "1"), "permission")
    approve = quorum(store, "riley", "review", "approve", MODEL, "1", "--reason", "CI checks pass")
    assert approve.returncode == 0 and "now approved" in approve.stdout, approve.stderr
    promote = quorum(store, "riley", "deploy", "promote", MODEL, "1", "--env", "production")
    assert promote.returncode == 0 and "live in production" in promote.stdout, promote.stderr
    refused(quorum(store, "riley", "deploy", "rollback", MODEL, "--env", "production",
                   "--reason", "drift"), "no earlier version")  # fmt: skip

    status = quorum(store, "blake", "deploy", "status", MODEL, "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["live"] == {"staging": None, "production": 1}
    assert [(h["version"], h["action"]) for h in report["history"]] == [(1, "promote")]


def test_cli_reject_needs_a_reason_and_refusals_are_one_line(store: Store, tmp_path: Path) -> None:
    dana = store.client("dana")
    dana.register_version(MODEL, fitted(0), data(1), target="y", submit=True)
    empty = quorum(store, "riley", "review", "reject", MODEL, "1", "--reason", " ")
    refused(empty, "reason is required")
    reject = quorum(store, "riley", "review", "reject", MODEL, "1", "--reason", "Leaks the target.")
    assert reject.returncode == 0 and "now rejected" in reject.stdout, reject.stderr
    refused(quorum(store, "riley", "deploy", "promote", MODEL, "1", "--env", "production"),
            "cannot go to production", "0 of 1 approvals")  # fmt: skip
