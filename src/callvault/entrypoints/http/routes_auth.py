"""Sign-in, enrolment, logout and ``me``: parse, call one service, render.

The session id travels only in the ``__Host-cv_session`` cookie (Secure,
HttpOnly, SameSite=Strict, Path=/, no Domain), never in a body or URL; the
CSRF token only in the body of the sign-in answer and then the
``X-CSRF-Token`` header.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from callvault.core.access import Principal
from callvault.entrypoints.http import deps
from callvault.services import accounts, sessions
from callvault.services.context import Vault

router = APIRouter(prefix="/api/v1", tags=["auth"])

VaultDep = Annotated[Vault, Depends(deps.vault)]
PrincipalDep = Annotated[Principal, Depends(deps.principal)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Every field has a default and every body is optional, so a request without
# credentials is answered 401 by the service, like any other, rather than a
# validation error that would tell the shape of a sign-in apart (R1).


class LoginBody(_Body):
    username: str = Field(default="", max_length=128)
    password: str = Field(default="", max_length=1024)


class SecondFactorBody(_Body):
    code: str | None = Field(default=None, max_length=16)
    recovery_code: str | None = Field(default=None, max_length=40)


class EnrolStartBody(_Body):
    token: str = Field(default="", max_length=64)


class EnrolFinishBody(_Body):
    token: str = Field(default="", max_length=64)
    password: str = Field(default="", max_length=1024)
    totp_code: str = Field(default="", max_length=16)


class LoginAnswer(BaseModel):
    second_factor: str = "totp"


class SignedInAnswer(BaseModel):
    csrf_token: str
    username: str
    role: str


class EnrolStartAnswer(BaseModel):
    username: str
    otpauth_uri: str
    qr_svg: str
    expires_at: dt.datetime


class EnrolFinishAnswer(BaseModel):
    recovery_codes: list[str]


class MeAnswer(BaseModel):
    username: str
    role: str
    care_units: list[str]
    emergency_until: dt.datetime | None
    emergency_units: list[str] | None


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def set_session_cookie(response: Response, token: str) -> None:
    response.set_cookie(
        deps.SESSION_COOKIE, token, path="/", secure=True, httponly=True, samesite="strict"
    )


@router.post("/auth/login")
def login(
    request: Request, response: Response, vault: VaultDep, body: LoginBody | None = None
) -> LoginAnswer:
    """Password step: sets a session cookie that is good only for ``/auth/totp``."""
    body = body or LoginBody()
    token = sessions.login(
        vault, username=body.username, password=body.password, client=_client(request)
    )
    set_session_cookie(response, token)
    return LoginAnswer()


@router.post("/auth/totp")
def second_factor(
    request: Request, response: Response, vault: VaultDep, body: SecondFactorBody | None = None
) -> SignedInAnswer:
    """Second step: a TOTP code or a recovery code; the session gets a new id."""
    body = body or SecondFactorBody()
    done = sessions.second_factor(
        vault,
        session_token=request.cookies.get(deps.SESSION_COOKIE),
        code=body.code,
        recovery_code=body.recovery_code,
        client=_client(request),
    )
    set_session_cookie(response, done.session_token)
    return SignedInAnswer(
        csrf_token=done.csrf_token, username=done.principal.name, role=str(done.principal.role)
    )


@router.post("/auth/logout", status_code=204)
def logout(request: Request, principal: PrincipalDep, vault: VaultDep) -> Response:
    sessions.logout(vault, principal, request.cookies.get(deps.SESSION_COOKIE))
    response = Response(status_code=204)
    response.delete_cookie(
        deps.SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict"
    )
    return response


@router.get("/auth/me")
def me(principal: PrincipalDep) -> MeAnswer:
    """Who this session or token is: name, role, care units (no personal data)."""
    found = accounts.profile(principal)
    return MeAnswer(
        username=found.username,
        role=found.role,
        care_units=list(found.care_units),
        emergency_until=found.emergency_until,
        emergency_units=None if found.emergency_units is None else list(found.emergency_units),
    )


@router.post("/auth/enrol/start")
def enrol_start(vault: VaultDep, body: EnrolStartBody | None = None) -> EnrolStartAnswer:
    """Open an enrolment link: a new TOTP secret as otpauth URI and inline SVG QR code."""
    body = body or EnrolStartBody()
    started = accounts.start_enrolment(vault, body.token)
    return EnrolStartAnswer(
        username=started.username,
        otpauth_uri=started.otpauth_uri,
        qr_svg=started.qr_svg,
        expires_at=started.expires_at,
    )


@router.post("/auth/enrol/finish")
def enrol_finish(vault: VaultDep, body: EnrolFinishBody | None = None) -> EnrolFinishAnswer:
    """Set the password and confirm TOTP; answers the ten recovery codes, once."""
    body = body or EnrolFinishBody()
    codes = accounts.finish_enrolment(vault, body.token, body.password, body.totp_code)
    return EnrolFinishAnswer(recovery_codes=codes)
