"""The FastAPI app served at /api/v1 beside the pages: factory, error handlers, docs, limits.

Routers are thin like pages: parse the request, call the service the pages call, shape JSON.
The auth dependency lives in `core.api.deps` so routers can import it without a cycle.
"""

from __future__ import annotations

from typing import Any

import swagger_ui_bundle
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from core.api import (
    audit,
    compliance,
    deployments,
    findings,
    models,
    monitoring,
    reviews,
    session,
    users,
    versions,
)
from core.api.limits import BodyLimit
from core.api.problems import install
from core.artifacts import ArtifactStore, default_store
from core.config import Settings, get_settings
from core.db import Database

PREFIX = "/api/v1"
ASSETS = "/docs-assets"


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    store: ArtifactStore | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Quorum API",
        version="1",
        summary="Register, review, deploy, monitor and sign off scikit-learn models.",
        description="Every call acts as the token's owner and obeys the same rules as the "
        "pages. Errors are RFC 9457 problem details (application/problem+json).",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.db = db or Database(settings.database_url)
    app.state.store = store or default_store()
    install(app)
    for router in (
        users,
        models,
        versions,
        reviews,
        deployments,
        monitoring,
        compliance,
        findings,
        audit,
    ):
        app.include_router(router.router)
    app.include_router(session.router)
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="assets")
    app.add_api_route("/docs", _docs, include_in_schema=False, response_class=HTMLResponse)
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_mb * 1024 * 1024)
    return app


def _docs(request: Request) -> Any:
    """Swagger UI with its scripts and styles served by Quorum itself (no CDN)."""
    root = request.scope.get("root_path", "").rstrip("/")
    return get_swagger_ui_html(
        openapi_url=f"{root}/openapi.json",
        title="Quorum API",
        swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png",
    )
