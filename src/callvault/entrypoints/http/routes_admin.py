"""Administration: users, care units and API tokens.  Parse, call one service, render.

The services decide who may (``user.manage``, ``unit.manage``,
``token.manage``: administrators and the operator); these routes only pass
the principal along.  User names travel in bodies, never in URLs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from callvault.core.access import Principal
from callvault.entrypoints.http import deps
from callvault.services import accounts, tokens
from callvault.services.context import Vault

router = APIRouter(prefix="/api/v1", tags=["admin"])

VaultDep = Annotated[Vault, Depends(deps.vault)]
PrincipalDep = Annotated[Principal, Depends(deps.principal)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewUserBody(_Body):
    username: str = Field(max_length=64)
    role: str = Field(max_length=24)
    care_units: list[Annotated[str, Field(max_length=64)]] = Field(default=[], max_length=64)


class UsernameBody(_Body):
    username: str = Field(max_length=64)


class NewUnitBody(_Body):
    id: str = Field(max_length=64)
    name: str = Field(max_length=128)


class NewTokenBody(_Body):
    name: str = Field(max_length=64)
    care_unit: str = Field(max_length=64)


class EnrolmentAnswer(BaseModel):
    username: str
    enrolment_link: str
    expires_at: dt.datetime


class UserAnswer(BaseModel):
    username: str
    role: str
    care_units: list[str]
    enrolled: bool
    disabled: bool
    created_at: dt.datetime


class UsersAnswer(BaseModel):
    users: list[UserAnswer]


class UnitAnswer(BaseModel):
    id: str
    name: str
    created_at: dt.datetime


class UnitsAnswer(BaseModel):
    care_units: list[UnitAnswer]


class TokenAnswer(BaseModel):
    id: uuid.UUID
    name: str
    role: str
    care_unit: str
    created_by: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class NewTokenAnswer(TokenAnswer):
    token: str = Field(description="shown this once; the vault keeps only its hash")


class TokensAnswer(BaseModel):
    tokens: list[TokenAnswer]


def _enrolment(request: Request, found: accounts.Enrolment) -> EnrolmentAnswer:
    return EnrolmentAnswer(
        username=found.username,
        enrolment_link=found.link(str(request.base_url)),
        expires_at=found.expires_at,
    )


@router.post("/users", status_code=201)
def create_user(
    body: NewUserBody, request: Request, principal: PrincipalDep, vault: VaultDep
) -> EnrolmentAnswer:
    """A new account without password; answers its one-time enrolment link (24 h)."""
    found = accounts.create_user(vault, principal, body.username, body.role, body.care_units)
    return _enrolment(request, found)


@router.get("/users")
def list_users(principal: PrincipalDep, vault: VaultDep) -> UsersAnswer:
    users = accounts.list_users(vault, principal)
    return UsersAnswer(
        users=[
            UserAnswer(
                username=u.username,
                role=u.role,
                care_units=list(u.care_units),
                enrolled=u.enrolled,
                disabled=u.disabled,
                created_at=u.created_at,
            )
            for u in users
        ]
    )


@router.post("/users/reset")
def reset_user(
    body: UsernameBody, request: Request, principal: PrincipalDep, vault: VaultDep
) -> EnrolmentAnswer:
    """Clear the password and authenticator, end the sessions; a new enrolment link."""
    return _enrolment(request, accounts.reset_user(vault, principal, body.username))


@router.post("/users/disable", status_code=204)
def disable_user(body: UsernameBody, principal: PrincipalDep, vault: VaultDep) -> Response:
    accounts.disable_user(vault, principal, body.username)
    return Response(status_code=204)


@router.post("/care-units", status_code=201)
def create_care_unit(body: NewUnitBody, principal: PrincipalDep, vault: VaultDep) -> UnitAnswer:
    row = accounts.create_care_unit(vault, principal, body.id, body.name)
    return UnitAnswer(id=row.id, name=row.name, created_at=row.created_at)


@router.get("/care-units")
def list_care_units(principal: PrincipalDep, vault: VaultDep) -> UnitsAnswer:
    rows = accounts.list_care_units(vault, principal)
    return UnitsAnswer(
        care_units=[UnitAnswer(id=r.id, name=r.name, created_at=r.created_at) for r in rows]
    )


@router.post("/tokens", status_code=201)
def create_token(body: NewTokenBody, principal: PrincipalDep, vault: VaultDep) -> NewTokenAnswer:
    """A recorder token for one care unit; the secret is in this answer only."""
    made = tokens.create(vault, principal, body.name, body.care_unit)
    return NewTokenAnswer.model_validate({**dataclasses.asdict(made.info), "token": made.token})


@router.get("/tokens")
def list_tokens(principal: PrincipalDep, vault: VaultDep) -> TokensAnswer:
    found = tokens.list_tokens(vault, principal)
    return TokensAnswer(tokens=[TokenAnswer.model_validate(dataclasses.asdict(t)) for t in found])


@router.delete("/tokens/{token_id}")
def revoke_token(token_id: uuid.UUID, principal: PrincipalDep, vault: VaultDep) -> TokenAnswer:
    revoked = tokens.revoke(vault, principal, token_id)
    return TokenAnswer.model_validate(dataclasses.asdict(revoked))
