"""Issue 14 through the API, the SDK and the CLI against a real server: a batch is voided
from the CLI and the SDK (point 1), a model without feature names is registered only with
its features (point 5), messages name the environment (point 10), and a version's decision
threshold and an identical file show in the answer (point 11)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression

from core.errors import InvalidInput, NotFound, PermissionDenied
from core.sdk import Client
from tests.fixtures.quorum_server import FEATURES, QuorumServer, fitted, frame, production

MODEL = "truth-scorer"


@pytest.fixture(scope="module")
def people(server: QuorumServer) -> Iterator[dict[str, Client]]:
    clients = {who: Client(server.url, token) for who, token in server.tokens.items()}
    yield clients
    for client in clients.values():
        client.close()


def test_point_5_and_11_registration_through_the_sdk(
    people: dict[str, Client], tmp_path: Path
) -> None:
    dana = people["dana"]
    dana.create_model("bare-sdk", "risk-analytics", "binary_classification", target="y")
    data = frame(5)
    bare = tmp_path / "bare.skops"  # one file, sent twice
    sio.dump(LogisticRegression().fit(data[FEATURES].to_numpy(), data["y"]), bare)
    swapped = data[["debt", "income", "age", "y"]]
    with pytest.raises(InvalidInput, match="saved without feature names"):
        dana.register_version("bare-sdk", bare, swapped, target="y")
    first = dana.register_version(
        "bare-sdk", bare, swapped, target="y", features=FEATURES, decision_threshold=0.4
    )
    assert first["feature_names"] == FEATURES and first["decision_threshold"] == 0.4
    assert first["warnings"] == []
    again = dana.register_version("bare-sdk", bare, swapped, target="y", features=FEATURES)
    assert again["number"] == 2
    assert again["warnings"] == [
        "v2's file is identical (same SHA-256) to v1; it adds a version with nothing new in it."
    ]


def test_point_1_and_10_void_from_the_cli_and_the_sdk(
    people: dict[str, Client], server: QuorumServer, tmp_path: Path
) -> None:
    dana, riley = people["dana"], people["riley"]
    dana.create_model(MODEL, "risk-analytics", "binary_classification", target="y")
    dana.register_version(MODEL, fitted(0), frame(3), target="y", submit=True)
    riley.approve(MODEL, 1, "fine")
    riley.promote(MODEL, 1, "staging", "try it")
    prod = production(200)
    sent = dana.log_predictions(MODEL, prod[["timestamp", "prediction_id", *FEATURES]], "staging")
    wrong = prod[["prediction_id", "y"]].rename(columns={"y": "label"})
    wrong["label"] = 1 - wrong["label"]  # the wrong outcomes, sent by mistake
    labelled = dana.log_labels(MODEL, wrong, "staging")
    before = server.count("audit_event", "action = 'monitoring.batch_voided'")
    void = server.cli(
        "dana", "monitor", "void", str(labelled["batch"]), "--reason", "labels were inverted",
        cwd=tmp_path,
    )  # fmt: skip
    assert void.code == 0, void.err
    assert void.out.startswith(f"Batch #{labelled['batch']} voided: 200 labels removed")
    assert server.count("audit_event", "action = 'monitoring.batch_voided'") == before + 1
    right = prod[["prediction_id", "y"]].rename(columns={"y": "label"})
    assert dana.log_labels(MODEL, right, "staging")["rows"] == 200  # accepted again
    voided = dana.void_batch(sent["batch"], "sent to the wrong environment")
    assert voided["kind"] == "predictions" and voided["rows"] == 200
    with pytest.raises(NotFound, match=f"No batch #{sent['batch'] + 999} is visible to you"):
        dana.void_batch(sent["batch"] + 999, "no such batch at all")
    again = server.cli(
        "dana",
        "monitor",
        "void",
        str(sent["batch"]),
        "--reason",
        "voided twice by mistake",
        cwd=tmp_path,
    )
    assert f"Batch #{sent['batch']} was already voided on" in again.error_line()
    prod_env = server.cli("riley", "deploy", "promote", MODEL, "1", "--env", "prod", cwd=tmp_path)
    assert prod_env.error_line() == (
        "error: There is no environment 'prod'; the environments are staging, production. "
        "Choose one of them."
    )


def test_point_2_a_threshold_change_waits_for_a_compliance_officer_over_the_api(
    people: dict[str, Client],
) -> None:
    dana, casey = people["dana"], people["casey"]
    dana.create_model("cut-sdk", "risk-analytics", "binary_classification", target="y")
    dana.register_version("cut-sdk", fitted(2), frame(6), target="y")
    answer = dana.set_decision_threshold("cut-sdk", 1, 0.35, "catch more defaults")
    change = answer["pending_change"]
    assert change["status"] == "pending" and "decision threshold -> 0.35" in change["summary"]
    assert dana.get_version("cut-sdk", 1)["decision_threshold"] is None  # not yet
    with pytest.raises(PermissionDenied, match="Only a compliance officer of cut-sdk's team"):
        dana.confirm_change(change["id"])
    assert casey.confirm_change(change["id"])["status"] == "confirmed"
    assert dana.get_version("cut-sdk", 1)["decision_threshold"] == 0.35
    goal = dana.update_model("cut-sdk", goal_metric="f1", goal_target=0.5, reason="a looser goal")
    assert goal["pending_change"]["status"] == "pending"
    refused = casey.refuse_change(goal["pending_change"]["id"], "the goal stands")
    assert refused["status"] == "refused"
