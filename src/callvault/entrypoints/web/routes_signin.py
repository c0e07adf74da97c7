"""Sign-in pages: password, then TOTP or a recovery code; enrolment; sign-out (R7).

The same services as ``/api/v1/auth/*``: ``sessions.login``,
``sessions.second_factor``, ``sessions.logout`` and the enrolment pair in
``accounts``.  Messages name what happened without telling whether an
account exists (one answer for every failed password step).
"""

from __future__ import annotations

import urllib.parse

from fastapi import APIRouter, Request, Response

from callvault.core.errors import CallvaultError, InvalidInput, RateLimited, Unauthenticated
from callvault.entrypoints.web import i18n, nav
from callvault.entrypoints.web.common import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Form,
    WebRoute,
    actor,
    check_form_token,
    clear_session,
    client,
    redirect,
    render,
    set_cookie,
    vault,
    viewer,
)
from callvault.services import accounts, sessions

router = APIRouter(route_class=WebRoute, include_in_schema=False)

# Notices the sign-in page shows when sent there (``?m=``): a closed set.
NOTICES = {
    "expired": "signin.notice.expired",
    "idle": "signin.notice.idle",
    "signed_out": "signin.notice.signed_out",
    "enrolled": "signin.notice.enrolled",
}


def _minutes(exc: RateLimited) -> int:
    return max(1, (int(exc.params.get("retry_after", 60)) + 59) // 60)


@router.get("/")
def start(request: Request) -> Response:
    try:
        principal = viewer(request)
    except Unauthenticated:
        return redirect("/signin")
    return redirect(nav.home_for(str(principal.role)))


@router.get("/start")
def start_page(request: Request) -> Response:
    """The landing page of a role with no pages of its own yet."""
    return render(request, "start.html", user=viewer(request))


@router.get("/signin")
def signin_page(request: Request) -> Response:
    notice = NOTICES.get(request.query_params.get("m", ""))
    return render(request, "signin.html", notice=notice, error=None, username="")


@router.post("/signin")
def signin(request: Request, form: Form) -> Response:
    check_form_token(request, form)
    username = form.get("username", "")[:128]
    try:
        token = sessions.login(
            vault(request),
            username=username,
            password=form.get("password", ""),
            client=client(request),
        )
    except RateLimited as exc:
        error = ("signin.error.locked", _minutes(exc))
        return render(
            request, "signin.html", notice=None, error=error, username=username, status=429
        )
    except Unauthenticated:
        error = ("signin.error.credentials", 0)
        return render(
            request, "signin.html", notice=None, error=error, username=username, status=401
        )
    response = redirect("/signin/code")
    set_cookie(response, SESSION_COOKIE, token)
    return response


@router.get("/signin/code")
def code_page(request: Request) -> Response:
    return render(request, "signin_code.html", error=None)


@router.post("/signin/code")
def second_factor(request: Request, form: Form) -> Response:
    check_form_token(request, form)
    code = form.get("code", "").replace(" ", "") or None
    recovery = form.get("recovery_code", "").strip() or None
    try:
        done = sessions.second_factor(
            vault(request),
            session_token=request.cookies.get(SESSION_COOKIE),
            code=code,
            recovery_code=recovery if code is None else None,
            client=client(request),
        )
    except RateLimited as exc:
        error = ("signin.error.locked", _minutes(exc))
        return render(request, "signin_code.html", error=error, status=429)
    except InvalidInput:
        return render(request, "signin_code.html", error=("signin.error.no_code", 0), status=400)
    except Unauthenticated:
        # A wrong code and a pending step that ran out read the same; the
        # second sends the person back to the password.
        return render(request, "signin_code.html", error=("signin.error.code", 0), status=401)
    response = redirect(nav.home_for(str(done.principal.role)))
    set_cookie(response, SESSION_COOKIE, done.session_token)
    set_cookie(response, CSRF_COOKIE, done.csrf_token)
    return response


@router.post("/signout")
def signout(request: Request, form: Form) -> Response:
    why = "idle" if form.get("why") == "idle" else "signed_out"
    try:
        principal = actor(request, form)
        sessions.logout(vault(request), principal, request.cookies.get(SESSION_COOKIE))
    except (Unauthenticated, CallvaultError):
        pass  # already gone server-side: the cookies go all the same
    response = redirect(f"/signin?m={why}")
    clear_session(response)
    return response


@router.get("/keepalive")
def keepalive(request: Request) -> Response:
    """A request that keeps the session alive when someone chooses to stay."""
    viewer(request)
    return Response(status_code=204)


@router.get("/language")
def language(request: Request) -> Response:
    """Switch language: sets the cookie and goes back to a local page."""
    lang = i18n.choose(request.query_params.get("to"), None)
    back = request.query_params.get("next", "/")
    parsed = urllib.parse.urlsplit(back)
    if not back.startswith("/") or back.startswith("//") or parsed.scheme or parsed.netloc:
        back = "/"
    response = redirect(back)
    response.set_cookie(
        i18n.LANGUAGE_COOKIE, lang, path="/", secure=True, httponly=True, samesite="lax"
    )
    return response


# --- enrolment: the one-time link ``/enrol#<token>`` ---------------------------------


@router.get("/enrol")
def enrol_page(request: Request) -> Response:
    """The link's landing page; a script moves the fragment's token into the form."""
    return render(request, "enrol_link.html", error=None)


@router.post("/enrol/start")
def enrol_start(request: Request, form: Form) -> Response:
    check_form_token(request, form)
    token = form.get("token", "").strip()
    try:
        started = accounts.start_enrolment(vault(request), token)
    except Unauthenticated:
        return render(request, "enrol_link.html", error="enrol.error.link", status=401)
    return render(request, "enrol.html", started=started, token=token, error=None)


@router.post("/enrol/finish")
def enrol_finish(request: Request, form: Form) -> Response:
    check_form_token(request, form)
    token = form.get("token", "").strip()
    password = form.get("password", "")
    if password != form.get("password_again", ""):
        return render(
            request, "enrol.html", started=None, token=token, error=("enrol.error.mismatch", "")
        )
    try:
        codes = accounts.finish_enrolment(
            vault(request), token, password, form.get("code", "").replace(" ", "")
        )
    except Unauthenticated:
        return render(request, "enrol_link.html", error="enrol.error.link", status=401)
    except InvalidInput as exc:
        # Nothing changed and the authenticator stays set up: ask again without a new QR.
        error = ("enrol.error.refused", exc.message)
        return render(request, "enrol.html", started=None, token=token, error=error, status=400)
    return render(request, "enrol_done.html", codes=codes)
