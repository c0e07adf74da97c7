"""SQL for users, care units, sessions, API tokens and sign-in throttles.

The :class:`~callvault.core.ports.AccountsRepo` port on the connection of one
:class:`~callvault.adapters.db.store.SqlTransaction`, so an account change
and its audit entry commit together.  Conditional writes (``bool`` results)
put the expected state in the WHERE clause and count the rows they changed:
two requests racing for one enrolment link, TOTP step or recovery code
cannot both win.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from callvault.adapters.db.schema import (
    api_tokens,
    care_units,
    emergency_grants,
    sessions,
    throttles,
    user_care_units,
    users,
)
from callvault.core.errors import InvalidInput
from callvault.core.rows import (
    ApiTokenRow,
    CareUnitRow,
    EmergencyGrantRow,
    SessionRow,
    ThrottleRow,
    UserRow,
)

if TYPE_CHECKING:
    from callvault.adapters.db.store import SqlTransaction

# emergency_grants.care_units: a JSON array of care unit ids, or "*" for every unit.
ANY_UNIT = "*"


def encode_grant_units(units: Iterable[str] | None) -> str:
    """The stored form of an emergency grant's care units (None: every unit)."""
    return ANY_UNIT if units is None else json.dumps(sorted(units), separators=(",", ":"))


def decode_grant_units(text: str) -> frozenset[str] | None:
    if text == ANY_UNIT:
        return None
    try:
        items = json.loads(text)
    except ValueError:
        raise InvalidInput("malformed emergency grant") from None
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise InvalidInput("malformed emergency grant")
    return frozenset(items)


def _pack_hashes(hashes: tuple[bytes, ...]) -> str | None:
    return " ".join(h.hex() for h in hashes) if hashes else None


def _unpack_hashes(text: str | None) -> tuple[bytes, ...]:
    return tuple(bytes.fromhex(h) for h in text.split()) if text else ()


_USER_COLUMNS = [f.name for f in dataclasses.fields(UserRow) if f.name != "care_units"]


