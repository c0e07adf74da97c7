"""Pure ASGI middleware: security headers, the request log and last-resort
errors, and the request body limit.

Pure ASGI (no ``BaseHTTPMiddleware``) so a streamed audio response passes
through chunk by chunk: only the ``http.response.start`` message is touched.

Order, outermost first::

    SecurityHeaders  ->  Guard  ->  BodyLimit  ->  FastAPI (routing, handlers)

so the 500 that ``Guard`` sends and the 413 that ``BodyLimit`` sends carry
the security headers too.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callvault.entrypoints.http.errors import ERROR_CODE_STATE, generic_response, status_code

log = logging.getLogger("callvault.http")

# The UI extends this; it must never need 'unsafe-inline'.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("strict-transport-security", "max-age=63072000; includeSubDomains"),
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("permissions-policy", "camera=(), geolocation=(), microphone=(), payment=(), usb=()"),
)
# Pages of the web UI (text/html) get their own policy: scripts, styles and
# media from this origin only, still no inline script.  The one hash is the
# waveform library's fixed stylesheet in its shadow DOM (checked by the
# browser tests, which fail on any policy violation).
UI_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; "
    "style-src 'self' 'sha256-Y/8t1dAKa3ay+RZEiEFEDr8dFiQhpaFvYXXUfT3p6ZU='; "
    "img-src 'self'; media-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
NO_STORE = "no-store"
# Headers that name the software; removed whatever set them.
_BANNERS = frozenset({b"server", b"x-powered-by"})
_OWNED = frozenset(name.encode() for name, _ in SECURITY_HEADERS) | _BANNERS
_ENCODED = tuple((name.encode(), value.encode()) for name, value in SECURITY_HEADERS)
_ENCODED_UI = tuple(
    (k, UI_CONTENT_SECURITY_POLICY.encode() if k == b"content-security-policy" else v)
    for k, v in _ENCODED
)

# The principal a route resolved, put there by the request dependencies, so the
# request log can name the session (never the user).
PRINCIPAL_STATE = "principal"
_SESSION = re.compile(r"\A[0-9a-z]{16}\Z")
_CODE = re.compile(r"\A[a-z_]{1,40}\Z")
_METHOD = re.compile(r"\A[A-Z]{1,16}\Z")
_CUT_STATE = "response_cut"

DEFAULT_BODY_LIMIT = 64 * 1024
# Ingest streams audio to the encrypting writer, which enforces its own limit.
INGEST_ROUTE = ("POST", "/api/v1/recordings")


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


class SecurityHeadersMiddleware:
    """Puts :data:`SECURITY_HEADERS` on every response and removes banners.

    ``Cache-Control: no-store`` is forced under ``/api`` (metadata and audio)
    and is the default elsewhere, where a response may set its own.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        force_no_store = _is_api(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = _secured(message.get("headers", ()), force_no_store)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _secured(
    headers: Iterable[tuple[bytes, bytes]], force_no_store: bool
) -> list[tuple[bytes, bytes]]:
    kept = [(k, v) for k, v in headers if k.lower() not in _OWNED]
    has_cache_control = any(k.lower() == b"cache-control" for k, _ in kept)
    if force_no_store or not has_cache_control:
        kept = [(k, v) for k, v in kept if k.lower() != b"cache-control"]
        kept.append((b"cache-control", NO_STORE.encode()))
    html = any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in kept)
    return kept + list(_ENCODED_UI if html else _ENCODED)


class GuardMiddleware:
    """Writes one PHI-free log line per request and answers unexpected errors.

    The line holds the method, the route *template* (never the raw path, which
    may carry an identifier), the status, the duration, and the session's
    public id and error code when there are any.  An exception nothing else
    handled becomes a generic 500 if the response has not started, or a cut
    connection if it has; it is logged by type and code location only, since
    its text may quote request data.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        state: dict[str, Any] = scope.setdefault("state", {})
        status = 0

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        except Exception as exc:
            log.error("unhandled %s", _describe(exc))
            if status:
                state[_CUT_STATE] = True
            else:
                state[ERROR_CODE_STATE] = "server_error"
                await generic_response(500)(scope, receive, send_noting_status)
        finally:
            _log_request(scope, state, status, time.perf_counter() - began)


def _describe(exc: BaseException, depth: int = 0) -> str:
    """``Type at file:line``, then what it was raised from: never the message."""
    where = "?"
    tb = exc.__traceback__
    if tb is not None:
        while tb.tb_next is not None:
            tb = tb.tb_next
        where = f"{Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}"
    text = f"{type(exc).__name__} at {where}"
    inner = exc.__cause__
    if inner is not None and depth < 3:
        # e.g. the framework's "response already started" RuntimeError wraps
        # the error that cut a stream short.
        text += f" from {_describe(inner, depth + 1)}"
    return text


def _log_request(scope: Scope, state: dict[str, Any], status: int, seconds: float) -> None:
    method = scope.get("method", "")
    method = method if _METHOD.match(method) else "OTHER"
    template = getattr(scope.get("route"), "path", None)
    extras = ""
    session = getattr(state.get(PRINCIPAL_STATE), "session", None)
    if isinstance(session, str) and _SESSION.match(session):
        extras += f" session={session}"
    code = state.get(ERROR_CODE_STATE)
    if isinstance(code, str) and _CODE.match(code):
        extras += f" error={code}"
    if state.get(_CUT_STATE):
        extras += " cut"  # the body stopped short and the connection was dropped
    shown = template if isinstance(template, str) else "-"
    log.info("%s %s %d %.1fms%s", method, shown, status, seconds * 1000, extras)


class BodyLimitMiddleware:
    """Refuses request bodies over ``limit`` bytes with 413, except on ingest.

    A declared ``Content-Length`` over the limit is refused before the
    application runs; a body without one (chunked) is counted as it is read
    and refused once it passes the limit.
    """

    def __init__(self, app: ASGIApp, limit: int = DEFAULT_BODY_LIMIT) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) == INGEST_ROUTE:
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            status = _declared_status(declared, self.limit)
            if status:
                scope.setdefault("state", {})[ERROR_CODE_STATE] = status_code(status)
                await generic_response(status)(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # An HTTPException is the one error the framework lets
                    # through from body reading unchanged (others become 400).
                    raise HTTPException(status_code=413)
            return message

        await self.app(scope, limited_receive, send)


def _declared_status(declared: str, limit: int) -> int:
    if not (declared.isascii() and declared.isdigit()):
        return 400
    return 413 if int(declared) > limit else 0
