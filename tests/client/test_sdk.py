"""The Python SDK (`core.sdk.Client`) against a real server on loopback."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio

from core.client.sdk import ArtifactMismatch
from core.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    QuorumError,
)
from core.sdk import Client
from tests.fixtures.quorum_server import (
    FEATURES,
    ROOT,
    SERVER_SIDE,
    QuorumServer,
    fitted,
    frame,
    production,
)

MODEL = "sdk-scorer"


@pytest.fixture(scope="module")
def people(server: QuorumServer) -> dict[str, Client]:
    clients = {who: Client(server.url, token) for who, token in server.tokens.items()}
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture(scope="module")
def live(people: dict[str, Client]) -> dict[str, object]:
    """MODEL with v1 live in production and v2 approved, registered through the SDK."""
    dana, riley = people["dana"], people["riley"]
    dana.create_model(MODEL, "risk-analytics", "binary_classification", target="y")
    sent: list[tuple[int, int]] = []
    estimator = fitted(0)
    v1 = dana.register_version(
        MODEL, estimator, frame(3), target="y", tags={"run": "nightly"}, submit=True,
        progress=lambda done, total: sent.append((done, total)),
    )  # fmt: skip
    v2 = dana.register_version(MODEL, fitted(1), frame(4), target="y", submit=True)
    for number in (1, 2):
        assert riley.approve(MODEL, number, "fine")["state"] == "approved"
    riley.promote(MODEL, 1, "production", "first release")
    return {"v1": v1, "v2": v2, "estimator": estimator, "sent": sent}


def test_register_streams_with_progress_and_reports_the_version(live: dict) -> None:
    v1, sent = live["v1"], live["sent"]
    assert v1["number"] == 1 and v1["state"] == "in_review" and v1["tags"] == {"run": "nightly"}
    assert len(v1["artifact_sha256"]) == 64
    assert sent and sent[-1][0] == sent[-1][1] > 0
    assert [d for d, _ in sent] == sorted(d for d, _ in sent)


def test_read_models_versions_and_deployments(people: dict[str, Client], live: dict) -> None:
    blake = people["blake"]
    model = blake.get_model(MODEL)
    assert [v["number"] for v in model["versions"]] in ([2, 1], [1, 2])
    assert blake.deploy_status(MODEL)["live"]["production"] == 1
    assert blake.get_version(MODEL, 2)["evaluation"]["target"] == "y"
    assert any(m["name"] == MODEL for m in blake.list_models())
    comparison = blake.compare(MODEL, 2)
    assert comparison["champion"] == 1 and comparison["rows"]


def test_load_model_downloads_verifies_and_loads(
    people: dict[str, Client], live: dict, server: QuorumServer
) -> None:
    blake = people["blake"]
    estimator = live["estimator"]
    x = frame(9)[FEATURES]
    loaded = blake.load_model(MODEL, env="production")
    np.testing.assert_allclose(loaded.predict_proba(x), estimator.predict_proba(x))
    assert type(blake.load_model(MODEL, version=2)).__name__ == "Pipeline"
    assert type(blake.load_model(MODEL)).__name__ == "Pipeline"
    with pytest.raises(NotFound, match="staging"):
        blake.load_model(MODEL, env="staging")
    with pytest.raises(InvalidInput):
        blake.load_model(MODEL, version=1, env="production")


def test_load_model_refuses_a_changed_artifact(
    people: dict[str, Client], live: dict, server: QuorumServer
) -> None:
    with sqlite3.connect(server.db_path) as conn:
        (key,) = conn.execute(
            "SELECT v.artifact_key FROM model_version v JOIN ml_model m ON m.id = v.model_id "
            "WHERE m.name = ? AND v.number = 2",
            (MODEL,),
        ).fetchone()
    path = server.directory / "artifacts" / key
    original = path.read_bytes()
    assert people["dana"].download_artifact(MODEL, 2) == original
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        with pytest.raises(QuorumError) as refused:
            people["dana"].load_model(MODEL, version=2)
        assert "SHA-256" in str(refused.value) or "changed" in str(refused.value)
    finally:
        path.write_bytes(original)


def test_the_sha256_check_is_the_clients_own(people: dict[str, Client], live: dict) -> None:
    with pytest.raises(ArtifactMismatch, match="SHA-256"):
        people["dana"].download_artifact(MODEL, 1, expected_sha256="0" * 64)


def test_idempotent_register_replays_and_refuses_a_different_body(
    people: dict[str, Client], live: dict, server: QuorumServer, tmp_path: Path
) -> None:
    dana = people["dana"]
    model, other, evaluation = tmp_path / "m.skops", tmp_path / "o.skops", tmp_path / "e.csv"
    sio.dump(fitted(2), model)
    sio.dump(fitted(3), other)
    frame(5).to_csv(evaluation, index=False)
    versions = server.count("model_version")
    first = dana.register_version(MODEL, model, evaluation, idempotency_key="ci-run-17")
    again = dana.register_version(MODEL, model, evaluation, idempotency_key="ci-run-17")
    assert again == first
    assert server.count("model_version") == versions + 1
    with pytest.raises(Conflict, match="Idempotency-Key"):
        dana.register_version(MODEL, other, evaluation, idempotency_key="ci-run-17")
    assert server.count("model_version") == versions + 1


def test_monitoring_from_dataframes(people: dict[str, Client], live: dict) -> None:
    dana = people["dana"]
    prod = production(240)
    logged = dana.log_predictions(MODEL, prod[["timestamp", "prediction_id", *FEATURES]])
    assert logged["rows"] == 240 and logged["version"] == 1
    labels = prod[["prediction_id", "y"]].rename(columns={"y": "label"})
    assert dana.log_labels(MODEL, labels)["rows"] == 240
    report = people["blake"].report(MODEL)
    assert report["environment"] == "production" and report["features"]


def test_refusals_raise_the_named_errors(
    people: dict[str, Client], live: dict, server: QuorumServer
) -> None:
    before = server.counts()
    with pytest.raises(PermissionDenied):
        people["blake"].register_version(MODEL, fitted(0), frame(1), target="y")
    with pytest.raises(PermissionDenied):
        people["dana"].approve(MODEL, 2)
    with pytest.raises(NotFound):
        people["dana"].get_model("no-such-model")
    with pytest.raises(InvalidInput):
        people["riley"].promote(MODEL, 2, "moon")
    with pytest.raises(InvalidInput):
        people["dana"].session.call("POST", "/models", json="not an object")
    with Client(server.url, "qrm_forged") as forged, pytest.raises(AuthenticationFailed):
        forged.list_models()
    after = server.counts()
    assert {t for t in before if before[t] != after[t]} <= {"audit_event"}


def test_client_needs_a_token(monkeypatch: pytest.MonkeyPatch, server: QuorumServer) -> None:
    monkeypatch.delenv("QUORUM_TOKEN", raising=False)
    with pytest.raises(AuthenticationFailed, match="QUORUM_TOKEN"):
        Client(server.url)
    with pytest.raises(InvalidInput, match="QUORUM_URL"):
        Client("ftp://example.com", "qrm_x")
    with pytest.raises(InvalidInput, match=r"Client\(token=\.\.\.\)"):
        Client("qrm_a-token-in-the-old-first-place")


def test_importing_the_sdk_loads_no_server_code() -> None:
    code = "import sys, core.sdk, core.client.cli\nprint('\\n'.join(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    modules = done.stdout.split()
    assert "core.client.sdk" in modules
    leaked = [m for m in modules if any(m == s or m.startswith(s + ".") for s in SERVER_SIDE)]
    assert leaked == []


def test_from_core_sdk_is_the_client() -> None:
    from core.client.sdk import Client as Real

    assert Client is Real
