"""API tokens for services such as the telephony system's recorder (R11).

A token is ``cvt_`` and 43 URL-safe characters (256 random bits).  It is
shown once, when created; the vault keeps only its SHA-256, so neither a
database dump nor this process's later memory can show it again.  A token
has one role, ``recorder`` (ingest into its one care unit, nothing else:
R11), is listed without its secret, records when it was last used and is
revoked for good.  Names are unique for good (revoked tokens keep theirs),
so ``token:<name>``, the token's actor in the audit log, always means one
token.  Creating, listing and revoking are administrator work
(``token.manage``) and each writes one audit entry.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Final

from callvault.core.access import Operation, Principal, Role
from callvault.core.audit import Action, Outcome, contains_personal_identifier
from callvault.core.errors import AlreadyExists, InvalidInput, NotFound, Unauthenticated
from callvault.core.recordings import validate_care_unit
from callvault.core.rows import ApiTokenRow
from callvault.services import audit, credentials
from callvault.services.context import Vault
from callvault.services.guard import authorise

PREFIX: Final = "cvt_"
_BEARER = re.compile(r"\ABearer +(cvt_[A-Za-z0-9_-]{43})\Z", re.IGNORECASE)
_NAME = re.compile(r"\A[a-z0-9][a-z0-9._-]{0,57}\Z")
_TOUCH_INTERVAL: Final = dt.timedelta(seconds=60)


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: never its secret."""

    id: uuid.UUID
    name: str
    role: str
    care_unit: str
    created_by: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @classmethod
    def of(cls, row: ApiTokenRow) -> TokenInfo:
        return cls(
            row.id,
            row.name,
            row.role,
            row.care_unit,
            row.created_by,
            row.created_at,
            row.last_used_at,
            row.revoked_at,
        )


@dataclass(frozen=True)
class NewToken:
    """The one time the secret exists outside its holder."""

    info: TokenInfo
    token: str


def validate_name(name: str) -> str:
    """Lowercase letters, digits, ``.``, ``_``, ``-``; at most 58; no identifiers."""
    clean = name.strip().lower() if isinstance(name, str) else ""
    if not _NAME.match(clean) or contains_personal_identifier(clean):
        raise InvalidInput("token name: 1 to 58 of a-z 0-9 . _ -, starting with a letter or digit")
    if re.search(r"\d{6}", clean):
        raise InvalidInput("token name must not contain long digit runs")
    return clean


def principal_of(row: ApiTokenRow) -> Principal:
    return Principal(
        name=f"token:{row.name}",
        role=row.role,
        care_units=frozenset({row.care_unit}),
        session=f"t{row.id.hex[:15]}",
    )


def create(vault: Vault, principal: Principal, name: str, care_unit: str) -> NewToken:
    """A new recorder token for ``care_unit``; ``NotFound`` for an unknown unit."""
    # Who is asking is settled before the input is looked at (R11, R13).
    authorise(vault, principal, Operation.TOKEN_MANAGE, None)
    clean, unit = validate_name(name), validate_care_unit(care_unit)
    secret = PREFIX + credentials.new_secret()
    row = ApiTokenRow(
        id=uuid.uuid4(),
        name=clean,
        token_hash=credentials.digest(secret),
        role=Role.RECORDER.value,
        care_unit=unit,
        created_by=principal.name,
        created_at=vault.now(),
    )
    with vault.store.transaction() as tx:
        if tx.accounts.get_care_unit(unit) is None:
            raise NotFound("care unit")
        if any(t.name == clean for t in tx.accounts.tokens()):
            raise AlreadyExists("token name")
        tx.accounts.insert_token(row)
        audit.record(vault, tx, principal, Action.TOKEN_CREATE, detail=_detail(row))
    return NewToken(TokenInfo.of(row), secret)


def _detail(row: ApiTokenRow) -> dict[str, str | int | bool | None]:
    # The name, unique for good, identifies the token: its actor in the log is
    # "token:<name>".  A hex id could hold a long digit run, which the log refuses.
    return {"name": row.name, "unit": row.care_unit}


def list_tokens(vault: Vault, principal: Principal) -> list[TokenInfo]:
    authorise(vault, principal, Operation.TOKEN_MANAGE, None)
    with vault.store.transaction() as tx:
        rows = tx.accounts.tokens()
        audit.record(vault, tx, principal, Action.TOKEN_LIST, detail={"results": len(rows)})
    return [TokenInfo.of(r) for r in rows]


def revoke(vault: Vault, principal: Principal, token_id: uuid.UUID) -> TokenInfo:
    """Revoke for good; ``NotFound`` if there is no such token (revoked ones stay listed)."""
    authorise(vault, principal, Operation.TOKEN_MANAGE, None)
    now = vault.now()
    with vault.store.transaction() as tx:
        row = tx.accounts.get_token(token_id)
        if row is None:
            raise NotFound("token")
        revoked = tx.accounts.revoke_token(token_id, now)
        audit.record(
            vault,
            tx,
            principal,
            Action.TOKEN_REVOKE,
            Outcome.SUCCESS if revoked else Outcome.FAILED,
            detail={**_detail(row), "already_revoked": not revoked},
        )
        row = tx.accounts.get_token(token_id)
    assert row is not None
    return TokenInfo.of(row)


def parse_bearer(authorization: str) -> str:
    match = _BEARER.match(authorization.strip())
    if not match:
        raise Unauthenticated()
    return match.group(1)


def resolve_bearer(vault: Vault, authorization: str) -> Principal:
    """The token's principal; ``Unauthenticated`` for a malformed, unknown or revoked token."""
    token_hash = credentials.digest(parse_bearer(authorization))
    now = vault.now()
    with vault.store.transaction() as tx:
        row = tx.accounts.token_by_hash(token_hash)
        if row is None or row.revoked_at is not None:
            raise Unauthenticated()
        if row.last_used_at is None or now - row.last_used_at >= _TOUCH_INTERVAL:
            tx.accounts.touch_token(row.id, now)
    return principal_of(row)
