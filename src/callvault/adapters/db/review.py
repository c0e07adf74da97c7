"""SQL for log review, search hits, patient log extracts and breach reports (R17, R18, R22).

The :class:`~callvault.core.ports.ReviewRepo` port on the connection of one
:class:`~callvault.adapters.db.store.SqlTransaction`.  Lists of ids are sent
in slices, so no statement carries more bound parameters than either
database accepts.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, insert, or_, select, true, update

from callvault.adapters.db.grants import _recording
from callvault.adapters.db.schema import (
    audit_entries,
    audit_search_hits,
    recordings,
    review_items,
)
from callvault.core.recordings import RecordingRow
from callvault.core.rows import AuditRecord, ReviewItemRow

if TYPE_CHECKING:
    from callvault.adapters.db.store import SqlTransaction

_SLICE = 500


def _slices(ids: list[uuid.UUID]) -> Iterator[list[uuid.UUID]]:
    for start in range(0, len(ids), _SLICE):
        yield ids[start : start + _SLICE]


def _audit(row: Any) -> AuditRecord:
    return AuditRecord(row.seq, row.body, row.leaf_hash, row.action, row.recording_id, row.time)


def _item(x: Any) -> ReviewItemRow:
    return ReviewItemRow(
        x.id,
        x.kind,
        x.audit_seq,
        x.actor,
        x.created_at,
        x.resolved_at,
        x.resolved_by,
        x.outcome,
        x.comment,
        x.recording_id,
    )


class SqlReview:
    """ReviewRepo over one SqlTransaction; see the port for each contract."""

    def __init__(self, tx: SqlTransaction) -> None:
        self._tx = tx

    # search hits ----------------------------------------------------------------

    def add_search_hits(self, seq: int, recording_ids: list[uuid.UUID]) -> None:
        if recording_ids:
            rows = [
                {"seq": seq, "recording_id": rid, "position": i}
                for i, rid in enumerate(recording_ids)
            ]
            self._tx._exec(insert(audit_search_hits), rows)

    def search_hits_of(self, seq: int) -> list[uuid.UUID]:
        h = audit_search_hits.c
        query = select(h.recording_id).where(h.seq == seq).order_by(h.position)
        return [r.recording_id for r in self._tx._rows(query)]

    def searches_listing(
        self, recording_ids: list[uuid.UUID], below_seq: int
    ) -> list[tuple[int, uuid.UUID]]:
        h = audit_search_hits.c
        found: list[tuple[int, uuid.UUID]] = []
        for part in _slices(recording_ids):
            query = select(h.seq, h.recording_id).where(
                and_(h.recording_id.in_(part), h.seq < below_seq)
            )
            found.extend((int(r.seq), r.recording_id) for r in self._tx._rows(query))
        return sorted(found, key=lambda pair: (pair[0], pair[1].bytes))

    # recordings -------------------------------------------------------------------

    def recordings_by_index(
        self, caller_bidx: bytes | None, pnr_bidx: bytes | None
    ) -> list[RecordingRow]:
        c = recordings.c
        conditions: list[ColumnElement[bool]] = []
        if caller_bidx is not None:
            conditions.append(c.caller_bidx == caller_bidx)
        if pnr_bidx is not None:
            conditions.append(c.pnr_bidx == pnr_bidx)
        if not conditions:
            return []
        query = select(recordings).where(or_(*conditions)).order_by(c.started_at, c.id)
        return [_recording(r) for r in self._tx._rows(query)]

    def recordings_by_id(self, recording_ids: list[uuid.UUID]) -> list[RecordingRow]:
        rows: list[RecordingRow] = []
        for part in _slices(recording_ids):
            query = select(recordings).where(recordings.c.id.in_(part))
            rows.extend(_recording(r) for r in self._tx._rows(query))
        return rows

    # the audit log ------------------------------------------------------------------

    def audit_of_recordings(
        self, recording_ids: list[uuid.UUID], below_seq: int
    ) -> list[AuditRecord]:
        a = audit_entries.c
        found: list[AuditRecord] = []
        for part in _slices(recording_ids):
            query = select(audit_entries).where(and_(a.recording_id.in_(part), a.seq < below_seq))
            found.extend(_audit(r) for r in self._tx._rows(query))
        return sorted(found, key=lambda r: r.seq)

    def audit_between(
        self, time_from: dt.datetime, time_to: dt.datetime, actions: list[str] | None
    ) -> list[AuditRecord]:
        a = audit_entries.c
        conditions = [a.time >= time_from, a.time < time_to]
        if actions is not None:
            conditions.append(a.action.in_(sorted(actions)))
        query = select(audit_entries).where(and_(*conditions)).order_by(a.seq)
        return [_audit(r) for r in self._tx._rows(query)]

    def leaf_hashes(self, end: int) -> list[bytes]:
        a = audit_entries.c
        query = select(a.leaf_hash).where(a.seq < end).order_by(a.seq)
        return [bytes(r.leaf_hash) for r in self._tx._rows(query)]

    # review items ---------------------------------------------------------------------

    def add_item(
        self,
        kind: str,
        audit_seq: int | None,
        actor: str,
        created_at: dt.datetime,
        recording_id: uuid.UUID | None,
    ) -> int | None:
        r = review_items.c
        if audit_seq is not None:
            query = select(r.id).where(and_(r.audit_seq == audit_seq, r.kind == kind)).limit(1)
            if self._tx._first(query) is not None:
                return None
        result = self._tx._exec(
            insert(review_items).values(
                kind=kind,
                audit_seq=audit_seq,
                actor=actor,
                created_at=created_at,
                recording_id=recording_id,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    def items(
        self,
        *,
        open_only: bool,
        since: dt.datetime | None,
        until: dt.datetime | None,
        limit: int,
    ) -> list[ReviewItemRow]:
        r = review_items.c
        conditions: list[ColumnElement[bool]] = [true()]
        if open_only:
            conditions.append(r.resolved_at.is_(None))
        if since is not None:
            conditions.append(r.created_at >= since)
        if until is not None:
            conditions.append(r.created_at < until)
        query = select(review_items).where(and_(*conditions)).order_by(r.id).limit(limit)
        return [_item(x) for x in self._tx._rows(query)]

    def resolve_item(
        self, item_id: int, outcome: str, comment: str | None, by: str, at: dt.datetime
    ) -> bool:
        r = review_items.c
        result = self._tx._exec(
            update(review_items)
            .where(and_(r.id == item_id, r.resolved_at.is_(None)))
            .values(outcome=outcome, comment=comment, resolved_by=by, resolved_at=at)
        )
        return result.rowcount == 1
