"""The one place HTTP errors are rendered: ``{"error": code, "message": text}``.

Vault errors carry their status (``CallvaultError.http_status``) and a
message that holds no personal data by contract.  Everything else is
answered with a fixed text: request validation errors, routing errors and
unexpected exceptions may quote what the client sent (a personnummer in a
bad field, a phone number in a path), so none of their text is echoed or
logged.  Server-side failures (5xx) keep their stable code but answer a
generic message; the vault's own message goes to the log.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from callvault.core.errors import CallvaultError, RangeNotSatisfiable, RateLimited

log = logging.getLogger("callvault.http")

# Where the request log line finds the error code of a failed request.
ERROR_CODE_STATE = "error_code"

# Codes for the statuses the framework itself answers (routing, body limits).
_STATUS_CODES = {
    400: "invalid_input",
    401: "unauthenticated",
    403: "access_denied",
    404: "not_found",
    405: "method_not_allowed",
    411: "length_required",
    413: "too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    429: "rate_limited",
}
# Locations FastAPI reports validation errors in; anything else shows as "request".
_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def status_code(status: int) -> str:
    """The error code for a bare HTTP status."""
    return _STATUS_CODES.get(status, "server_error" if status >= 500 else "http_error")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return "error"


def generic_response(status: int) -> JSONResponse:
    """An error answer that says nothing but the status."""
    return error_response(status, status_code(status), _phrase(status))


def _note(request: Request, code: str) -> None:
    setattr(request.state, ERROR_CODE_STATE, code)


# RFC 9110 asks a 401 for a challenge; Bearer makes no browser open a password dialog.
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="callvault"'}


async def on_vault_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CallvaultError)
    _note(request, exc.code)
    status = exc.http_status
    headers = dict(_CHALLENGE) if status == 401 else {}
    if isinstance(exc, RangeNotSatisfiable):
        headers["Content-Range"] = f"bytes */{exc.size}"
    retry_after = exc.params.get("retry_after")
    if isinstance(exc, RateLimited) and isinstance(retry_after, int) and retry_after > 0:
        headers["Retry-After"] = str(retry_after)  # whole seconds (RFC 9110)
    if status >= 500:
        log.warning("request failed: %s: %s", exc.code, exc.message)
        return error_response(status, exc.code, _phrase(status), headers)
    return error_response(status, exc.code, exc.message, headers)


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    _note(request, "invalid_input")
    # Only the location kind (body, query, ...) is safe to name: field names
    # of free-form objects and the values themselves come from the client.
    where = "request"
    for error in exc.errors():
        loc = error.get("loc") or ()
        if loc and loc[0] in _LOCATIONS:
            where = str(loc[0])
            break
    return error_response(400, "invalid_input", f"the {where} is malformed or incomplete")


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    _note(request, status_code(exc.status_code))
    response = generic_response(exc.status_code)
    if exc.status_code == 401:
        response.headers.update(_CHALLENGE)
    if exc.status_code == 405 and exc.headers and "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response


def install(app: FastAPI) -> None:
    """Register the handlers above on ``app``.

    Unexpected exceptions are not handled here but by ``GuardMiddleware``
    before they reach the framework's outermost error middleware, which would
    re-raise them into the server's log with their text.
    """
    app.add_exception_handler(CallvaultError, on_vault_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
