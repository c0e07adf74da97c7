"""The application object of the HTTPS API.

Every route lives under ``/api/v1`` and needs a principal, except
``GET /healthz``, which says only that the process answers (R1).  FastAPI's
own documentation pages are off; the OpenAPI document is served at
``/api/v1/openapi.json`` to a signed-in principal only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse

from callvault.entrypoints.http import (
    audio,
    deps,
    errors,
    routes_admin,
    routes_audit,
    routes_auth,
    routes_jobs,
    routes_lifecycle,
    routes_privacy,
    routes_recordings,
)
from callvault.entrypoints.http.middleware import (
    BodyLimitMiddleware,
    GuardMiddleware,
    SecurityHeadersMiddleware,
)
from callvault.entrypoints.web import install as install_web
from callvault.services.context import Vault

API_PREFIX = "/api/v1"
OPENAPI_PATH = f"{API_PREFIX}/openapi.json"
# The document names the API version, not the software's: no version banner.
API_VERSION = "1"


def create_app(vault: Vault, *, web: bool = True) -> FastAPI:
    """The ASGI application serving ``vault``; the caller runs it behind TLS.

    ``web`` adds the pages of the web UI (``entrypoints.web``) beside the API.
    """
    app = FastAPI(
        title="callvault",
        version=API_VERSION,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    # "/x/" is not "/x": no redirects that echo a path back.
    app.router.redirect_slashes = False
    app.state.vault = vault
    errors.install(app)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(GuardMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    app.include_router(_open_routes())
    app.include_router(_document_routes(app))
    for module in (routes_auth, routes_admin, routes_recordings, routes_audit):
        app.include_router(module.router)
    app.include_router(routes_privacy.router)
    app.include_router(routes_lifecycle.router)
    app.include_router(routes_jobs.router)
    # First in the table: nearly every request is a player's range, and the
    # router tries routes in order (matching costs as much as the vault's work).
    app.router.routes.insert(0, audio.route())
    if web:
        install_web(app)
    return app


def _open_routes() -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        """The one route open without credentials: no data, no version, no checks
        an anonymous caller could use to probe the vault."""
        return {"status": "ok"}

    return router


def _document_routes(app: FastAPI) -> APIRouter:
    router = APIRouter()

    @router.get(OPENAPI_PATH, include_in_schema=False, dependencies=[Depends(deps.principal)])
    def openapi() -> JSONResponse:
        """The OpenAPI document, for a signed-in person or a token."""
        document: dict[str, Any] = app.openapi()
        return JSONResponse(document)

    return router
