"""The HTTP session of the CLI and the SDK: a base URL, a bearer token, problems as errors.

A problem-details reply (RFC 9457) becomes the `core.errors` exception of its code, whose
message is the problem's one-sentence `detail`. A call the server never received (the
connection failed) is retried; calls that are safe to repeat (GET, DELETE, and POSTs carrying
an Idempotency-Key) are retried on any transport failure too.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlsplit

import httpx

from core.errors import (
    AuthenticationFailed,
    ConfigurationError,
    Conflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    QuorumError,
    UnsafeArtifact,
)

DEFAULT_URL = "http://127.0.0.1:8501"
API_PREFIX = "/api/v1"
CHUNK = 256 * 1024
RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "PUT"})
RETRY_STATUSES = frozenset({502, 503, 504})

Progress = Callable[[int, int], None]


class ServerUnreachable(QuorumError):
    """The server did not answer (wrong URL, server down, network)."""

    code = "unreachable"


class ServerFailed(QuorumError):
    """The server answered with a 5xx status."""

    code = "server_error"


ERRORS_BY_CODE: dict[str, type[QuorumError]] = {
    cls.code: cls
    for cls in (
        NotFound,
        PermissionDenied,
        InvalidTransition,
        Conflict,
        InvalidInput,
        UnsafeArtifact,
        ConfigurationError,
        AuthenticationFailed,
    )
}
ERRORS_BY_STATUS: dict[int, type[QuorumError]] = {
    400: InvalidInput,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: InvalidInput,
    422: InvalidInput,
}
HOW_TO_AUTHENTICATE = (
    "Set QUORUM_TOKEN to a personal access token (Profile page) or a service-account token "
    "(ask an admin)."
)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def _detail_text(item: Any) -> str:
    if isinstance(item, Mapping):
        where = item.get("loc") or item.get("field") or item.get("name")
        message = item.get("msg") or item.get("message") or item.get("detail") or ""
        if isinstance(where, list | tuple):
            where = ".".join(str(p) for p in where)
        return one_line(f"{where}: {message}" if where and message else message or str(item))
    return one_line(str(item))


def problem_error(response: httpx.Response) -> QuorumError:
    """The exception a problem-details (or any error) reply stands for, with its detail."""
    status = response.status_code
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, Mapping):
        body = {}
    code = str(body.get("code") or "")
    cls = ERRORS_BY_CODE.get(code) or ERRORS_BY_STATUS.get(status)
    if cls is None:
        cls = ServerFailed if status >= 500 else QuorumError
    detail = body.get("detail") or body.get("title")
    if not isinstance(detail, str) or not detail.strip():
        detail = _fallback_detail(response)
    raw = body.get("errors")
    details = [_detail_text(e) for e in raw] if isinstance(raw, list) else []
    error = cls(one_line(detail), details=[d for d in details if d and d not in detail])
    setattr(error, "status", status)  # noqa: B010 - QuorumError has no declared status
    return error


def _fallback_detail(response: httpx.Response) -> str:
    status = response.status_code
    if status == 401:
        return "The server refused the token; check QUORUM_TOKEN (it may have expired)."
    if status == 404:
        return (
            f"The server has no {response.request.url.path}; check QUORUM_URL points at a "
            "Quorum server of this version."
        )
    if status == 413:
        return "The upload is larger than the server accepts (QUORUM_MAX_UPLOAD_MB)."
    if status >= 500:
        return f"The server failed (HTTP {status}); try again, or ask an operator to check its log."
    reason = response.reason_phrase or "error"
    return f"The server refused the request (HTTP {status} {reason})."


def base_url(url: str | None) -> str:
    chosen = (url or os.environ.get("QUORUM_URL") or DEFAULT_URL).strip().rstrip("/")
    parts = urlsplit(chosen)
    if chosen.startswith("qrm_"):
        raise InvalidInput(
            "The server's address was given a token: call Client(url, token) or "
            "Client(token=...), and set QUORUM_URL to an address like " + DEFAULT_URL + "."
        )
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(
            f"QUORUM_URL {chosen!r} is not an http(s) address; set it like {DEFAULT_URL}."
        )
    return chosen


def bearer_token(token: str | None) -> str:
    secret = (token if token is not None else os.environ.get("QUORUM_TOKEN", "")).strip()
    if not secret:
        raise AuthenticationFailed(HOW_TO_AUTHENTICATE)
    if not secret.isascii() or not secret.isprintable() or " " in secret:
        raise AuthenticationFailed(
            "QUORUM_TOKEN holds spaces or characters a token never has; copy it again."
        )
    return secret


# --- multipart bodies ------------------------------------------------------------------------


@dataclass(frozen=True)
class FilePart:
    """A file field of a multipart body, read from `path` or `data` as the body is sent."""

    field: str
    filename: str
    path: Path | None = None
    data: bytes | None = None
    content_type: str = "application/octet-stream"

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        assert self.path is not None  # noqa: S101 - one of the two is always given
        return self.path.stat().st_size

    def chunks(self) -> Iterator[bytes]:
        if self.data is not None:
            for start in range(0, len(self.data), CHUNK):
                yield self.data[start : start + CHUNK]
            return
        assert self.path is not None  # noqa: S101
        with self.path.open("rb") as handle:
            while block := handle.read(CHUNK):
                yield block


def _quoted(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


@dataclass(frozen=True)
class Multipart:
    """A multipart/form-data body of known length that can be sent (streamed) again."""

    fields: Mapping[str, str]
    files: tuple[FilePart, ...]
    boundary: str

    @classmethod
    def of(cls, fields: Mapping[str, str | None], files: list[FilePart]) -> Multipart:
        kept = {k: v for k, v in fields.items() if v is not None}
        return cls(kept, tuple(files), "quorum-" + secrets.token_hex(16))

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def _heads(self) -> tuple[list[bytes], list[bytes], bytes]:
        dash = f"--{self.boundary}\r\n"
        plain = [
            (f'{dash}Content-Disposition: form-data; name="{_quoted(k)}"\r\n\r\n{v}\r\n').encode()
            for k, v in self.fields.items()
        ]
        heads = [
            (
                f'{dash}Content-Disposition: form-data; name="{_quoted(f.field)}"; '
                f'filename="{_quoted(f.filename)}"\r\nContent-Type: {f.content_type}\r\n\r\n'
            ).encode()
            for f in self.files
        ]
        return plain, heads, f"--{self.boundary}--\r\n".encode()

    def length(self) -> int:
        plain, heads, tail = self._heads()
        files = sum(len(h) + f.size + 2 for h, f in zip(heads, self.files, strict=True))
        return sum(len(p) for p in plain) + files + len(tail)

    def stream(self, progress: Progress | None = None) -> Iterator[bytes]:
        plain, heads, tail = self._heads()
        total, sent = self.length(), 0

        def step(block: bytes) -> bytes:
            nonlocal sent
            sent += len(block)
            if progress is not None:
                progress(sent, total)
            return block

        for part in plain:
            yield step(part)
        for head, file in zip(heads, self.files, strict=True):
            yield step(head)
            for block in file.chunks():
                yield step(block)
            yield step(b"\r\n")
        yield step(tail)


# --- the session -------------------------------------------------------------------------------


class Session:
    """One token against one server; `call` returns the decoded JSON reply or raises."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 300.0,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
    ) -> None:
        self.url = base_url(url)
        self._retry_delays = retry_delays
        self._http = httpx.Client(
            base_url=self.url + API_PREFIX,
            headers={
                "Authorization": f"Bearer {bearer_token(token)}",
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(timeout, connect=10.0),
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plain calls --

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        kept = {k: v for k, v in (params or {}).items() if v is not None}

        def send() -> httpx.Response:
            return self._http.request(method, path, params=kept, json=json, headers=headers)

        return _decoded(self._send(send, method in SAFE_METHODS or bool(idempotency_key)))

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.call("POST", path, json=body if body is not None else {}, **kwargs)

    def patch(self, path: str, body: Any) -> Any:
        return self.call("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self.call("DELETE", path)

    # -- uploads and downloads --

    def upload(
        self,
        path: str,
        body: Multipart,
        *,
        idempotency_key: str | None = None,
        progress: Progress | None = None,
    ) -> Any:
        """POST a streamed multipart body (never held in memory whole) and decode the reply."""
        headers = {"Content-Type": body.content_type, "Content-Length": str(body.length())}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key

        def send() -> httpx.Response:
            return self._http.post(path, content=body.stream(progress), headers=headers)

        return _decoded(self._send(send, bool(idempotency_key)))

    def download(
        self, path: str, sink: IO[bytes], *, params: Mapping[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> httpx.Headers:  # fmt: skip
        """Stream a GET reply into `sink`; return the reply's headers."""
        kept = {k: v for k, v in (params or {}).items() if v is not None}
        for delay in (*self._retry_delays, None):
            try:
                with self._http.stream("GET", path, params=kept) as reply:
                    if reply.status_code >= 400:
                        reply.read()
                        raise problem_error(reply)
                    total, done = int(reply.headers.get("Content-Length") or 0), 0
                    sink.seek(0)
                    sink.truncate()
                    for block in reply.iter_bytes(CHUNK):
                        sink.write(block)
                        done += len(block)
                        if progress is not None:
                            progress(done, max(total, done))
                    return reply.headers
            except httpx.TransportError as error:
                if delay is None:
                    raise self._unreachable(error) from None
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- internals --

    def _send(self, send: Callable[[], httpx.Response], repeatable: bool) -> httpx.Response:
        for delay in (*self._retry_delays, None):
            try:
                reply = send()
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                if delay is None:
                    raise self._unreachable(error) from None
            except httpx.TransportError as error:
                if not repeatable or delay is None:
                    raise self._unreachable(error) from None
            else:
                if not (repeatable and reply.status_code in RETRY_STATUSES and delay is not None):
                    return reply
            time.sleep(delay or 0)
        raise AssertionError("unreachable")  # pragma: no cover

    def _unreachable(self, error: httpx.TransportError) -> ServerUnreachable:
        reason = one_line(str(error)) or type(error).__name__
        return ServerUnreachable(
            f"Quorum at {self.url} did not answer ({reason}); check QUORUM_URL and that the "
            "server is running."
        )


def _decoded(reply: httpx.Response) -> Any:
    if reply.status_code >= 400:
        raise problem_error(reply)
    if reply.status_code == 204 or not reply.content:
        return None
    try:
        return reply.json()
    except ValueError:
        raise ServerFailed(
            f"The server's reply to {reply.request.method} {reply.request.url.path} was not "
            "JSON; check QUORUM_URL points at a Quorum server."
        ) from None


def path_of(*parts: str | int) -> str:
    """`/models/a%2Fb/versions/2` from ("models", "a/b", "versions", 2): names are quoted."""
    return "/" + "/".join(quote(str(p), safe="") for p in parts)
