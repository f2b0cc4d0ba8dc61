"""The client's HTTP layer against a real HTTP server on loopback that answers what each test
scripts: problem details to errors and exit codes, retries, streamed multipart bodies."""

from __future__ import annotations

import email.parser
import email.policy
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.client.cli import exit_code, split_json_flag
from core.client.http import FilePart, Multipart, ServerFailed, ServerUnreachable, Session
from core.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    UnsafeArtifact,
)
from tests.fixtures.quorum_server import ROOT

PROBLEM = "application/problem+json"


@dataclass
class Reply:
    status: int
    body: bytes = b"{}"
    content_type: str = "application/json"
    drop: bool = False  # close the connection without answering


@dataclass
class Script:
    """Replies served in order (the last one repeats) and the requests that arrived."""

    replies: list[Reply] = field(default_factory=list)
    seen: list[dict] = field(default_factory=list)

    def next(self) -> Reply:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


def problem(status: int, code: str, detail: str, errors: list | None = None) -> Reply:
    body = {"type": f"https://quorum.dev/problems/{code}", "title": code, "status": status,
            "detail": detail, "code": code, "errors": errors or []}  # fmt: skip
    return Reply(status, json.dumps(body).encode(), PROBLEM)


@pytest.fixture
def stub() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            script.seen.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body,
                }  # fmt: skip
            )
            reply = script.next()
            if reply.drop:
                self.close_connection = True
                self.connection.close()
                return
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", script
    server.shutdown()
    server.server_close()


def session(url: str) -> Session:
    return Session(url, "qrm_test-token", retry_delays=(0.01, 0.01, 0.01))


@pytest.mark.parametrize(
    ("reply", "error", "code"),
    [
        (problem(403, "permission_denied", "You may not approve your own version."),
         PermissionDenied, 3),
        (problem(401, "authentication_failed", "The token is unknown or expired."),
         AuthenticationFailed, 4),
        (problem(404, "not_found", "There is no model named ghost."), NotFound, 2),
        (problem(409, "invalid_transition", "v1 is already approved."), InvalidTransition, 2),
        (problem(409, "conflict", "Someone else changed it first."), Conflict, 2),
        (problem(422, "unsafe_artifact", "The file could run code.", ["posix.system"]),
         UnsafeArtifact, 2),
        (Reply(400, b'{"detail": "Malformed JSON body."}'), InvalidInput, 2),
        (Reply(413, b"too big", "text/plain"), InvalidInput, 2),
        (Reply(500, b"<html>boom</html>", "text/html"), ServerFailed, 5),
    ],
)  # fmt: skip
def test_problems_become_named_errors(stub, reply: Reply, error: type, code: int) -> None:
    url, script = stub
    script.replies = [reply]
    with pytest.raises(error) as raised:
        session(url).get("/models")
    assert exit_code(raised.value) == code
    message = str(raised.value)
    assert "\n" not in message and message
    if reply.content_type == PROBLEM:
        assert message.startswith(json.loads(reply.body)["detail"])
    assert script.seen[0]["headers"]["Authorization"] == "Bearer qrm_test-token"


def test_validation_errors_are_kept_in_the_one_line(stub) -> None:
    url, script = stub
    errors = [{"loc": ["body", "risk_tier"], "msg": "must be low, medium or high"}]
    script.replies = [problem(422, "invalid_input", "The request is not valid.", errors)]
    with pytest.raises(InvalidInput) as raised:
        session(url).post("/models", {"risk_tier": "extreme"})
    assert str(raised.value) == (
        "The request is not valid. body.risk_tier: must be low, medium or high"
    )


def test_a_dropped_connection_is_retried_for_get_only(stub) -> None:
    url, script = stub
    script.replies = [Reply(0, drop=True), Reply(200, b'[{"name": "m"}]')]
    assert session(url).get("/models") == [{"name": "m"}]
    assert [s["method"] for s in script.seen] == ["GET", "GET"]

    script.seen.clear()
    script.replies = [Reply(0, drop=True), Reply(201, b'{"name": "m"}')]
    with pytest.raises(ServerUnreachable, match="QUORUM_URL"):
        session(url).post("/models", {"name": "m"})
    assert len(script.seen) == 1, "a POST without an Idempotency-Key is never sent twice"


