"""What every web page shares: who is asking, CSRF, forms, templates and error pages.

Pages are thin like the API routes: parse the form, call one service, render
a template.  Who may do what is decided by the services; a page only shows or
hides controls with ``core.access.can`` so people are not offered what the
service would refuse.

CSRF.  A signed-in page carries the session's CSRF token in a hidden form
field (and a ``<meta>`` for scripts); the token is kept for rendering in the
``__Host-cv_csrf`` cookie (HttpOnly, SameSite=Strict), set at sign-in, and
checked by the same ``accounts.resolve`` as the API's ``X-CSRF-Token``.
Forms before sign-in (sign-in, second factor, enrolment) use a double-submit
token: a random ``__Host-cv_form`` cookie that the form must repeat.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute

from callvault.core.access import EmergencyGrant, Principal
from callvault.core.errors import AccessDenied, CallvaultError, RateLimited, Unauthenticated
from callvault.entrypoints.http import deps
from callvault.entrypoints.web import i18n, nav, static
from callvault.services import accounts
from callvault.services.context import Vault

SESSION_COOKIE = deps.SESSION_COOKIE
CSRF_COOKIE = "__Host-cv_csrf"
FORM_COOKIE = "__Host-cv_form"
CSRF_FIELD = "csrf"
MAX_FIELD = 2000  # characters of one form field; longer is refused, not cut
TEMPLATES = Path(__file__).parent / "templates"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class WebSettings:
    """Seconds of the browser's idle timer (the server's own limit is the session's)."""

    idle_seconds: int = 15 * 60
    warn_seconds: int = 2 * 60


def settings(request: Request) -> WebSettings:
    found = getattr(request.app.state, "web", None)
    return found if isinstance(found, WebSettings) else WebSettings()


def vault(request: Request) -> Vault:
    return deps.vault(request)


def client(request: Request) -> str | None:
    return request.client.host if request.client else None


def language(request: Request) -> str:
    return i18n.choose(request.query_params.get("lang"), request.cookies.get(i18n.LANGUAGE_COOKIE))


# --- forms ------------------------------------------------------------------------


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded form as text fields (files and over-long fields are refused)."""
    form = await request.form()
    fields: dict[str, str] = {}
    for key, value in form.multi_items():
        if not isinstance(value, str) or len(value) > MAX_FIELD:
            raise WebInputError("error.field_too_long")
        fields[key] = value if key not in fields else f"{fields[key]},{value}"
    return fields


Form = Annotated[dict[str, str], Depends(read_form)]


class WebInputError(CallvaultError):
    """A form the page itself cannot read; ``key`` names the message shown."""

    code = "invalid_input"
    http_status = 400

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def check_form_token(request: Request, form: dict[str, str]) -> None:
    """The double-submit check of forms shown before sign-in."""
    cookie = request.cookies.get(FORM_COOKIE, "")
    sent = form.get(CSRF_FIELD, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise AccessDenied("missing or wrong form token", reason="csrf")


# --- who is asking ----------------------------------------------------------------


def viewer(request: Request) -> Principal:
    """The signed-in person for a page that only reads; ``Unauthenticated`` otherwise."""
    return _resolve(request, None, "GET")


def actor(request: Request, form: dict[str, str]) -> Principal:
    """The signed-in person for a form that changes something: the CSRF field must match."""
    return _resolve(request, form.get(CSRF_FIELD, ""), "POST")


def _resolve(request: Request, csrf: str | None, method: str) -> Principal:
    token = request.cookies.get(SESSION_COOKIE)
    if not token or not request.cookies.get(CSRF_COOKIE):
        raise Unauthenticated()
    principal = accounts.resolve(
        vault(request),
        session_token=token,
        authorization=None,  # pages are for browser sessions only
        csrf_token=csrf,
        method=method,
        client=client(request),
    )
    request.state.principal = principal  # the request log names the session
    return principal


def set_cookie(response: Response, name: str, value: str) -> None:
    response.set_cookie(name, value, path="/", secure=True, httponly=True, samesite="strict")


def clear_session(response: Response) -> None:
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", secure=True, httponly=True, samesite="strict")


# --- rendering --------------------------------------------------------------------


def emergency_of(principal: Principal | None, now: dt.datetime) -> EmergencyGrant | None:
    grant = principal.emergency if principal is not None else None
    if isinstance(grant, EmergencyGrant) and grant.opened_at <= now < grant.expires_at:
        return grant
    return None


def render(
    request: Request,
    template: str,
    *,
    user: Principal | None = None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """``template`` with the shared context: ``i18n``, ``user``, ``nav``, tokens, settings."""
    lang = language(request)
    form_token = request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(32)
    web = settings(request)
    shared = {
        "i18n": i18n.Translator(lang),
        "t": i18n.Translator(lang).t,
        "lang": lang,
        "languages": i18n.LANGUAGE_NAMES,
        "path": request.url.path,
        "user": user,
        "nav": nav.items_for(str(user.role)) if user is not None else [],
        "csrf": request.cookies.get(CSRF_COOKIE, "") if user is not None else form_token,
        "static": static.url,
        "idle_seconds": web.idle_seconds,
        "warn_seconds": web.warn_seconds,
        "emergency": emergency_of(user, vault(request).now()),
    }
    html = _env.get_template(template).render(**shared, **context)
    response = HTMLResponse(html, status_code=status)
    if user is None and not request.cookies.get(FORM_COOKIE):
        set_cookie(response, FORM_COOKIE, form_token)
    if request.query_params.get("lang") in i18n.CATALOGUES:
        response.set_cookie(
            i18n.LANGUAGE_COOKIE, lang, path="/", secure=True, httponly=True, samesite="lax"
        )
    return response


def redirect(url: str, request: Request | None = None) -> Response:
    """303 to a local page; an htmx request gets ``HX-Redirect`` instead."""
    if request is not None and request.headers.get("hx-request"):
        return Response(status_code=200, headers={"hx-redirect": url})
    return RedirectResponse(url, status_code=303)


def error_page(request: Request, exc: CallvaultError) -> Response:
    if isinstance(exc, Unauthenticated):
        had_session = bool(request.cookies.get(SESSION_COOKIE))
        response = redirect("/signin?m=expired" if had_session else "/signin", request)
        clear_session(response)
        return response
    key = {
        "access_denied": "error.access_denied",
        "not_found": "error.not_found",
        "rate_limited": "error.rate_limited",
    }.get(exc.code, "error.invalid_input")
    if isinstance(exc, WebInputError):
        key = exc.key
    minutes = 0
    if isinstance(exc, RateLimited):
        minutes = max(1, (int(exc.params.get("retry_after", 60)) + 59) // 60)
    user = getattr(request.state, "principal", None)
    return render(
        request,
        "error.html",
        user=user if isinstance(user, Principal) else None,
        status=exc.http_status,
        message_key=key,
        detail=exc.message if key == "error.invalid_input" else "",
        minutes=minutes,
    )


class WebRoute(APIRoute):
    """A page route: vault errors become HTML pages (or a redirect to sign-in)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except CallvaultError as exc:
                return error_page(request, exc)

        return page
