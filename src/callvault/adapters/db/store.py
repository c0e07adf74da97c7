"""SQLAlchemy implementation of the MetadataStore port (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Executable,
    and_,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from callvault.adapters.db import migrate
from callvault.adapters.db.accounts import SqlAccounts
from callvault.adapters.db.audit_sql import (
    AuditLogReads,
    AuditLogWrites,
    AuditSql,
    dbapi,
    insert_or_merge,
)
from callvault.adapters.db.grants import SqlGrants
from callvault.adapters.db.lifecycle import SqlLifecycle
from callvault.adapters.db.review import SqlReview
from callvault.adapters.db.schema import bucket_keks, recordings, vault_info
from callvault.core.errors import AlreadyExists, CallvaultError, ConfigError, Conflict, StorageError
from callvault.core.recordings import ACTIVE, PENDING, BucketKekRow, RecordingRow, SearchCriteria

_RECORDING_FIELDS = [f.name for f in dataclasses.fields(RecordingRow)]
_T = TypeVar("_T")


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


_READ_ONLY = "callvault_read_only"
_QUERY_ONLY = "callvault_query_only"
# Execution options of a read-only unit: a deferred BEGIN with query_only on
# SQLite (see _sqlite_begin), BEGIN READ ONLY on PostgreSQL.  Other adapters
# on the same engine (the job queue) use them for their own reads.
READ_ONLY_OPTIONS: dict[str, bool] = {_READ_ONLY: True, "postgresql_readonly": True}


def _sqlite_begin(conn: Connection) -> None:
    # Take the write lock at BEGIN so two writers never deadlock on upgrade.
    # Pure reads begin deferred: under WAL they read a snapshot beside the
    # writer instead of queueing behind it for the write lock.
    # Sent straight to the driver: through SQLAlchemy, BEGIN cost more CPU
    # than the statements of a whole audit append.
    read_only = conn.get_execution_options().get(_READ_ONLY, False)
    statement = "BEGIN" if read_only else "BEGIN IMMEDIATE"
    try:
        # query_only makes SQLite itself refuse every write of a read-only
        # unit, however it is issued.  The flag outlives the transaction on
        # the pooled connection, so it is only sent when it must change.
        if conn.info.get(_QUERY_ONLY, False) != read_only:
            dbapi(conn).execute(f"PRAGMA query_only={int(read_only)}")
            conn.info[_QUERY_ONLY] = read_only
        dbapi(conn).execute(statement)
    except sqlite3.Error as exc:
        raise sa_exc.DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc


# Constraint failures the port names: a taken key, and a reference to a
# missing row (or from a remaining one).  Any other refusal (a trigger, NOT
# NULL) is the backend failing the write: StorageError.
_UNIQUE = {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY", "23505"}
_FOREIGN_KEY = {"SQLITE_CONSTRAINT_FOREIGNKEY", "23503"}


def translate(exc: sa_exc.SQLAlchemyError) -> CallvaultError:
    """The core error for a driver error; driver messages are never passed on
    (PostgreSQL quotes the offending key values in them)."""
    orig = getattr(exc, "orig", None)
    # sqlite3 names its extended result code; psycopg gives the SQLSTATE.
    code = getattr(orig, "sqlite_errorname", None) or getattr(orig, "sqlstate", None)
    if isinstance(exc, sa_exc.IntegrityError) and code in _UNIQUE:
        return AlreadyExists("record")
    if isinstance(exc, sa_exc.IntegrityError) and code in _FOREIGN_KEY:
        return Conflict("the change would break a reference between records")
    return StorageError("metadata database")


def create_engine_for(url: str) -> Engine:
    from sqlalchemy import create_engine

    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError:
        raise ConfigError("CALLVAULT_DATABASE_URL is not a database URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = create_engine(parsed, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
    raise ConfigError(f"unsupported database backend {backend!r} (sqlite or postgresql)")


class SqlMetadataStore(AuditLogReads):
    """MetadataStore over one SQLAlchemy engine; migrates the schema on open.

    The audit log's reads come from :class:`AuditLogReads`.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sql = AuditSql(engine.dialect)
        try:
            migrate.upgrade(engine)
        except sa_exc.SQLAlchemyError as exc:
            raise StorageError("cannot open the metadata database") from exc

    @classmethod
    def open(cls, url: str) -> SqlMetadataStore:
        return cls(create_engine_for(url))

    @contextmanager
    def transaction(self, read_only: bool = False) -> Iterator[SqlTransaction]:
        try:
            with self._engine.connect() as conn:
                if read_only:
                    # SQLite: a deferred BEGIN with query_only (see
                    # _sqlite_begin); PostgreSQL: BEGIN READ ONLY.
                    conn.execution_options(**READ_ONLY_OPTIONS)
                with conn.begin():
                    tx = SqlTransaction(conn, self._sql)
                    yield tx
                    if tx.failed:
                        # The caller caught a failed statement's error and
                        # carried on.  PostgreSQL has aborted the transaction
                        # already and SQLite would commit the rest: neither may
                        # happen silently.
                        raise StorageError(
                            "a statement of this transaction failed; nothing committed"
                        )
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc) from exc

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

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                yield conn.execution_options(**{_READ_ONLY: True})
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