def test_an_idempotent_upload_is_retried_with_the_same_key_and_body(stub, tmp_path: Path) -> None:
    url, script = stub
    model = tmp_path / 'odd "name".skops'
    model.write_bytes(bytes(range(256)) * 3000)
    body = Multipart.of(
        {"target": "y", "notes": "ünïcode notes", "sensitive": None},
        [FilePart("model_file", model.name, path=model), FilePart("eval_file", "e.csv", data=b"a,y\n1,0\n")],
    )  # fmt: skip
    sent: list[tuple[int, int]] = []
    script.replies = [Reply(0, drop=True), Reply(201, b'{"number": 3}')]
    reply = session(url).upload(
        "/models/m/versions", body, idempotency_key="key-1", progress=lambda d, t: sent.append((d, t))
    )  # fmt: skip
    assert reply == {"number": 3}
    assert len(script.seen) == 2
    first, second = script.seen
    assert first["body"] == second["body"]
    assert first["headers"]["Idempotency-Key"] == second["headers"]["Idempotency-Key"] == "key-1"
    assert int(second["headers"]["Content-Length"]) == len(second["body"]) == body.length()
    assert sent[-1] == (body.length(), body.length())

    head = f"Content-Type: {second['headers']['Content-Type']}\r\n\r\n".encode()
    parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + second["body"])
    parts = {p.get_param("name", header="content-disposition"): p for p in parsed.iter_parts()}
    assert set(parts) == {"target", "notes", "model_file", "eval_file"}
    assert parts["model_file"].get_payload(decode=True) == model.read_bytes()
    assert parts["model_file"].get_filename() == "odd %22name%22.skops"
    assert parts["notes"].get_payload(decode=True).decode() == "ünïcode notes"


def test_unreachable_server_is_one_sentence() -> None:
    with pytest.raises(ServerUnreachable) as raised:
        session("http://127.0.0.1:9").get("/me")
    assert "did not answer" in str(raised.value) and "http://127.0.0.1:9" in str(raised.value)


@pytest.mark.parametrize(
    ("argv", "args", "as_json"),
    [
        (["--json", "models", "list"], ["models", "list"], True),
        (["models", "list", "--json"], ["models", "list"], True),
        (["models", "--json", "list"], ["models", "list"], True),
        (["review", "comment", "m", "1", "--", "--json"], ["review", "comment", "m", "1", "--",
                                                         "--json"], False),
        (["models", "list"], ["models", "list"], False),
    ],
)  # fmt: skip
def test_json_flag_anywhere(argv: list[str], args: list[str], as_json: bool) -> None:
    assert split_json_flag(argv) == (args, as_json)


def test_cli_prints_the_problem_detail_and_exits_by_status(stub, tmp_path: Path) -> None:
    url, script = stub
    script.replies = [problem(403, "permission_denied", "Only an admin may list users.")]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "QUORUM_URL": url,
           "QUORUM_TOKEN": "qrm_t", "HOME": str(tmp_path)}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "core.entry", "users", "list", "--json"],
        env=env, cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (
        3,
        "",
        "error: Only an admin may list users.\n",
    )
    assert script.seen[0]["path"] == "/api/v1/users"


def test_an_unexpected_reply_is_one_line_not_a_traceback(stub, tmp_path: Path) -> None:
    url, script = stub
    script.replies = [Reply(200, b"[1, 2, 3]")]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "QUORUM_URL": url,
           "QUORUM_TOKEN": "qrm_t", "HOME": str(tmp_path)}  # fmt: skip
    command = [sys.executable, "-m", "core.entry", "whoami"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 5 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "QUORUM_DEBUG=1" in done.stderr
    debug = subprocess.run(command, env={**env, "QUORUM_DEBUG": "1"}, cwd=tmp_path,
                           capture_output=True, text=True)  # fmt: skip
    assert debug.returncode == 1 and "Traceback" in debug.stderr
