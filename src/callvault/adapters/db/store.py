"""SQLAlchemy implementation of the MetadataStore port (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, event, func, insert, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from callvault.adapters.db import migrate
from callvault.adapters.db.schema import (
    audit_checkpoints,
    audit_entries,
    audit_head,
    bucket_keks,
    recordings,
    vault_info,
)
from callvault.core.errors import AlreadyExists, ConfigError, StorageError
from callvault.core.merkle import Frontier
from callvault.core.ports import AuditRecord
from callvault.core.recordings import ACTIVE, PENDING, BucketKekRow, RecordingRow, SearchCriteria

_RECORDING_FIELDS = [f.name for f in dataclasses.fields(RecordingRow)]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the single writer; synchronous=FULL makes
    # every commit (and so every audit entry) durable before it returns.
    # The driver must not open transactions on its own; "begin" below does.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # Take the write lock at BEGIN so two writers never deadlock on upgrade.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine_for(url: str) -> Engine:
    from sqlalchemy import create_engine

    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError:
        raise ConfigError("CALLVAULT_DATABASE_URL is not a database URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = create_engine(parsed)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True)
    raise ConfigError(f"unsupported database backend {backend!r} (sqlite or postgresql)")


class SqlMetadataStore:
    """MetadataStore over one SQLAlchemy engine; migrates the schema on open."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        try:
            migrate.upgrade(engine)
        except sa_exc.SQLAlchemyError as exc:
            raise StorageError("cannot open the metadata database") from exc

    @classmethod
    def open(cls, url: str) -> SqlMetadataStore:
        return cls(create_engine_for(url))

    @contextmanager
    def transaction(self) -> Iterator[SqlTransaction]:
        try:
            with self._engine.begin() as conn:
                yield SqlTransaction(conn)
        except sa_exc.IntegrityError as exc:
            raise AlreadyExists("record", detail=type(exc.orig).__name__) from None
        except sa_exc.SQLAlchemyError as exc:
            raise StorageError("metadata database") from exc

    def iter_recordings(self, batch: int = 1000) -> Iterator[RecordingRow]:
        last: uuid.UUID | None = None
        while True:
            query = select(recordings).order_by(recordings.c.id).limit(batch)
            if last is not None:
                query = query.where(recordings.c.id > last)
            with self._read() as conn:
                rows = [_recording(r) for r in conn.execute(query)]
            yield from rows
            if len(rows) < batch:
                return
            last = rows[-1].id

    def iter_audit(self, start: int = 0, end: int | None = None) -> Iterator[AuditRecord]:
        batch = 10_000
        cursor = start
        while end is None or cursor < end:
            query = select(audit_entries).where(audit_entries.c.seq >= cursor)
            if end is not None:
                query = query.where(audit_entries.c.seq < end)
            query = query.order_by(audit_entries.c.seq).limit(batch)
            with self._read() as conn:
                rows = list(conn.execute(query))
            for r in rows:
                yield AuditRecord(r.seq, r.body, r.leaf_hash, r.action, r.recording_id, r.time)
            if len(rows) < batch:
                return
            cursor = rows[-1].seq + 1

    def checkpoints(self) -> list[tuple[int, str]]:
        with self._read() as conn:
            query = select(audit_checkpoints.c.size, audit_checkpoints.c.note)
            return [(r.size, r.note) for r in conn.execute(query.order_by("size"))]

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                yield conn
        except sa_exc.SQLAlchemyError as exc:
            raise StorageError("metadata database") from exc


def _recording(row: Any) -> RecordingRow:
    return RecordingRow(**{name: getattr(row, name) for name in _RECORDING_FIELDS})


def _bucket(row: Any) -> BucketKekRow:
    return BucketKekRow(
        row.id,
        row.month,
        row.retention_class,
        row.version,
        row.root_version,
        row.wrapped,
        row.created_at,
    )