class SqlTransaction(AuditLogWrites):
    """The Transaction port on one open SQLAlchemy connection.

    Every statement goes through ``_exec``, which turns driver errors into
    core errors at the call.  After a failed statement the transaction is
    doomed: later statements raise ``StorageError`` and it never commits.
    The audit log's writes come from :class:`AuditLogWrites`.
    """

    def __init__(self, conn: Connection, driver_sql: AuditSql | None = None) -> None:
        self._c = conn
        self._sql = driver_sql or AuditSql(conn.dialect)
        self.failed = False

    def _exec(self, statement: Executable, params: Any = None) -> CursorResult[Any]:
        if self.failed:
            raise StorageError("an earlier statement of this transaction failed")
        try:
            return self._c.execute(statement, params)
        except sa_exc.SQLAlchemyError as exc:
            self.failed = True
            raise translate(exc) from exc

    def _driver(self, work: Callable[[Any], _T]) -> _T:
        """Run ``work`` on a DBAPI cursor of this transaction, with ``_exec``'s contract."""
        if self.failed:
            raise StorageError("an earlier statement of this transaction failed")
        try:
            cursor = dbapi(self._c).cursor()
            try:
                return work(cursor)
            finally:
                cursor.close()
        except self._sql.error as exc:
            self.failed = True
            raise translate(sa_exc.DBAPIError.instance(None, None, exc, self._sql.error)) from exc
        except sa_exc.SQLAlchemyError as exc:
            self.failed = True
            raise translate(exc) from exc
        except (ValueError, TypeError) as exc:
            # A value its column's bind processor refuses (a naive datetime),
            # which SQLAlchemy would have refused as a StatementError.
            self.failed = True
            raise StorageError("metadata database") from exc

    def _rows(self, statement: Executable) -> list[Any]:
        result = self._exec(statement)
        try:
            return list(result.all())
        except sa_exc.SQLAlchemyError as exc:
            self.failed = True
            raise translate(exc) from exc

    def _first(self, statement: Executable) -> Any:
        rows = self._rows(statement)
        return rows[0] if rows else None

    # recordings -------------------------------------------------------------

    def insert_recording(self, row: RecordingRow) -> None:
        self._exec(insert(recordings).values(**dataclasses.asdict(row)))

    def get_recording(self, recording_id: uuid.UUID) -> RecordingRow | None:
        row = self._first(select(recordings).where(recordings.c.id == recording_id))
        return _recording(row) if row else None

    def find_by_fingerprint(self, fingerprint: bytes) -> RecordingRow | None:
        query = select(recordings).where(recordings.c.fingerprint == fingerprint)
        row = self._first(query)
        return _recording(row) if row else None

    def activate_recording(
        self, recording_id: uuid.UUID, ciphertext_size: int, ciphertext_sha256: bytes
    ) -> bool:
        result = self._exec(
            update(recordings)
            .where(and_(recordings.c.id == recording_id, recordings.c.state == PENDING))
            .values(
                state=ACTIVE, ciphertext_size=ciphertext_size, ciphertext_sha256=ciphertext_sha256
            )
        )
        return result.rowcount == 1

    def delete_recording(self, recording_id: uuid.UUID) -> None:
        self._exec(delete(recordings).where(recordings.c.id == recording_id))

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
        return [_recording(r) for r in self._rows(query)]

    def rewrap_dek(
        self,
        recording_id: uuid.UUID,
        old_bucket_kek_id: int,
        new_bucket_kek_id: int,
        wrapped: bytes,
    ) -> bool:
        result = self._exec(
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
        row = self._first(query)
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
        result = self._exec(insert(bucket_keks).values(**values))
        key = result.inserted_primary_key
        assert key is not None
        return dataclasses.replace(row, id=int(key[0]))

    def get_bucket_kek(self, bucket_kek_id: int) -> BucketKekRow | None:
        row = self._first(select(bucket_keks).where(bucket_keks.c.id == bucket_kek_id))
        return _bucket(row) if row else None

    def bucket_keks(self) -> list[BucketKekRow]:
        return [_bucket(r) for r in self._rows(select(bucket_keks).order_by(bucket_keks.c.id))]

    def update_bucket_kek_wrap(self, bucket_kek_id: int, root_version: int, wrapped: bytes) -> None:
        self._exec(
            update(bucket_keks)
            .where(bucket_keks.c.id == bucket_kek_id)
            .values(root_version=root_version, wrapped=wrapped)
        )

    def delete_bucket_kek(self, bucket_kek_id: int) -> None:
        self._exec(delete(bucket_keks).where(bucket_keks.c.id == bucket_kek_id))

    def dek_counts(self) -> dict[int, int]:
        query = select(recordings.c.bucket_kek_id, func.count()).group_by(
            recordings.c.bucket_kek_id
        )
        return {int(r[0]): int(r[1]) for r in self._rows(query)}

    def recording_ids_under(self, bucket_kek_id: int, limit: int) -> list[uuid.UUID]:
        query = (
            select(recordings.c.id).where(recordings.c.bucket_kek_id == bucket_kek_id).limit(limit)
        )
        return [r.id for r in self._rows(query)]

    # vault info ----------------------------------------------------------------

    def get_info(self, key: str) -> str | None:
        row = self._first(select(vault_info.c.value).where(vault_info.c.key == key))
        return row.value if row else None

    def set_info(self, key: str, value: str) -> None:
        statement = insert_or_merge(self._c, vault_info).values(key=key, value=value)
        self._exec(statement.on_conflict_do_update(index_elements=["key"], set_={"value": value}))

    # people, sessions and API tokens ------------------------------------------

    @property
    def accounts(self) -> SqlAccounts:
        return SqlAccounts(self)

    # playback and download grants, emergency grants, review items, paged reads

    @property
    def grants(self) -> SqlGrants:
        return SqlGrants(self)

    # recording policies, legal holds and shredding

    @property
    def lifecycle(self) -> SqlLifecycle:
        return SqlLifecycle(self)

    # log review, search hits, patient log extracts, breach reports

    @property
    def review(self) -> SqlReview:
        return SqlReview(self)
