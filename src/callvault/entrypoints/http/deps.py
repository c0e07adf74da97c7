"""Request dependencies shared by every route: the vault and the principal.

Routes never decide who may do what: they resolve the principal here and
hand it to one service call, which asks ``core.access.can``.
"""

from __future__ import annotations

from fastapi import Request

from callvault.core.access import Principal
from callvault.services import accounts
from callvault.services.context import Vault

SESSION_COOKIE = "__Host-cv_session"
CSRF_HEADER = "x-csrf-token"


def vault(request: Request) -> Vault:
    return request.app.state.vault  # type: ignore[no-any-return]


def principal(request: Request) -> Principal:
    """The signed-in person or the token's service principal; ``Unauthenticated`` otherwise.

    State-changing methods must carry the session's CSRF token (sessions
    only; bearer tokens are not sent by browsers on their own).
    """
    resolved = accounts.resolve(
        vault(request),
        session_token=request.cookies.get(SESSION_COOKIE),
        authorization=request.headers.get("authorization"),
        csrf_token=request.headers.get(CSRF_HEADER),
        method=request.method,
        client=request.client.host if request.client else None,
    )
    # The request log line carries the session's public id (never the cookie).
    request.state.principal = resolved
    return resolved
