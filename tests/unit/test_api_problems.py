"""Problem details for every kind of error, and never a traceback, through the ASGI app."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.api.app import create_app
from core.config import Settings
from core.db import Database
from core.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    QuorumError,
    UnsafeArtifact,
)

CASES = [
    (AuthenticationFailed("Sign in again."), 401),
    (PermissionDenied("Not yours to do."), 403),
    (NotFound("No such model."), 404),
    (Conflict("Someone else changed it."), 409),
    (InvalidTransition("Already in review."), 409),
    (InvalidInput("The name is empty."), 422),
    (UnsafeArtifact("The file could run code."), 422),
]


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'q.db'}")
    app = create_app(settings, db=Database(settings.database_url))

    def fail(kind: int) -> None:
        if kind < len(CASES):
            raise CASES[kind][0]
        raise RuntimeError("secret internals /etc/passwd")

    app.add_api_route("/fail/{kind}", fail)
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("kind", range(len(CASES)))
def test_each_error_kind_has_its_status_and_sentence(client: TestClient, kind: int) -> None:
    error, status = CASES[kind]
    reply = client.get(f"/fail/{kind}")
    assert reply.status_code == status
    assert reply.headers["content-type"] == "application/problem+json"
    body = reply.json()
    assert isinstance(error, QuorumError)
    assert body == {
        "type": f"https://quorum.dev/problems/{error.code}",
        "title": body["title"],
        "status": status,
        "detail": error.user_message,
        "code": error.code,
        "errors": [],
    }
    assert ("www-authenticate" in reply.headers) == (status == 401)


def test_an_unexpected_error_is_a_plain_500_without_internals(client: TestClient) -> None:
    reply = client.get(f"/fail/{len(CASES)}")
    assert reply.status_code == 500
    body = reply.json()
    assert body["code"] == "server_error" and "nothing was changed" in body["detail"]
    assert "passwd" not in reply.text and "Traceback" not in reply.text
