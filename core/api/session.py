"""The demo session cookie: set after a demo sign-in, cleared at sign-out.

The pages run over a websocket, which cannot set cookies, so the page that signs a demo user in
posts the signed value here and this answer sets it (httponly, SameSite=Lax, path /). The value
is checked before it is set, so nothing but a value this server signed ever becomes the cookie.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from core.config import Settings
from core.services import demo_session

router = APIRouter(tags=["demo session"], include_in_schema=False)


class DemoCookie(BaseModel):
    value: str


@router.post("/session/demo", status_code=204)
def set_demo_session(body: DemoCookie, request: Request) -> Response:
    settings: Settings = request.app.state.settings
    session = demo_session.read(settings, body.value)  # refused -> 401 problem
    response = Response(status_code=204)
    response.set_cookie(
        demo_session.COOKIE,
        body.value,
        max_age=max(0, session.expires - int(time.time())),
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.delete("/session/demo", status_code=204)
def clear_demo_session() -> Response:
    response = Response(status_code=204)
    response.delete_cookie(demo_session.COOKIE, path="/", httponly=True, samesite="lax")
    return response
