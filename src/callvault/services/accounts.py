"""People and care units: accounts, enrolment, and who is asking (``resolve``).

There are no default credentials.  An account is created without a password;
its creator gets a one-time enrolment link (``https://host/enrol#<token>``:
the token sits in the fragment, which browsers never send to a server, so it
cannot end up in an access log), valid for 24 hours and stored only as
SHA-256.  Whoever opens it sets a password (``core.passwords`` policy) and
confirms a TOTP authenticator, and gets ten one-time recovery codes.  The
first administrator is made by the operator on the vault host
(``callvault users create-admin``).

Account management is administrator work (``user.manage``, ``unit.manage``);
every call writes exactly one audit entry, refusals included.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from callvault.core.access import (
    ANY,
    Operation,
    Principal,
    Role,
    account_role,
)
from callvault.core.audit import Action, Outcome, contains_personal_identifier
from callvault.core.errors import (
    AlreadyExists,
    IntegrityError,
    InvalidInput,
    NotFound,
    Unauthenticated,
)
from callvault.core.passwords import check_password
from callvault.core.recordings import validate_care_unit
from callvault.core.rows import CareUnitRow, UserRow
from callvault.services import audit, credentials, sessions, tokens
from callvault.services.context import Vault
from callvault.services.guard import authorise

ENROLMENT_LIFETIME: Final = dt.timedelta(hours=24)
_USERNAME = re.compile(r"\A[a-z][a-z0-9._-]{2,63}\Z")
_RESERVED = frozenset({"anonymous", "operator", "root", "system", "token"})
_UNIT_ROLES = frozenset({Role.CALL_HANDLER, Role.SUPERVISOR})


def validate_username(username: object) -> str:
    """3 to 64 of a-z 0-9 ``.`` ``_`` ``-``, starting with a letter; lower-cased.

    User names are written into the audit log as actors, so they are screened
    like any log text: no personnummer or phone number can become one.
    """
    name = username.strip().lower() if isinstance(username, str) else ""
    if not _USERNAME.match(name):
        raise InvalidInput("user name: 3 to 64 of a-z 0-9 . _ -, starting with a letter")
    if re.search(r"\d{6}", name) or contains_personal_identifier(name):
        raise InvalidInput("user name must not contain personal identifiers")
    if name in _RESERVED:
        raise InvalidInput("that user name is reserved")
    return name


def person_role(role: str) -> Role:
    """A role a person may hold: any account role but the recorder (tokens only)."""
    parsed = account_role(role)
    if parsed is Role.RECORDER:
        raise InvalidInput("the recorder role belongs to API tokens, not to people")
    return parsed


def _units(care_units: Iterable[str]) -> frozenset[str]:
    if isinstance(care_units, str):
        raise InvalidInput("care units must be a list")
    return frozenset(validate_care_unit(u) for u in care_units)


def _unit_name(name: object) -> str:
    text = name.strip() if isinstance(name, str) else ""
    if not 0 < len(text) <= 128 or not text.isprintable():
        raise InvalidInput("care unit name: 1 to 128 printable characters")
    if contains_personal_identifier(text):
        raise InvalidInput("care unit name must not contain personal identifiers")
    return text


# --- accounts ---------------------------------------------------------------------


@dataclass(frozen=True)
class Enrolment:
    """A one-time enrolment link's token; shown to the creator once, never stored."""

    username: str
    token: str
    expires_at: dt.datetime

    def link(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/enrol#{self.token}"


@dataclass(frozen=True)
class UserInfo:
    username: str
    role: str
    care_units: tuple[str, ...]
    enrolled: bool
    disabled: bool
    created_at: dt.datetime

    @classmethod
    def of(cls, row: UserRow) -> UserInfo:
        return cls(
            row.username,
            row.role,
            tuple(sorted(row.care_units)),
            row.password_hash is not None,
            row.disabled_at is not None,
            row.created_at,
        )


def _new_enrolment(username: str, now: dt.datetime) -> tuple[Enrolment, bytes]:
    token = credentials.new_secret()
    return Enrolment(username, token, now + ENROLMENT_LIFETIME), credentials.digest(token)


def create_user(
    vault: Vault,
    principal: Principal,
    username: str,
    role: str,
    care_units: Iterable[str] = (),
) -> Enrolment:
    """A new account without password; returns its enrolment link token.

    ``AlreadyExists`` for a taken name, ``NotFound`` for an unknown care
    unit, ``InvalidInput`` for a bad name or role, or a call handler or
    supervisor without a care unit.
    """
    # Who is asking is settled before the input is looked at (R11, R13).
    authorise(vault, principal, Operation.USER_MANAGE, None)
    name, parsed, units = validate_username(username), person_role(role), _units(care_units)
    if parsed in _UNIT_ROLES and not units:
        raise InvalidInput("a call handler or supervisor belongs to at least one care unit")
    now = vault.now()
    enrolment, token_hash = _new_enrolment(name, now)
    row = UserRow(
        id=uuid.uuid4(),
        username=name,
        role=parsed.value,
        created_at=now,
        care_units=units,
        enrol_token_hash=token_hash,
        enrol_expires_at=enrolment.expires_at,
    )
    with vault.store.transaction() as tx:
        if any(tx.accounts.get_care_unit(u) is None for u in units):
            raise NotFound("care unit")
        if tx.accounts.user_by_name(name) is not None:
            raise AlreadyExists("user")
        tx.accounts.insert_user(row)
        detail = {"user": name, "new_role": parsed.value, "units": len(units)}
        audit.record(vault, tx, principal, Action.USER_CREATE, detail=detail)
    return enrolment


def create_admin(vault: Vault, principal: Principal, username: str) -> Enrolment:
    """An administrator account (the way the first one is made, by the operator)."""
    return create_user(vault, principal, username, Role.ADMINISTRATOR.value)


def list_users(vault: Vault, principal: Principal) -> list[UserInfo]:
    authorise(vault, principal, Operation.USER_MANAGE, None)
    with vault.store.transaction() as tx:
        rows = tx.accounts.users()
        audit.record(vault, tx, principal, Action.USER_LIST, detail={"results": len(rows)})
    return [UserInfo.of(r) for r in rows]


def reset_user(vault: Vault, principal: Principal, username: str) -> Enrolment:
    """Clear password, TOTP and recovery codes, end every session, issue a new link.

    For a lost authenticator or a forgotten password.
    """
    authorise(vault, principal, Operation.USER_MANAGE, None)
    name = validate_username(username)
    now = vault.now()
    enrolment, token_hash = _new_enrolment(name, now)
    with vault.store.transaction() as tx:
        user = tx.accounts.user_by_name(name)
        if user is None:
            raise NotFound("user")
        tx.accounts.reset_enrolment(user.id, token_hash, enrolment.expires_at)
        ended = tx.accounts.end_user_sessions(user.id, now)
        audit.record(
            vault, tx, principal, Action.USER_RESET, detail={"user": name, "sessions_ended": ended}
        )
    vault.play_cache.clear()  # the ended sessions may not play on from memory
    return enrolment


def disable_user(vault: Vault, principal: Principal, username: str) -> None:
    """Disable for good: no sign-in, every session ended at once."""
    authorise(vault, principal, Operation.USER_MANAGE, None)
    name = validate_username(username)
    now = vault.now()
    with vault.store.transaction() as tx:
        user = tx.accounts.user_by_name(name)
        if user is None:
            raise NotFound("user")
        tx.accounts.disable_user(user.id, now)
        ended = tx.accounts.end_user_sessions(user.id, now)
        audit.record(
            vault,
            tx,
            principal,
            Action.USER_DISABLE,
            detail={"user": name, "sessions_ended": ended},
        )
    vault.play_cache.clear()  # the ended sessions may not play on from memory


# --- care units ---------------------------------------------------------------------


def create_care_unit(vault: Vault, principal: Principal, unit_id: str, name: str) -> CareUnitRow:
    """``AlreadyExists`` if the id is taken."""
    authorise(vault, principal, Operation.UNIT_MANAGE, None)
    row = CareUnitRow(validate_care_unit(unit_id), _unit_name(name), vault.now())
    with vault.store.transaction() as tx:
        if tx.accounts.get_care_unit(row.id) is not None:
            raise AlreadyExists("care unit")
        tx.accounts.insert_care_unit(row)
        audit.record(vault, tx, principal, Action.UNIT_CREATE, detail={"unit": row.id})
    return row


def list_care_units(vault: Vault, principal: Principal) -> list[CareUnitRow]:
    authorise(vault, principal, Operation.UNIT_MANAGE, None)
    with vault.store.transaction() as tx:
        rows = tx.accounts.care_units()
        audit.record(vault, tx, principal, Action.UNIT_LIST, detail={"results": len(rows)})
    return rows


# --- enrolment ------------------------------------------------------------------------


@dataclass(frozen=True)
class EnrolmentStart:
    """What the enrolment page shows: the TOTP secret as URI and QR code."""

    username: str
    otpauth_uri: str
    qr_svg: str
    expires_at: dt.datetime


def _enrolling(vault: Vault, token: str) -> UserRow:
    """The user the link belongs to; ``Unauthenticated`` (logged) for a bad or stale link."""
    now = vault.now()
    with vault.store.transaction() as tx:
        user = tx.accounts.user_by_enrolment(credentials.digest(token))
    expires = user.enrol_expires_at if user is not None else None
    if user is None or expires is None or expires <= now or user.disabled_at is not None:
        audit.record_alone(
            vault,
            Principal(name="anonymous", role="anonymous", session=sessions.NO_SESSION),
            Action.USER_ENROL,
            Outcome.DENIED,
            detail={"step": "link", "why": "unknown_or_expired"},
        )
        raise Unauthenticated()
    return user


def _enrol_failed(vault: Vault, user: UserRow, why: str, message: str) -> InvalidInput:
    actor = sessions.user_principal(user, sessions.NO_SESSION)
    detail = {"step": "finish", "why": why}
    audit.record_alone(vault, actor, Action.USER_ENROL, Outcome.FAILED, detail=detail)
    return InvalidInput(message)


def start_enrolment(vault: Vault, token: str) -> EnrolmentStart:
    """Make a fresh TOTP secret for the link's account (again, if called again)."""
    user = _enrolling(vault, token)
    secret = credentials.new_totp_secret()
    sealed = credentials.seal_totp(vault, user.id, secret)
    with vault.store.transaction() as tx:
        if not tx.accounts.set_pending_totp(user.id, credentials.digest(token), sealed):
            raise Unauthenticated()  # the link was used or replaced meanwhile
        actor = sessions.user_principal(user, sessions.NO_SESSION)
        audit.record(vault, tx, actor, Action.USER_ENROL, detail={"step": "start"})
    uri = credentials.totp_uri(secret, user.username)
    assert user.enrol_expires_at is not None
    return EnrolmentStart(user.username, uri, credentials.qr_svg(uri), user.enrol_expires_at)


def finish_enrolment(vault: Vault, token: str, password: str, totp_code: str) -> list[str]:
    """Set the password, confirm TOTP, retire the link; return ten recovery codes.

    ``InvalidInput`` (nothing changed, the link still works) for a password
    the policy refuses or a code that does not match; ``Unauthenticated``
    for a bad, used or expired link.
    """
    user = _enrolling(vault, token)
    if user.totp_secret is None:
        raise _enrol_failed(vault, user, "not_started", "start the enrolment first")
    try:
        clean = check_password(password, user.username)
    except InvalidInput as exc:
        raise _enrol_failed(vault, user, "password_policy", exc.message) from None
    try:
        secret = credentials.open_totp(vault, user.id, user.totp_secret)
    except IntegrityError:
        raise _enrol_failed(
            vault, user, "totp_secret_unreadable", "start the enrolment again"
        ) from None
    step = credentials.match_totp(secret, totp_code, vault.now())
    if step is None:
        raise _enrol_failed(vault, user, "bad_code", "the authenticator code does not match")
    password_hash = credentials.hash_password(clean)
    codes = credentials.new_recovery_codes()
    digests = tuple(credentials.recovery_digest(c) for c in codes)
    with vault.store.transaction() as tx:
        done = tx.accounts.finish_enrolment(
            user.id, credentials.digest(token), user.totp_secret, password_hash, step, digests
        )
        if done:
            actor = sessions.user_principal(user, sessions.NO_SESSION)
            audit.record(vault, tx, actor, Action.USER_ENROL, detail={"step": "finish"})
    if not done:
        raise Unauthenticated()  # a concurrent request used or restarted the enrolment
    return codes


# --- who is asking ------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """``GET /auth/me``: who you are signed in as; no personal data."""

    username: str
    role: str
    care_units: tuple[str, ...]
    emergency_until: dt.datetime | None
    emergency_units: tuple[str, ...] | None  # None: every unit


def profile(principal: Principal) -> Profile:
    grant = principal.emergency
    units: tuple[str, ...] | None = None
    if grant is not None and grant.care_units is not ANY:
        units = tuple(sorted(grant.care_units))
    return Profile(
        principal.name,
        str(principal.role),
        tuple(sorted(principal.care_units)),
        grant.expires_at if grant else None,
        units if grant else (),
    )


def resolve(
    vault: Vault,
    *,
    session_token: str | None,
    authorization: str | None,
    csrf_token: str | None,
    method: str,
    client: str | None,
) -> Principal:
    """Who sent this request: a signed-in person (session cookie) or a service (bearer token).

    ``Unauthenticated`` for no credentials, both kinds at once, or anything
    malformed, unknown, expired, revoked or still waiting for its second
    factor.  ``AccessDenied`` when a session makes a state-changing request
    (not GET, HEAD or OPTIONS) without its CSRF token; bearer tokens need
    none (browsers never attach them on their own).  ``client`` is accepted
    for symmetry with sign-in and not used here.
    """
    del client
    if authorization and session_token:
        raise Unauthenticated()
    if authorization:
        return tokens.resolve_bearer(vault, authorization)
    if session_token:
        return sessions.resolve_session(vault, session_token, csrf_token=csrf_token, method=method)
    raise Unauthenticated()