class SqlAccounts:
    """AccountsRepo over one SqlTransaction; see the port for each contract."""

    def __init__(self, tx: SqlTransaction) -> None:
        self._tx = tx

    # care units ------------------------------------------------------------

    def insert_care_unit(self, row: CareUnitRow) -> None:
        self._tx._exec(insert(care_units).values(**dataclasses.asdict(row)))

    def get_care_unit(self, unit_id: str) -> CareUnitRow | None:
        row = self._tx._first(select(care_units).where(care_units.c.id == unit_id))
        return CareUnitRow(row.id, row.name, row.created_at) if row else None

    def care_units(self) -> list[CareUnitRow]:
        rows = self._tx._rows(select(care_units).order_by(care_units.c.id))
        return [CareUnitRow(r.id, r.name, r.created_at) for r in rows]

    # users -----------------------------------------------------------------

    def insert_user(self, row: UserRow) -> None:
        values = {name: getattr(row, name) for name in _USER_COLUMNS}
        values["recovery_hashes"] = _pack_hashes(row.recovery_hashes)
        self._tx._exec(insert(users).values(**values))
        for unit in sorted(row.care_units):
            self._tx._exec(insert(user_care_units).values(user_id=row.id, care_unit=unit))

    def _user_where(self, condition: Any) -> UserRow | None:
        row = self._tx._first(select(users).where(condition))
        if row is None:
            return None
        units = self._tx._rows(
            select(user_care_units.c.care_unit).where(user_care_units.c.user_id == row.id)
        )
        return _user(row, frozenset(u.care_unit for u in units))

    def get_user(self, user_id: uuid.UUID) -> UserRow | None:
        return self._user_where(users.c.id == user_id)

    def user_by_name(self, username: str) -> UserRow | None:
        return self._user_where(users.c.username == username)

    def user_by_enrolment(self, token_hash: bytes) -> UserRow | None:
        return self._user_where(users.c.enrol_token_hash == token_hash)

    def users(self) -> list[UserRow]:
        units: dict[uuid.UUID, set[str]] = defaultdict(set)
        for link in self._tx._rows(select(user_care_units)):
            units[link.user_id].add(link.care_unit)
        rows = self._tx._rows(select(users).order_by(users.c.username))
        return [_user(r, frozenset(units[r.id])) for r in rows]

    def _update_user(self, user_id: uuid.UUID, *conditions: Any, **values: Any) -> bool:
        statement = update(users).where(users.c.id == user_id, *conditions).values(**values)
        return self._tx._exec(statement).rowcount == 1

    def set_pending_totp(self, user_id: uuid.UUID, token_hash: bytes, sealed: bytes) -> bool:
        return self._update_user(
            user_id,
            users.c.enrol_token_hash == token_hash,
            totp_secret=sealed,
            totp_last_step=None,
        )

    def finish_enrolment(
        self,
        user_id: uuid.UUID,
        token_hash: bytes,
        totp_secret: bytes,
        password_hash: str,
        totp_step: int,
        recovery_hashes: tuple[bytes, ...],
    ) -> bool:
        return self._update_user(
            user_id,
            users.c.enrol_token_hash == token_hash,
            users.c.totp_secret == totp_secret,
            password_hash=password_hash,
            totp_last_step=totp_step,
            recovery_hashes=_pack_hashes(recovery_hashes),
            enrol_token_hash=None,
            enrol_expires_at=None,
        )

    def reset_enrolment(
        self, user_id: uuid.UUID, token_hash: bytes, expires_at: dt.datetime
    ) -> None:
        self._update_user(
            user_id,
            password_hash=None,
            totp_secret=None,
            totp_last_step=None,
            recovery_hashes=None,
            enrol_token_hash=token_hash,
            enrol_expires_at=expires_at,
        )

    def disable_user(self, user_id: uuid.UUID, at: dt.datetime) -> None:
        self._update_user(user_id, users.c.disabled_at.is_(None), disabled_at=at)

    def set_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None:
        self._update_user(user_id, password_hash=password_hash)

    def use_totp_step(self, user_id: uuid.UUID, step: int) -> bool:
        fresh = or_(users.c.totp_last_step.is_(None), users.c.totp_last_step < step)
        return self._update_user(user_id, fresh, totp_last_step=step)

    def replace_recovery_hashes(
        self, user_id: uuid.UUID, old: tuple[bytes, ...], new: tuple[bytes, ...]
    ) -> bool:
        packed = _pack_hashes(old)
        unchanged = (
            users.c.recovery_hashes.is_(None)
            if packed is None
            else users.c.recovery_hashes == packed
        )
        return self._update_user(user_id, unchanged, recovery_hashes=_pack_hashes(new))

    # sessions --------------------------------------------------------------

    def insert_session(self, row: SessionRow) -> None:
        self._tx._exec(insert(sessions).values(**dataclasses.asdict(row)))

    def session_by_hash(self, id_hash: bytes) -> SessionRow | None:
        row = self._tx._first(select(sessions).where(sessions.c.id_hash == id_hash))
        return SessionRow(**row._asdict()) if row else None

    def complete_session(
        self, id_hash: bytes, new_id_hash: bytes, csrf_hash: bytes, at: dt.datetime
    ) -> bool:
        statement = (
            update(sessions)
            .where(
                sessions.c.id_hash == id_hash,
                sessions.c.second_factor_at.is_(None),
                sessions.c.ended_at.is_(None),
            )
            .values(id_hash=new_id_hash, csrf_hash=csrf_hash, second_factor_at=at, last_seen_at=at)
        )
        return self._tx._exec(statement).rowcount == 1

    def touch_session(self, id_hash: bytes, at: dt.datetime) -> None:
        self._tx._exec(
            update(sessions).where(sessions.c.id_hash == id_hash).values(last_seen_at=at)
        )

    def end_session(self, id_hash: bytes, at: dt.datetime) -> bool:
        statement = (
            update(sessions)
            .where(sessions.c.id_hash == id_hash, sessions.c.ended_at.is_(None))
            .values(ended_at=at)
        )
        return self._tx._exec(statement).rowcount == 1

    def end_user_sessions(self, user_id: uuid.UUID, at: dt.datetime) -> int:
        statement = (
            update(sessions)
            .where(sessions.c.user_id == user_id, sessions.c.ended_at.is_(None))
            .values(ended_at=at)
        )
        return int(self._tx._exec(statement).rowcount)

    def purge_sessions(self, created_before: dt.datetime, ended_before: dt.datetime) -> int:
        statement = delete(sessions).where(
            or_(sessions.c.created_at < created_before, sessions.c.ended_at < ended_before)
        )
        return int(self._tx._exec(statement).rowcount)

    # API tokens ------------------------------------------------------------

    def insert_token(self, row: ApiTokenRow) -> None:
        self._tx._exec(insert(api_tokens).values(**dataclasses.asdict(row)))

    def token_by_hash(self, token_hash: bytes) -> ApiTokenRow | None:
        row = self._tx._first(select(api_tokens).where(api_tokens.c.token_hash == token_hash))
        return ApiTokenRow(**row._asdict()) if row else None

    def get_token(self, token_id: uuid.UUID) -> ApiTokenRow | None:
        row = self._tx._first(select(api_tokens).where(api_tokens.c.id == token_id))
        return ApiTokenRow(**row._asdict()) if row else None

    def tokens(self) -> list[ApiTokenRow]:
        rows = self._tx._rows(select(api_tokens).order_by(api_tokens.c.created_at))
        return [ApiTokenRow(**r._asdict()) for r in rows]

    def revoke_token(self, token_id: uuid.UUID, at: dt.datetime) -> bool:
        statement = (
            update(api_tokens)
            .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return self._tx._exec(statement).rowcount == 1

    def touch_token(self, token_id: uuid.UUID, at: dt.datetime) -> None:
        self._tx._exec(
            update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=at)
        )

    # sign-in throttles -----------------------------------------------------

    def throttle(self, key_hash: bytes) -> ThrottleRow | None:
        query = select(throttles).where(throttles.c.key_hash == key_hash).with_for_update()
        row = self._tx._first(query)
        return ThrottleRow(**row._asdict()) if row else None

    def put_throttle(self, row: ThrottleRow) -> None:
        # An upsert: two first failures racing on PostgreSQL must not collide.
        dialect = postgresql if self._tx._c.dialect.name == "postgresql" else sqlite
        values = dataclasses.asdict(row)
        statement = dialect.insert(throttles).values(**values)
        changes = {k: v for k, v in values.items() if k != "key_hash"}
        self._tx._exec(statement.on_conflict_do_update(index_elements=["key_hash"], set_=changes))

    def clear_throttle(self, key_hash: bytes) -> None:
        self._tx._exec(delete(throttles).where(throttles.c.key_hash == key_hash))

    # emergency grants --------------------------------------------------------

    def active_emergency_grant(
        self, user_id: uuid.UUID, at: dt.datetime
    ) -> EmergencyGrantRow | None:
        query = (
            select(emergency_grants)
            .where(
                and_(
                    emergency_grants.c.user_id == user_id,
                    emergency_grants.c.opened_at <= at,
                    emergency_grants.c.expires_at > at,
                )
            )
            .order_by(emergency_grants.c.expires_at.desc())
            .limit(1)
        )
        row = self._tx._first(query)
        if row is None:
            return None
        return EmergencyGrantRow(
            decode_grant_units(row.care_units), row.reason, row.opened_at, row.expires_at
        )


def _user(row: Any, units: frozenset[str]) -> UserRow:
    values = {name: getattr(row, name) for name in _USER_COLUMNS}
    values["recovery_hashes"] = _unpack_hashes(row.recovery_hashes)
    return UserRow(care_units=units, **values)
