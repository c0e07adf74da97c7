"""The audit log for log reviewers: filtered, paged reading and verification (R13, R14).

Reading needs ``audit.read`` and verifying ``audit.verify`` (refusals are
logged).  Each read writes its own ``audit:read`` entry before any entry is
returned, so reading the log is itself in the log.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from callvault.core.access import Operation, Principal
from callvault.core.audit import Action, AuditEvent
from callvault.core.audit_verify import VerifyReport
from callvault.core.errors import InvalidInput
from callvault.core.ports import Transaction
from callvault.core.recordings import validate_care_unit
from callvault.core.rows import AuditFilter
from callvault.services import audit
from callvault.services.context import Vault
from callvault.services.details import parse_timestamp
from callvault.services.guard import authorise

MAX_PAGE = 500
# Entries examined for one page at most when filtering by actor or care unit
# (fields of the entry, not columns).
SCAN_LIMIT = 10_000
_MAX_CURSOR_DIGITS = 18


@dataclass(frozen=True)
class AuditQuery:
    """Filters as typed: times are ISO 8601 (a bare date means that UTC day)."""

    time_from: str | None = None
    time_to: str | None = None
    action: str | None = None
    actor: str | None = None
    care_unit: str | None = None
    recording_id: uuid.UUID | None = None
    limit: int = 100
    cursor: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    event: AuditEvent


@dataclass(frozen=True)
class AuditPage:
    """Entries newest first; ``next_cursor`` continues with older ones, None at the end."""

    entries: list[AuditEntry]
    next_cursor: str | None


def list_entries(vault: Vault, principal: Principal, query: AuditQuery) -> AuditPage:
    """One page of the log, newest first, matching every filter given."""
    authorise(vault, principal, Operation.AUDIT_READ, None)
    where, before = _filter(query)
    given = (
        where.time_from, where.time_to, where.action, where.recording_id,
        query.actor, query.care_unit,
    )  # fmt: skip
    filtered = any(v is not None for v in given)
    audit.record_alone(
        vault, principal, Action.AUDIT_READ, detail={"limit": query.limit, "filtered": filtered}
    )
    with vault.store.transaction() as tx:
        entries, last = _scan(tx, where, before, query, query.limit)
    return AuditPage(entries, str(last) if last else None)


def _scan(
    tx: Transaction, where: AuditFilter, before: int | None, query: AuditQuery, limit: int
) -> tuple[list[AuditEntry], int | None]:
    """``(entries, seq to continue below)``; the seq is None when nothing older is left."""
    entries: list[AuditEntry] = []
    scanned, position = 0, before
    while scanned < SCAN_LIMIT:
        batch = min(max(limit, 100), SCAN_LIMIT - scanned)
        records = tx.grants.audit_page(where, position, batch)
        for index, record in enumerate(records):
            scanned += 1
            position = record.seq
            event = AuditEvent.from_canonical(record.body)
            if query.actor is not None and event.actor != query.actor:
                continue
            if query.care_unit is not None and event.care_unit != query.care_unit:
                continue
            entries.append(AuditEntry(record.seq, event))
            if len(entries) == limit:
                more = index < len(records) - 1 or len(records) == batch
                return entries, position if more else None
        if len(records) < batch:
            return entries, None
    return entries, position


def verify_log(vault: Vault, principal: Principal) -> VerifyReport:
    """Verify the whole log against its signed checkpoints; one ``audit:verify`` entry."""
    authorise(vault, principal, Operation.AUDIT_VERIFY, None)
    return audit.verify(vault, principal)


def _filter(q: AuditQuery) -> tuple[AuditFilter, int | None]:
    if not 1 <= q.limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
    if q.action is not None and q.action not in {a.value for a in Action}:
        raise InvalidInput("unknown audit action")
    if q.actor is not None and not (0 < len(q.actor) <= 64 and q.actor.isprintable()):
        raise InvalidInput("actor must be a user or token name")
    if q.care_unit is not None:
        validate_care_unit(q.care_unit)
    before = None
    if q.cursor is not None:
        text = q.cursor.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= _MAX_CURSOR_DIGITS):
            raise InvalidInput("invalid audit cursor")
        before = int(text)
    where = AuditFilter(
        time_from=_when(q.time_from, end=False),
        time_to=_when(q.time_to, end=True),
        action=q.action,
        recording_id=q.recording_id,
    )
    return where, before


def _when(text: str | None, *, end: bool) -> dt.datetime | None:
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        return parse_timestamp(text)
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    return start + dt.timedelta(days=1) if end else start