class SqlTransaction:
    """The Transaction port on one open SQLAlchemy connection."""

    def __init__(self, conn: Connection) -> None:
        self._c = conn

    # recordings -------------------------------------------------------------

    def insert_recording(self, row: RecordingRow) -> None:
        self._c.execute(insert(recordings).values(**dataclasses.asdict(row)))

    def get_recording(self, recording_id: uuid.UUID) -> RecordingRow | None:
        row = self._c.execute(select(recordings).where(recordings.c.id == recording_id)).first()
        return _recording(row) if row else None

    def find_by_fingerprint(self, fingerprint: bytes) -> RecordingRow | None:
        query = select(recordings).where(recordings.c.fingerprint == fingerprint)
        row = self._c.execute(query).first()
        return _recording(row) if row else None

    def activate_recording(
        self, recording_id: uuid.UUID, ciphertext_size: int, ciphertext_sha256: bytes
    ) -> bool:
        result = self._c.execute(
            update(recordings)
            .where(and_(recordings.c.id == recording_id, recordings.c.state == PENDING))
            .values(
                state=ACTIVE, ciphertext_size=ciphertext_size, ciphertext_sha256=ciphertext_sha256
            )
        )
        return result.rowcount == 1

    def delete_recording(self, recording_id: uuid.UUID) -> None:
        self._c.execute(delete(recordings).where(recordings.c.id == recording_id))

    def search(self, criteria: SearchCriteria) -> list[RecordingRow]:
        c = recordings.c
        conditions = [c.state == ACTIVE]
        for column, value in (
            (c.caller_bidx, criteria.caller_bidx),
            (c.pnr_bidx, criteria.pnr_bidx),
            (c.call_id_bidx, criteria.call_id_bidx),
            (c.care_unit, criteria.care_unit),
            (c.agent, criteria.agent),
        ):
            if value is not None:
                conditions.append(column == value)
        if criteria.started_from is not None:
            conditions.append(c.started_at >= criteria.started_from)
        if criteria.started_to is not None:
            conditions.append(c.started_at < criteria.started_to)
        query = (
            select(recordings)
            .where(and_(*conditions))
            .order_by(c.started_at.desc(), c.id)
            .limit(criteria.limit)
        )
        return [_recording(r) for r in self._c.execute(query)]

    def rewrap_dek(
        self,
        recording_id: uuid.UUID,
        old_bucket_kek_id: int,
        new_bucket_kek_id: int,
        wrapped: bytes,
    ) -> bool:
        result = self._c.execute(
            update(recordings)
            .where(
                and_(
                    recordings.c.id == recording_id, recordings.c.bucket_kek_id == old_bucket_kek_id
                )
            )
            .values(bucket_kek_id=new_bucket_kek_id, wrapped_dek=wrapped)
        )
        return result.rowcount == 1

    # bucket KEKs -------------------------------------------------------------

    def current_bucket_kek(self, month: str, retention_class: str) -> BucketKekRow | None:
        query = (
            select(bucket_keks)
            .where(
                and_(bucket_keks.c.month == month, bucket_keks.c.retention_class == retention_class)
            )
            .order_by(bucket_keks.c.version.desc())
            .limit(1)
        )
        row = self._c.execute(query).first()
        return _bucket(row) if row else None

    def insert_bucket_kek(
        self,
        month: str,
        retention_class: str,
        version: int,
        root_version: int,
        wrapped: bytes,
        created_at: dt.datetime,
    ) -> BucketKekRow:
        row = BucketKekRow(0, month, retention_class, version, root_version, wrapped, created_at)
        values = dataclasses.asdict(row)
        del values["id"]
        result = self._c.execute(insert(bucket_keks).values(**values))
        key = result.inserted_primary_key
        assert key is not None
        return dataclasses.replace(row, id=int(key[0]))

    def get_bucket_kek(self, bucket_kek_id: int) -> BucketKekRow | None:
        row = self._c.execute(select(bucket_keks).where(bucket_keks.c.id == bucket_kek_id)).first()
        return _bucket(row) if row else None

    def bucket_keks(self) -> list[BucketKekRow]:
        return [_bucket(r) for r in self._c.execute(select(bucket_keks).order_by(bucket_keks.c.id))]

    def update_bucket_kek_wrap(self, bucket_kek_id: int, root_version: int, wrapped: bytes) -> None:
        self._c.execute(
            update(bucket_keks)
            .where(bucket_keks.c.id == bucket_kek_id)
            .values(root_version=root_version, wrapped=wrapped)
        )

    def delete_bucket_kek(self, bucket_kek_id: int) -> None:
        self._c.execute(delete(bucket_keks).where(bucket_keks.c.id == bucket_kek_id))

    def dek_counts(self) -> dict[int, int]:
        query = select(recordings.c.bucket_kek_id, func.count()).group_by(
            recordings.c.bucket_kek_id
        )
        return {bucket_id: count for bucket_id, count in self._c.execute(query)}

    def recording_ids_under(self, bucket_kek_id: int, limit: int) -> list[uuid.UUID]:
        query = (
            select(recordings.c.id).where(recordings.c.bucket_kek_id == bucket_kek_id).limit(limit)
        )
        return [r.id for r in self._c.execute(query)]

    # audit log ---------------------------------------------------------------

    def append_audit(
        self, entries: list[tuple[bytes, bytes, str, uuid.UUID | None, dt.datetime]]
    ) -> list[int]:
        size, frontier_bytes = self._lock_audit_head()
        frontier = Frontier.from_bytes(frontier_bytes)
        rows = []
        for offset, (body, leaf_hash, action, recording_id, time) in enumerate(entries):
            frontier.append(leaf_hash)
            rows.append(
                {
                    "seq": size + offset,
                    "body": body,
                    "leaf_hash": leaf_hash,
                    "action": action,
                    "recording_id": recording_id,
                    "time": time,
                }
            )
        if rows:
            self._c.execute(insert(audit_entries), rows)
        self._c.execute(
            update(audit_head)
            .where(audit_head.c.id == 1)
            .values(size=size + len(rows), frontier=frontier.to_bytes())
        )
        return list(range(size, size + len(rows)))

    def audit_head(self) -> tuple[int, bytes]:
        row = self._c.execute(select(audit_head).where(audit_head.c.id == 1)).first()
        if row is None:
            return 0, Frontier().to_bytes()
        return row.size, row.frontier

    def add_checkpoint(self, size: int, note: str, created_at: dt.datetime) -> None:
        exists = self._c.execute(
            select(audit_checkpoints.c.size).where(audit_checkpoints.c.size == size)
        ).first()
        if exists is None:
            self._c.execute(
                insert(audit_checkpoints).values(size=size, note=note, created_at=created_at)
            )

    def _lock_audit_head(self) -> tuple[int, bytes]:
        query = select(audit_head).where(audit_head.c.id == 1)
        if self._c.dialect.name == "postgresql":
            query = query.with_for_update()
        row = self._c.execute(query).first()
        if row is None:
            empty = Frontier().to_bytes()
            self._c.execute(insert(audit_head).values(id=1, size=0, frontier=empty))
            return 0, empty
        return row.size, row.frontier

    # vault info ----------------------------------------------------------------

    def get_info(self, key: str) -> str | None:
        row = self._c.execute(select(vault_info.c.value).where(vault_info.c.key == key)).first()
        return row.value if row else None

    def set_info(self, key: str, value: str) -> None:
        if self.get_info(key) is None:
            self._c.execute(insert(vault_info).values(key=key, value=value))
        else:
            self._c.execute(update(vault_info).where(vault_info.c.key == key).values(value=value))
