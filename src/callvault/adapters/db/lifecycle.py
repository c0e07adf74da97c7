"""SQL for recording policies, keep-until stamps, legal holds and shredding (R19-R21).

The :class:`~callvault.core.ports.LifecycleRepo` port on the connection of one
:class:`~callvault.adapters.db.store.SqlTransaction`, so a shred, its queued
object and its audit receipt commit together.  The writes that decide what
is destroyed are conditional ("delete only if not held", "destroy the bucket
KEK only if no recording points at it"), so a sweep run twice, or beside
a hold being set, destroys exactly what it may.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, exists, func, insert, not_, or_, select, update

from callvault.adapters.db.schema import (
    bucket_keks,
    legal_holds,
    recording_policies,
    recordings,
    shred_queue,
)
from callvault.core.recordings import ACTIVE, BucketKekRow, RecordingRow
from callvault.core.retention import LegalHold, RecordingPolicy

if TYPE_CHECKING:
    from callvault.adapters.db.store import SqlTransaction

_RECORDING_FIELDS = [f.name for f in dataclasses.fields(RecordingRow)]
_IN_CHUNK = 500  # ids per IN (...) list: well under every driver's parameter limit


def _recording(row: Any) -> RecordingRow:
    return RecordingRow(**{name: getattr(row, name) for name in _RECORDING_FIELDS})


def _policy(row: Any) -> RecordingPolicy:
    return RecordingPolicy(
        care_unit=row.care_unit,
        retention_class=row.retention_class,
        purpose=row.purpose,
        legal_basis=row.legal_basis,
        keep_days=row.keep_days,
        active=bool(row.active),
        changed_at=row.changed_at,
        changed_by=row.changed_by,
    )


def _not_held() -> Any:
    return not_(exists().where(legal_holds.c.recording_id == recordings.c.id))


class SqlLifecycle:
    """LifecycleRepo over one SqlTransaction; see the port for each contract."""

    def __init__(self, tx: SqlTransaction) -> None:
        self._tx = tx

    # policies ------------------------------------------------------------------

    def put_policy(self, policy: RecordingPolicy) -> None:
        p = recording_policies.c
        values = {
            "purpose": policy.purpose,
            "legal_basis": policy.legal_basis,
            "keep_days": policy.keep_days,
            "active": int(policy.active),
            "changed_at": policy.changed_at,
            "changed_by": policy.changed_by,
        }
        key = and_(p.care_unit == policy.care_unit, p.retention_class == policy.retention_class)
        done = self._tx._exec(update(recording_policies).where(key).values(**values))
        if done.rowcount == 0:
            self._tx._exec(
                insert(recording_policies).values(
                    care_unit=policy.care_unit, retention_class=policy.retention_class, **values
                )
            )

    def get_policy(self, care_unit: str, retention_class: str) -> RecordingPolicy | None:
        p = recording_policies.c
        row = self._tx._first(
            select(recording_policies).where(
                and_(p.care_unit == care_unit, p.retention_class == retention_class)
            )
        )
        return None if row is None else _policy(row)

    def policies(self) -> list[RecordingPolicy]:
        p = recording_policies.c
        query = select(recording_policies).order_by(p.care_unit, p.retention_class)
        return [_policy(r) for r in self._tx._rows(query)]

    # keep-until stamps -----------------------------------------------------------

    def set_keep_until(self, recording_id: uuid.UUID, keep_until: dt.datetime) -> None:
        self._tx._exec(
            update(recordings).where(recordings.c.id == recording_id).values(keep_until=keep_until)
        )

    def retention_facts(
        self, ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[dt.datetime | None, str | None]]:
        facts: dict[uuid.UUID, tuple[dt.datetime | None, str | None]] = {}
        wanted = list(ids)
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            query = (
                select(recordings.c.id, recordings.c.keep_until, legal_holds.c.reference)
                .select_from(
                    recordings.outerjoin(legal_holds, legal_holds.c.recording_id == recordings.c.id)
                )
                .where(recordings.c.id.in_(chunk))
            )
            for row in self._tx._rows(query):
                facts[row.id] = (row.keep_until, row.reference)
        return facts

    # what is due -------------------------------------------------------------------

    def due_recordings(self, now: dt.datetime, limit: int) -> list[RecordingRow]:
        c = recordings.c
        query = (
            select(recordings)
            .where(and_(c.state == ACTIVE, c.keep_until <= now, _not_held()))
            .order_by(c.keep_until, c.id)
            .limit(limit)
        )
        return [_recording(r) for r in self._tx._rows(query)]

    def due_counts(self, now: dt.datetime) -> dict[tuple[str, bool], int]:
        c = recordings.c
        held = exists().where(legal_holds.c.recording_id == c.id)
        query = (
            select(c.retention_class, held.label("held"), func.count())
            .where(and_(c.state == ACTIVE, c.keep_until <= now))
            .group_by(c.retention_class, held)
        )
        return {(r[0], bool(r[1])): int(r[2]) for r in self._tx._rows(query)}

    def matching(
        self, caller_bidx: bytes | None, pnr_bidx: bytes | None, limit: int
    ) -> list[RecordingRow]:
        c = recordings.c
        either = []
        if caller_bidx is not None:
            either.append(c.caller_bidx == caller_bidx)
        if pnr_bidx is not None:
            either.append(c.pnr_bidx == pnr_bidx)
        if not either:
            return []
        query = (
            select(recordings)
            .where(and_(c.state == ACTIVE, or_(*either)))
            .order_by(c.started_at, c.id)
            .limit(limit)
        )
        return [_recording(r) for r in self._tx._rows(query)]

    # shredding -----------------------------------------------------------------------

    def shred(self, rows: list[RecordingRow], at: dt.datetime) -> list[uuid.UUID]:
        c = recordings.c
        done: list[uuid.UUID] = []
        for start in range(0, len(rows), _IN_CHUNK):
            chunk = rows[start : start + _IN_CHUNK]
            # One conditional delete per chunk; RETURNING names exactly the
            # rows it took, so a row held or gone meanwhile is never queued.
            statement = (
                delete(recordings)
                .where(and_(c.id.in_([r.id for r in chunk]), c.state == ACTIVE, _not_held()))
                .returning(c.id)
            )
            gone = {r.id for r in self._tx._rows(statement)}
            taken = [r for r in chunk if r.id in gone]
            if taken:
                self._tx._exec(
                    insert(shred_queue),
                    [{"object_name": r.object_name, "queued_at": at} for r in taken],
                )
            done += [r.id for r in taken]
        return done

    def queued_objects(self, limit: int) -> list[str]:
        q = shred_queue.c
        query = select(q.object_name).order_by(q.queued_at, q.object_name).limit(limit)
        return [r.object_name for r in self._tx._rows(query)]

    def unqueue(self, names: list[str]) -> None:
        for start in range(0, len(names), _IN_CHUNK):
            chunk = names[start : start + _IN_CHUNK]
            self._tx._exec(delete(shred_queue).where(shred_queue.c.object_name.in_(chunk)))

    def empty_bucket_keks(self) -> list[BucketKekRow]:
        b = bucket_keks.c
        query = (
            select(bucket_keks)
            .where(not_(exists().where(recordings.c.bucket_kek_id == b.id)))
            .order_by(b.month, b.retention_class, b.version)
        )
        return [
            BucketKekRow(
                r.id, r.month, r.retention_class, r.version, r.root_version, r.wrapped, r.created_at
            )
            for r in self._tx._rows(query)
        ]

    def destroy_bucket_kek(self, bucket_kek_id: int) -> bool:
        b = bucket_keks.c
        done = self._tx._exec(
            delete(bucket_keks).where(
                and_(
                    b.id == bucket_kek_id,
                    not_(exists().where(recordings.c.bucket_kek_id == bucket_kek_id)),
                )
            )
        )
        return bool(done.rowcount == 1)

    # legal holds ----------------------------------------------------------------------

    def add_hold(self, hold: LegalHold) -> bool:
        if self.get_hold(hold.recording_id) is not None:
            return False
        self._tx._exec(insert(legal_holds).values(**dataclasses.asdict(hold)))
        return True

    def get_hold(self, recording_id: uuid.UUID) -> LegalHold | None:
        row = self._tx._first(select(legal_holds).where(legal_holds.c.recording_id == recording_id))
        if row is None:
            return None
        return LegalHold(row.recording_id, row.reference, row.set_by, row.set_at)

    def release_hold(self, recording_id: uuid.UUID) -> bool:
        done = self._tx._exec(delete(legal_holds).where(legal_holds.c.recording_id == recording_id))
        return bool(done.rowcount == 1)

    def holds(self) -> list[LegalHold]:
        query = select(legal_holds).order_by(legal_holds.c.set_at, legal_holds.c.recording_id)
        return [
            LegalHold(r.recording_id, r.reference, r.set_by, r.set_at)
            for r in self._tx._rows(query)
        ]
