"""Findings and revalidation through the SDK and the `quorum` CLI against a real server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from core.errors import InvalidInput, NotFound
from core.sdk import Client
from tests.fixtures.quorum_server import QuorumServer, fitted, frame, server_side_modules

MODEL = "finding-scorer"


@pytest.fixture(scope="module")
def people(server: QuorumServer) -> Iterator[dict[str, Client]]:
    clients = {who: Client(server.url, token) for who, token in server.tokens.items()}
    yield clients
    for client in clients.values():
        client.close()


def test_a_finding_blocks_promotion_until_closed_and_a_revalidation_opens(
    people: dict[str, Client], server: QuorumServer, tmp_path: Path
) -> None:
    dana, riley = people["dana"], people["riley"]
    dana.create_model(MODEL, "risk-analytics", "binary_classification", target="y")
    dana.register_version(MODEL, fitted(0), frame(3), target="y", submit=True)
    riley.approve(MODEL, 1, "fine")
    due = (date.today() + timedelta(days=10)).isoformat()
    made = riley.raise_finding(
        MODEL, 1, severity="high", text="No stability test.", owner="dana@demo.quorum", due_on=due
    )
    with pytest.raises(InvalidInput) as refused:
        riley.promote(MODEL, 1, "production", "release")
    assert any(f"finding #{made['id']}" in d for d in refused.value.details)
    evidence = tmp_path / "stability.pdf"
    evidence.write_bytes(b"%PDF-1.4 stability test")
    answered = dana.answer_finding(made["id"], "Ran a stability test.", file=evidence)
    assert answered["status"] == "answered"
    assert answered["history"][-1]["evidence_file"] == "stability.pdf"
    assert [f["id"] for f in dana.my_findings()] == [made["id"]]
    done = server.cli("riley", "findings", "close", str(made["id"]), "--note", "ok", cwd=tmp_path)
    assert done.code == 0, done.err
    assert server_side_modules(done.modules) == [], "the client imported server code"
    listed = server.cli("dana", "--json", "findings", "list", MODEL, cwd=tmp_path)
    assert listed.code == 0, listed.err
    assert listed.json()[0]["status"] == "closed"  # type: ignore[index]
    riley.promote(MODEL, 1, "production", "finding closed")

    opened = people["morgan"].start_revalidation(MODEL, 1, "annual")
    assert opened["round"] == 2
    assert [r["status"] for r in riley.revalidation_rounds(MODEL, 1)] == ["open"]
    assert MODEL in [r["model"] for r in riley.revalidations()]
    with pytest.raises(NotFound):
        riley.finding(10_000)
