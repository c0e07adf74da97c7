"""SQL for access grants, emergency grants, review items and the service's paged reads.

The :class:`~callvault.core.ports.GrantsRepo` port on the connection of one
:class:`~callvault.adapters.db.store.SqlTransaction`, so a grant, the audit
entry that records it and its review item commit together.  Pages are read
by keyset (a position, never an offset), so a page costs the same however
deep into the results it lies.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, func, insert, or_, select, true, update

from callvault.adapters.db.accounts import encode_grant_units
from callvault.adapters.db.schema import (
    access_grants,
    audit_entries,
    emergency_grants,
    recordings,
    review_items,
)
from callvault.core.recordings import ACTIVE, PENDING, RecordingRow
from callvault.core.rows import (
    AccessGrantRow,
    AuditFilter,
    AuditRecord,
    EmergencyGrantRow,
    RecordingFilter,
    ReviewItemRow,
)

if TYPE_CHECKING:
    from callvault.adapters.db.store import SqlTransaction

# Columns an ingest learns only after the object is stored and decoded.
_INGESTED_FACTS = (
    "container",
    "codec",
    "sample_rate",
    "channels",
    "frames",
    "duration_ms",
    "plaintext_size",
    "ciphertext_size",
    "ciphertext_sha256",
    "enc_peaks",
)


class SqlGrants:
    """GrantsRepo over one SqlTransaction; see the port for each contract."""

    def __init__(self, tx: SqlTransaction) -> None:
        self._tx = tx

    # access grants -------------------------------------------------------------

    def insert_grant(self, row: AccessGrantRow) -> None:
        values = {**dataclasses.asdict(row), "emergency": int(row.emergency)}
        self._tx._exec(insert(access_grants).values(**values))

    def open_grant(
        self,
        kind: str,
        user_id: uuid.UUID,
        session_public_id: str,
        recording_id: uuid.UUID,
        at: dt.datetime,
    ) -> AccessGrantRow | None:
        g = access_grants.c
        query = (
            select(access_grants)
            .where(
                and_(
                    g.session_public_id == session_public_id,
                    g.recording_id == recording_id,
                    g.user_id == user_id,
                    g.kind == kind,
                    g.created_at <= at,
                    g.expires_at > at,
                )
            )
            .order_by(g.expires_at.desc())
            .limit(1)
        )
        row = self._tx._first(query)
        return _grant(row) if row else None

    def consume_grant(self, grant_id: uuid.UUID, at: dt.datetime) -> bool:
        g = access_grants.c
        result = self._tx._exec(
            update(access_grants)
            .where(and_(g.id == grant_id, g.created_at <= at, g.expires_at > at))
            .values(expires_at=at)
        )
        return result.rowcount == 1

    def count_grants(self, user_id: uuid.UUID, kind: str, since: dt.datetime) -> int:
        g = access_grants.c
        query = select(func.count()).where(
            and_(g.user_id == user_id, g.kind == kind, g.created_at >= since)
        )
        return int(self._tx._first(query)[0])

    # emergency grants and review items -----------------------------------------------

    def insert_emergency_grant(
        self, grant_id: uuid.UUID, user_id: uuid.UUID, grant: EmergencyGrantRow
    ) -> None:
        self._tx._exec(
            insert(emergency_grants).values(
                id=grant_id,
                user_id=user_id,
                care_units=encode_grant_units(grant.care_units),
                reason=grant.reason,
                opened_at=grant.opened_at,
                expires_at=grant.expires_at,
            )
        )

    def add_review_item(
        self, kind: str, audit_seq: int | None, actor: str, created_at: dt.datetime
    ) -> int:
        result = self._tx._exec(
            insert(review_items).values(
                kind=kind, audit_seq=audit_seq, actor=actor, created_at=created_at
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    def open_review_items(
        self,
        kind: str | None = None,
        actor: str | None = None,
        since: dt.datetime | None = None,
        limit: int = 100,
    ) -> list[ReviewItemRow]:
        r = review_items.c
        conditions: list[ColumnElement[bool]] = [r.resolved_at.is_(None)]
        if kind is not None:
            conditions.append(r.kind == kind)
        if actor is not None:
            conditions.append(r.actor == actor)
        if since is not None:
            conditions.append(r.created_at >= since)
        query = select(review_items).where(and_(*conditions)).order_by(r.id).limit(limit)
        return [
            ReviewItemRow(
                x.id,
                x.kind,
                x.audit_seq,
                x.actor,
                x.created_at,
                x.resolved_at,
                x.resolved_by,
                x.outcome,
            )
            for x in self._tx._rows(query)
        ]

    # paged reads ----------------------------------------------------------------

    def search_page(
        self,
        where: RecordingFilter,
        after: tuple[dt.datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[RecordingRow]:
        c = recordings.c
        conditions = [c.state == ACTIVE, *_recording_conditions(where)]
        if after is not None:
            started, last_id = after
            # Newest first, ties by id: "after" is older, or as old with a larger id.
            conditions.append(
                or_(c.started_at < started, and_(c.started_at == started, c.id > last_id))
            )
        query = (
            select(recordings)
            .where(and_(*conditions))
            .order_by(c.started_at.desc(), c.id)
            .limit(limit)
        )
        return [_recording(r) for r in self._tx._rows(query)]

    def audit_page(self, where: AuditFilter, before: int | None, limit: int) -> list[AuditRecord]:
        a = audit_entries.c
        conditions: list[ColumnElement[bool]] = [true()]
        for column, value in ((a.action, where.action), (a.recording_id, where.recording_id)):
            if value is not None:
                conditions.append(column == value)
        if where.time_from is not None:
            conditions.append(a.time >= where.time_from)
        if where.time_to is not None:
            conditions.append(a.time < where.time_to)
        if before is not None:
            conditions.append(a.seq < before)
        query = select(audit_entries).where(and_(*conditions)).order_by(a.seq.desc()).limit(limit)
        return [
            AuditRecord(r.seq, r.body, r.leaf_hash, r.action, r.recording_id, r.time)
            for r in self._tx._rows(query)
        ]

    # ingest ------------------------------------------------------------------

    def activate_ingested(self, row: RecordingRow) -> bool:
        c = recordings.c
        result = self._tx._exec(
            update(recordings)
            .where(and_(c.id == row.id, c.state == PENDING))
            .values(state=ACTIVE, **{name: getattr(row, name) for name in _INGESTED_FACTS})
        )
        return result.rowcount == 1


def _recording_conditions(where: RecordingFilter) -> list[ColumnElement[bool]]:
    c = recordings.c
    conditions: list[ColumnElement[bool]] = []
    if where.care_units is not None:
        # An empty set must match nothing; IN () is not portable SQL.
        units = sorted(where.care_units)
        conditions.append(c.care_unit.in_(units) if units else c.id.is_(None))
    for column, value in (
        (c.caller_bidx, where.caller_bidx),
        (c.pnr_bidx, where.pnr_bidx),
        (c.call_id_bidx, where.call_id_bidx),
        (c.agent, where.agent),
    ):
        if value is not None:
            conditions.append(column == value)
    if where.started_from is not None:
        conditions.append(c.started_at >= where.started_from)
    if where.started_to is not None:
        conditions.append(c.started_at < where.started_to)
    if where.min_duration_ms is not None:
        conditions.append(c.duration_ms >= where.min_duration_ms)
    if where.max_duration_ms is not None:
        conditions.append(c.duration_ms <= where.max_duration_ms)
    return conditions


_RECORDING_FIELDS = [f.name for f in dataclasses.fields(RecordingRow)]


def _recording(row: Any) -> RecordingRow:
    return RecordingRow(**{name: getattr(row, name) for name in _RECORDING_FIELDS})


def _grant(row: Any) -> AccessGrantRow:
    return AccessGrantRow(
        id=row.id,
        kind=row.kind,
        user_id=row.user_id,
        session_public_id=row.session_public_id,
        recording_id=row.recording_id,
        reason=row.reason,
        emergency=bool(row.emergency),
        created_at=row.created_at,
        expires_at=row.expires_at,
    )
