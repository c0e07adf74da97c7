"""Signing in with password and TOTP, browser sessions, throttling, logout (R7).

Sign-in is two steps.  ``login`` checks the password and opens a *pending*
session that can do nothing but ``second_factor``; that step checks a TOTP
code (or spends a recovery code) and gives the session a new id and its
CSRF token, so an id planted before sign-in is worthless afterwards
(session fixation).

Session ids are 256 random bits, kept only as SHA-256; the audit log names a
session by its 16-hex public id.  A session ends after 15 minutes without a
request or 8 hours after sign-in, whichever comes first, or at logout.

Failures are throttled twice, both counted in the database under keyed
hashes: per account (5 failures lock it for 15 minutes) and per client
address (after 10 failures, a doubling delay up to 15 minutes).  Unknown user
names are counted and locked exactly like known ones, and every refusal
reads the same, so neither the answer nor a lockout tells whether an
account exists.  Each attempt writes exactly one audit entry.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from callvault.core.access import ANY, EmergencyGrant, Principal, new_session_id
from callvault.core.audit import Action, Outcome
from callvault.core.errors import (
    AccessDenied,
    IntegrityError,
    InvalidInput,
    RateLimited,
    Unauthenticated,
)
from callvault.core.ports import AccountsRepo, Transaction
from callvault.core.rows import SessionRow, UserRow
from callvault.services import audit, credentials
from callvault.services.context import Vault
from callvault.services.throttles import ThrottleKeys

IDLE_TIMEOUT: Final = dt.timedelta(minutes=15)
ABSOLUTE_TIMEOUT: Final = dt.timedelta(hours=8)
PENDING_TIMEOUT: Final = dt.timedelta(minutes=5)
# last_seen is written at most this often: a busy page must not turn every
# request into a database write.  It makes the idle timeout up to a minute
# early, never late.
TOUCH_INTERVAL: Final = dt.timedelta(seconds=60)
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
NO_SESSION: Final = "-"  # the audit session of an attempt that has none


def user_principal(
    user: UserRow, session: str, emergency: EmergencyGrant | None = None
) -> Principal:
    return Principal(
        name=user.username,
        role=user.role,
        care_units=user.care_units,
        session=session,
        emergency=emergency,
    )


def _anonymous(session: str = NO_SESSION) -> Principal:
    return Principal(name="anonymous", role="anonymous", session=session)


def _fold(username: str) -> str:
    return username.strip().casefold()[:128]


def _can_sign_in(user: UserRow | None) -> bool:
    return user is not None and user.password_hash is not None and user.disabled_at is None


# --- step 1: password -----------------------------------------------------------------


def login(vault: Vault, *, username: str, password: str, client: str | None) -> str:
    """Check the password; return the id of a new pending session.

    ``Unauthenticated`` for any wrong, unknown, disabled or not yet enrolled
    account (one answer for all), ``RateLimited`` (``params["retry_after"]``
    in seconds) while the account or the address is throttled.
    """
    now = vault.now()
    name = _fold(username)
    keys = ThrottleKeys.of(vault, name, client)
    tag = credentials.client_tag(vault, client)
    with vault.store.transaction() as tx:
        wait = keys.retry_after(tx.accounts, now)
        user = tx.accounts.user_by_name(name)
    actor = user_principal(user, NO_SESSION) if user is not None else _anonymous()
    if wait:
        audit.record_alone(
            vault,
            actor,
            Action.AUTH_LOGIN_FAILED,
            Outcome.DENIED,
            detail={"step": "password", "why": "throttled", "client": tag},
        )
        raise RateLimited("sign-in attempts", retry_after=wait)
    # The slow hash runs outside any transaction: it must not hold the write lock.
    stored = user.password_hash if _can_sign_in(user) and user is not None else None
    if not credentials.verify_password(stored, password) or user is None:
        with vault.store.transaction() as tx:
            keys.fail(tx.accounts, now)
            audit.record(
                vault,
                tx,
                actor,
                Action.AUTH_LOGIN_FAILED,
                Outcome.FAILED,
                detail={"step": "password", "why": "bad_credentials", "client": tag},
            )
        raise Unauthenticated()
    return _open_pending(vault, user, password, tag, now)


def _open_pending(vault: Vault, user: UserRow, password: str, tag: str, now: dt.datetime) -> str:
    token = credentials.new_secret()
    row = SessionRow(
        id_hash=credentials.digest(token),
        public_id=new_session_id(),
        user_id=user.id,
        csrf_hash=credentials.digest(credentials.new_secret()),  # replaced at step 2
        created_at=now,
        last_seen_at=now,
    )
    rehashed = None
    if user.password_hash is not None and credentials.needs_rehash(user.password_hash):
        rehashed = credentials.hash_password(password)
    with vault.store.transaction() as tx:
        tx.accounts.purge_sessions(now - ABSOLUTE_TIMEOUT, now - IDLE_TIMEOUT)
        tx.accounts.insert_session(row)
        if rehashed is not None:
            tx.accounts.set_password_hash(user.id, rehashed)
        audit.record(
            vault,
            tx,
            user_principal(user, row.public_id),
            Action.AUTH_PASSWORD,
            detail={"client": tag},
        )
    return token


# --- step 2: TOTP or a recovery code -----------------------------------------------------


@dataclass(frozen=True)
class SignedIn:
    """A completed sign-in: the new session id (cookie) and its CSRF token."""

    session_token: str
    csrf_token: str
    principal: Principal


@dataclass(frozen=True)
class _Failure:
    error: Exception


def second_factor(
    vault: Vault,
    *,
    session_token: str | None,
    code: str | None = None,
    recovery_code: str | None = None,
    client: str | None,
) -> SignedIn:
    """Finish a pending sign-in with a TOTP code or one recovery code.

    The session gets a new id; the pending id stops working.  A code of a
    time step already used is refused (replay).  ``Unauthenticated`` for a
    wrong code or a missing, expired or already completed pending session
    (checked first, so an anonymous caller learns nothing else);
    ``RateLimited`` while throttled; ``InvalidInput`` unless exactly one of
    ``code`` and ``recovery_code`` is given.
    """
    now = vault.now()
    factor = _Factor(code, recovery_code, credentials.client_tag(vault, client))
    with vault.store.transaction() as tx:
        # Failures are committed (throttle count, audit entry) before raising.
        outcome = _second_factor(vault, tx, session_token, factor, client, now)
    if isinstance(outcome, _Failure):
        raise outcome.error
    return outcome


@dataclass(frozen=True)
class _Factor:
    code: str | None
    recovery_code: str | None
    client_tag: str

    @property
    def kind(self) -> str:
        return "totp" if self.code is not None else "recovery_code"


def _pending(
    repo: AccountsRepo, token: str | None, now: dt.datetime
) -> tuple[SessionRow, UserRow] | None:
    row = repo.session_by_hash(credentials.digest(token)) if token else None
    if row is None or row.second_factor_at is not None or row.ended_at is not None:
        return None
    if now - row.created_at >= PENDING_TIMEOUT:
        return None
    user = repo.get_user(row.user_id)
    if user is None or not _can_sign_in(user):
        return None
    return row, user


def _second_factor(
    vault: Vault,
    tx: Transaction,
    session_token: str | None,
    factor: _Factor,
    client: str | None,
    now: dt.datetime,
) -> SignedIn | _Failure:
    repo = tx.accounts
    found = _pending(repo, session_token, now)
    if found is None:
        return _Failure(Unauthenticated())
    row, user = found
    if (factor.code is None) == (factor.recovery_code is None):
        return _Failure(InvalidInput("give either a TOTP code or a recovery code"))
    actor = user_principal(user, row.public_id)
    keys = ThrottleKeys.of(vault, user.username, client)
    detail: dict[str, str | int | bool | None] = {
        "factor": factor.kind,
        "client": factor.client_tag,
    }
    wait = keys.retry_after(repo, now)
    if wait:
        audit.record(
            vault,
            tx,
            actor,
            Action.AUTH_TOTP_FAILED,
            Outcome.DENIED,
            detail={**detail, "why": "throttled"},
        )
        return _Failure(RateLimited("sign-in attempts", retry_after=wait))
    why, codes_left = _check_factor(vault, repo, user, factor, now)
    if why is not None:
        keys.fail(repo, now)
        audit.record(
            vault, tx, actor, Action.AUTH_TOTP_FAILED, Outcome.FAILED, detail={**detail, "why": why}
        )
        return _Failure(Unauthenticated())
    new_token, csrf = credentials.new_secret(), credentials.new_secret()
    if not repo.complete_session(
        row.id_hash, credentials.digest(new_token), credentials.digest(csrf), now
    ):
        return _Failure(Unauthenticated())  # a concurrent request completed it first
    repo.clear_throttle(keys.account)
    if codes_left is not None:
        detail["recovery_codes_left"] = codes_left
    audit.record(vault, tx, actor, Action.AUTH_LOGIN, detail=detail)
    return SignedIn(new_token, csrf, actor)


def _check_factor(
    vault: Vault, repo: AccountsRepo, user: UserRow, factor: _Factor, now: dt.datetime
) -> tuple[str | None, int | None]:
    """(None, codes left) if the factor is good and now spent; else (reason for the log, None)."""
    if factor.recovery_code is not None:
        wanted = credentials.recovery_digest(factor.recovery_code)
        if wanted not in user.recovery_hashes:
            return "bad_recovery_code", None
        left = tuple(h for h in user.recovery_hashes if h != wanted)
        if not repo.replace_recovery_hashes(user.id, user.recovery_hashes, left):
            return "raced", None
        return None, len(left)
    if user.totp_secret is None or factor.code is None:
        return "no_totp", None
    try:
        secret = credentials.open_totp(vault, user.id, user.totp_secret)
    except IntegrityError:
        return "totp_secret_unreadable", None
    step = credentials.match_totp(secret, factor.code, now)
    if step is None:
        return "bad_code", None
    return (None, None) if repo.use_totp_step(user.id, step) else ("replayed", None)


# --- using and ending a session -------------------------------------------------------


def _emergency(repo: AccountsRepo, user: UserRow, now: dt.datetime) -> EmergencyGrant | None:
    row = repo.active_emergency_grant(user.id, now)
    if row is None:
        return None
    try:
        return EmergencyGrant(
            holder=user.username,
            care_units=ANY if row.care_units is None else row.care_units,
            reason=row.reason,
            opened_at=row.opened_at,
            expires_at=row.expires_at,
        )
    except InvalidInput:
        return None  # a grant that does not validate grants nothing (fail closed)


def _live(row: SessionRow | None, now: dt.datetime) -> bool:
    return (
        row is not None
        and row.ended_at is None
        and row.second_factor_at is not None
        and now - row.last_seen_at < IDLE_TIMEOUT
        and now - row.created_at < ABSOLUTE_TIMEOUT
    )


def resolve_session(
    vault: Vault, session_token: str, *, csrf_token: str | None, method: str
) -> Principal:
    """The signed-in principal of a live session.

    ``Unauthenticated`` for an unknown, pending, ended, idle (15 min) or
    old (8 h) session; an expired one is ended on the way.  ``AccessDenied``
    (and an ``access:denied`` entry) when a state-changing ``method`` comes
    without the session's CSRF token.
    """
    now, method = vault.now(), method.upper()
    id_hash = credentials.digest(session_token)
    # Most requests only read: a read-only unit runs beside writers instead
    # of queueing for the write lock.  Anything that must write (end an
    # expired session, log a CSRF refusal, touch last_seen) goes the
    # writing way, which checks everything afresh.
    with vault.store.transaction(read_only=True) as tx:
        outcome = _peek_session(tx.accounts, id_hash, csrf_token, method, now)
    if outcome is None:
        with vault.store.transaction() as tx:
            outcome = _use_session(vault, tx, id_hash, csrf_token, method, now)
    if isinstance(outcome, _Failure):
        raise outcome.error
    return outcome


def _peek_session(
    repo: AccountsRepo, id_hash: bytes, csrf_token: str | None, method: str, now: dt.datetime
) -> Principal | _Failure | None:
    """The outcome if it needs no write, else None (for :func:`_use_session`)."""
    row = repo.session_by_hash(id_hash)
    if row is None:
        return _Failure(Unauthenticated())
    if not _live(row, now) or now - row.last_seen_at >= TOUCH_INTERVAL:
        return None
    if method not in SAFE_METHODS and not credentials.same_digest(csrf_token, row.csrf_hash):
        return None
    user = repo.get_user(row.user_id)
    if user is None or not _can_sign_in(user):
        return _Failure(Unauthenticated())
    return user_principal(user, row.public_id, _emergency(repo, user, now))


def _use_session(
    vault: Vault,
    tx: Transaction,
    id_hash: bytes,
    csrf_token: str | None,
    method: str,
    now: dt.datetime,
) -> Principal | _Failure:
    repo = tx.accounts
    row = repo.session_by_hash(id_hash)
    if row is None or not _live(row, now):
        if row is not None and row.ended_at is None and row.second_factor_at is not None:
            repo.end_session(id_hash, now)
        return _Failure(Unauthenticated())
    user = repo.get_user(row.user_id)
    if user is None or not _can_sign_in(user):
        return _Failure(Unauthenticated())
    principal = user_principal(user, row.public_id, _emergency(repo, user, now))
    if method not in SAFE_METHODS and not credentials.same_digest(csrf_token, row.csrf_hash):
        audit.record(
            vault,
            tx,
            principal,
            Action.ACCESS_DENIED,
            Outcome.DENIED,
            detail={"why": "csrf_token", "method": method[:16]},
        )
        return _Failure(AccessDenied("missing or wrong CSRF token", reason="csrf"))
    if now - row.last_seen_at >= TOUCH_INTERVAL:
        repo.touch_session(id_hash, now)
    return principal


def logout(vault: Vault, principal: Principal, session_token: str | None) -> None:
    """End the session server-side; its id answers 401 from now on."""
    if not session_token:
        raise InvalidInput("only a browser session can be logged out; revoke a token instead")
    digest = credentials.digest(session_token)
    with vault.store.transaction() as tx:
        ended = tx.accounts.end_session(digest, vault.now())
        audit.record(
            vault,
            tx,
            principal,
            Action.AUTH_LOGOUT,
            outcome=Outcome.SUCCESS if ended else Outcome.FAILED,
        )
    # A range read may not outlive the session in this process (see play_cache).
    vault.play_cache.forget_session(digest)
