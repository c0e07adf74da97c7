"""The web UI: server-rendered pages over the same services as the HTTPS API.

``install(app)`` adds the pages and static files to the API's application.
Pages live outside ``/api``; they are Swedish by default and English on
request (``?lang=en`` or the language link), and every one of them passes
the strict Content-Security-Policy: no inline script or style.
"""

from __future__ import annotations

from fastapi import FastAPI

from callvault.entrypoints.web import (
    routes_admin,
    routes_emergency,
    routes_jobs,
    routes_lifecycle,
    routes_policies,
    routes_privacy,
    routes_recording,
    routes_review,
    routes_search,
    routes_signin,
    routes_tokens,
    static,
)
from callvault.entrypoints.web.common import WebSettings

__all__ = ["WebSettings", "configure", "install"]


def install(app: FastAPI) -> None:
    app.state.web = WebSettings()
    app.include_router(static.router)
    for module in (routes_signin, routes_search, routes_recording, routes_emergency):
        app.include_router(module.router)
    for module in (routes_review, routes_admin, routes_policies, routes_tokens, routes_jobs):
        app.include_router(module.router)
    for module in (routes_privacy, routes_lifecycle):
        app.include_router(module.router)


def configure(app: FastAPI, settings: WebSettings) -> None:
    """Replace the web settings (tests shorten the browser's idle timer)."""
    app.state.web = settings
