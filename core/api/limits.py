"""Refuse request bodies over QUORUM_MAX_UPLOAD_MB while they stream in, before they are read
whole: by Content-Length when it is sent, else by counting the chunks as they arrive."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.api.problems import MEDIA_TYPE, PROBLEM_TYPE


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        state = {"seen": 0, "over": False, "started": False}

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["seen"] += len(message.get("body", b""))
                if state["seen"] > self.max_bytes:
                    state["over"] = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if state["over"]:
                return  # the refusal below replaces whatever the app made of a cut body
            state["started"] = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            pass
        if state["over"] and not state["started"]:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        mb = self.max_bytes // (1024 * 1024)
        body = {
            "type": PROBLEM_TYPE + "too_large",
            "title": "Request too large",
            "status": 413,
            "detail": f"The upload is larger than the limit of {mb} MB (QUORUM_MAX_UPLOAD_MB); "
            "send a smaller file or split it into batches.",
            "code": "too_large",
            "errors": [],
        }
        payload = json.dumps(body).encode()
        headers: list[Any] = [
            (b"content-type", MEDIA_TYPE.encode()),
            (b"content-length", str(len(payload)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
