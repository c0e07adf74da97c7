"""Searching recordings: scoped by unit, filtered row by row, paged by sealed cursors.

Every search writes one ``recording:search`` entry with the number of
results, never with what was searched for.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import secrets
import struct
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from callvault.core import identifiers as ids
from callvault.core.access import (
    EmergencyGrant,
    Operation,
    Principal,
    RecordingTarget,
    UnitTarget,
    can,
)
from callvault.core.audit import Action
from callvault.core.errors import InvalidInput
from callvault.core.ports import Transaction
from callvault.core.recordings import RecordingRow, validate_agent, validate_care_unit
from callvault.core.rows import RecordingFilter
from callvault.services import audit, search_hits
from callvault.services.context import Vault
from callvault.services.details import call_id_index, parse_timestamp
from callvault.services.guard import deny

MAX_RESULTS = 1000
# Rows examined for one page at most: a call handler's page is filtered row
# by row, so a sparse match must not turn one request into a table scan.
SCAN_LIMIT = 5000
_MAX_CURSOR = 200
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class SearchQuery:
    """Search input as typed; identifiers are normalised, then blind-indexed."""

    caller: str | None = None
    personnummer: str | None = None
    call_id: str | None = None
    care_unit: str | None = None
    agent: str | None = None
    started_from: str | None = None
    started_to: str | None = None
    min_duration_seconds: float | None = None
    max_duration_seconds: float | None = None
    limit: int = 100


@dataclass(frozen=True)
class Summary:
    id: uuid.UUID
    started_at: dt.datetime
    care_unit: str
    agent: str | None
    duration_seconds: float
    media_type: str


@dataclass(frozen=True)
class Page:
    """One page of results; ``next_cursor`` (opaque) continues it, None at the end."""

    items: list[Summary]
    next_cursor: str | None


def search(vault: Vault, principal: Principal, query: SearchQuery) -> list[Summary]:
    """The first page of :func:`search_page` (the CLI's search)."""
    return search_page(vault, principal, query).items


def search_page(
    vault: Vault, principal: Principal, query: SearchQuery, cursor: str | None = None
) -> Page:
    """Recordings matching ``query`` that ``principal`` may view, newest call first.

    Needs ``recording.search`` on the care unit asked for (or, without one,
    on the vault or on each of the principal's units), then keeps only rows
    the principal may view, one by one.  A page holds at most ``limit``
    results and examines at most ``SCAN_LIMIT`` rows, so it may be short
    while a ``next_cursor`` still leads on.  The search is logged with the
    number of results, never with what was searched for.
    """
    now = vault.now()
    units = _search_units(vault, principal, query.care_unit, now)
    where = _filter(vault, query, units)
    after = _open_cursor(vault, principal, cursor) if cursor else None
    with vault.store.transaction() as tx:
        rows, last, more, emergency = _collect(tx, principal, where, after, query.limit, now)
        detail: dict[str, str | int | bool | None] = {"results": len(rows)}
        if emergency:
            detail["emergency"] = True
        # Which recordings were listed, provably and without identifiers (R18).
        detail.update(search_hits.detail(row.id for row in rows))
        seq = audit.record(vault, tx, principal, Action.RECORDING_SEARCH, detail=detail)
        search_hits.store(tx, seq, (row.id for row in rows))
    next_cursor = _seal_cursor(vault, principal, last) if more and last else None
    return Page([summary(row) for row in rows], next_cursor)


def _candidate_units(principal: Principal) -> set[str]:
    units = set(principal.care_units)
    grant = principal.emergency
    if isinstance(grant, EmergencyGrant) and isinstance(grant.care_units, frozenset):
        units |= grant.care_units
    return units


def _search_units(
    vault: Vault, principal: Principal, unit_text: str | None, now: dt.datetime
) -> frozenset[str] | None:
    """The care units to search (None: every unit); refusals are logged and raised.

    Whether the principal may search at all is decided before the input is
    even parsed, so a recorder's token gets the same 403 whatever it sends.
    """
    op = Operation.RECORDING_SEARCH
    vault_wide = can(principal, op, None, now=now)
    units = frozenset(
        u for u in _candidate_units(principal) if can(principal, op, UnitTarget(u), now=now).allowed
    )
    if not vault_wide.allowed and not units:
        deny(vault, principal, op, vault_wide)
    if unit_text:
        unit = validate_care_unit(unit_text)
        if not vault_wide.allowed and unit not in units:
            deny(vault, principal, op, can(principal, op, UnitTarget(unit), now=now))
        return frozenset({unit})
    return None if vault_wide.allowed else units


def _filter(vault: Vault, q: SearchQuery, units: frozenset[str] | None) -> RecordingFilter:
    if not 1 <= q.limit <= MAX_RESULTS:
        raise InvalidInput(f"limit must be between 1 and {MAX_RESULTS}")
    key = vault.keys.index_key()
    today = vault.now().date()
    where = RecordingFilter(
        care_units=units,
        caller_bidx=ids.blind_index(key, "phone", ids.PhoneNumber.parse(q.caller).value)
        if q.caller
        else None,
        pnr_bidx=ids.blind_index(
            key, "pnr", ids.PersonalNumber.parse(q.personnummer, today=today).value
        )
        if q.personnummer
        else None,
        call_id_bidx=call_id_index(key, q.call_id.strip()) if q.call_id else None,
        agent=validate_agent(q.agent) if q.agent else None,
        started_from=_day_or_time(q.started_from, end=False),
        started_to=_day_or_time(q.started_to, end=True),
        min_duration_ms=_duration_ms(q.min_duration_seconds),
        max_duration_ms=_duration_ms(q.max_duration_seconds),
    )
    given = (q.care_unit, *(getattr(where, f) for f in _CRITERIA))
    if not any(v is not None and v != "" for v in given):
        raise InvalidInput("give at least one search criterion; the vault does not list recordings")
    lo, hi = where.min_duration_ms, where.max_duration_ms
    if lo is not None and hi is not None and lo > hi:
        raise InvalidInput("the shortest duration must not exceed the longest")
    return where


_CRITERIA = (
    "caller_bidx",
    "pnr_bidx",
    "call_id_bidx",
    "agent",
    "started_from",
    "started_to",
    "min_duration_ms",
    "max_duration_ms",
)


def _duration_ms(seconds: float | None) -> int | None:
    if seconds is None:
        return None
    if not 0 <= seconds <= 7 * 24 * 3600:
        raise InvalidInput("durations are seconds between 0 and one week")
    return round(seconds * 1000)


def _day_or_time(text: str | None, *, end: bool) -> dt.datetime | None:
    """``2019-12-31`` means the whole day (in UTC); a full time is taken as is."""
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        return parse_timestamp(text)
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    return start + dt.timedelta(days=1) if end else start


def _collect(
    tx: Transaction,
    principal: Principal,
    where: RecordingFilter,
    after: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
    now: dt.datetime,
) -> tuple[list[RecordingRow], tuple[dt.datetime, uuid.UUID] | None, bool, bool]:
    """``(visible rows, position reached, maybe more, any by emergency)``."""
    found: list[RecordingRow] = []
    position, scanned, emergency = after, 0, False
    while True:
        batch = min(max(2 * limit, 50), SCAN_LIMIT - scanned)
        rows = tx.grants.search_page(where, position, batch)
        for index, row in enumerate(rows):
            scanned += 1
            position = (row.started_at, row.id)
            decision = can(principal, Operation.RECORDING_VIEW, RecordingTarget.of(row), now=now)
            if not decision.allowed:
                continue
            found.append(row)
            emergency = emergency or decision.emergency
            if len(found) == limit:
                return found, position, index < len(rows) - 1 or len(rows) == batch, emergency
        if len(rows) < batch:
            return found, position, False, emergency
        if scanned >= SCAN_LIMIT:
            return found, position, True, emergency


def _cursor_cipher(vault: Vault) -> AESGCM:
    key = hmac.new(vault.keys.index_key(), b"callvault/search-cursor/v1", hashlib.sha256)
    return AESGCM(key.digest())


def _cursor_ad(principal: Principal) -> bytes:
    # Bound to who asked: a cursor is no use to another user or session.
    return f"callvault/cursor\0{principal.name}\0{principal.session}".encode()


def _seal_cursor(
    vault: Vault, principal: Principal, position: tuple[dt.datetime, uuid.UUID]
) -> str:
    """``base64url(nonce 12 ‖ AES-GCM(BE64 micros since epoch ‖ uuid 16))``.

    Sealed, because the position may be a recording the principal may not
    see: its id and time must not leak through the cursor.
    """
    started, last_id = position
    payload = struct.pack(">q", (started - _EPOCH) // _MICROSECOND) + last_id.bytes
    nonce = secrets.token_bytes(12)
    sealed = nonce + _cursor_cipher(vault).encrypt(nonce, payload, _cursor_ad(principal))
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")


def _open_cursor(vault: Vault, principal: Principal, text: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        if len(text) > _MAX_CURSOR:
            raise ValueError("long")
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        payload = _cursor_cipher(vault).decrypt(raw[:12], raw[12:], _cursor_ad(principal))
        (micros,) = struct.unpack(">q", payload[:8])
        return _EPOCH + micros * _MICROSECOND, uuid.UUID(bytes=payload[8:])
    except (ValueError, InvalidTag, binascii.Error, struct.error, OverflowError):
        raise InvalidInput("invalid search cursor") from None


def summary(row: RecordingRow) -> Summary:
    return Summary(
        row.id, row.started_at, row.care_unit, row.agent, row.duration_ms / 1000, row.media_type
    )
