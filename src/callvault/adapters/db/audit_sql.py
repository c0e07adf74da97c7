"""SQL for the audit log: the store's reads and the transaction's writes.

Two mixins keep the audit log's statements apart from the rest of the
metadata store: :class:`AuditLogReads` gives ``SqlMetadataStore`` its
whole-log reads, :class:`AuditLogWrites` gives ``SqlTransaction`` its
appends, head and checkpoints.  Their hosts supply the connection handling
(``_read``, ``_exec``, ``_first``, ``_driver``), so a driver error still
becomes a core error at the call and dooms the transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, CursorResult, Executable, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from callvault.adapters.db.schema import audit_checkpoints, audit_entries, audit_head
from callvault.core.errors import StorageError
from callvault.core.merkle import Frontier
from callvault.core.rows import AuditRecord

_HEAD = select(audit_head.c.size, audit_head.c.frontier).where(audit_head.c.id == 1)
# Audit entries are read this many at a time, each batch on its own connection.
_AUDIT_BATCH = 10_000
_MAX_SEQ = 2**63 - 1  # the largest BIGINT: "no end" in a driver-level range
_T = TypeVar("_T")


def dbapi(conn: Connection) -> Any:
    """The DBAPI connection under ``conn`` (sqlite3 or psycopg)."""
    return conn.connection.dbapi_connection


def insert_or_merge(conn: Connection, table: Table) -> Any:
    """An INSERT that can say ON CONFLICT (both dialects spell it alike)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


class AuditSql:
    """The audit log's hot paths as driver-level SQL for one dialect.

    Every access appends a durable entry, and verification reads the whole
    log: on both, SQLAlchemy's statement execution cost several times the
    driver's own work.  These statements go to the DBAPI cursor as written.
    Values pass through the columns' own bind processors, so rows are stored
    exactly as SQLAlchemy stores them (hex UUID and datetime text on SQLite,
    native types on PostgreSQL); names follow schema.py, and the conformance
    suite reads these rows back through SQLAlchemy on both dialects.
    """

    def __init__(self, dialect: Dialect) -> None:
        postgres = dialect.name == "postgresql"

        def sql(text: str) -> str:
            # sqlite3 takes qmark parameters, psycopg format parameters.
            return text.replace("?", "%s") if postgres else text

        head = "SELECT size, frontier FROM audit_head WHERE id = 1"
        # SQLite holds the write lock since BEGIN IMMEDIATE; PostgreSQL locks the row.
        self.lock_head = head + " FOR UPDATE" if postgres else head
        self.seed_head = sql(
            "INSERT INTO audit_head (id, size, frontier) VALUES (1, 0, ?) "
            "ON CONFLICT (id) DO NOTHING"
        )
        self.insert_entry = sql(
            "INSERT INTO audit_entries (seq, body, leaf_hash, action, recording_id, time) "
            "VALUES (?, ?, ?, ?, ?, ?)"
        )
        self.update_head = sql("UPDATE audit_head SET size = ?, frontier = ? WHERE id = 1")
        self.leaves = sql(
            "SELECT seq, body, leaf_hash FROM audit_entries "
            "WHERE seq >= ? AND seq < ? ORDER BY seq LIMIT ?"
        )
        self.recording_id = _bind_processor(audit_entries.c.recording_id.type, dialect)
        self.time = _bind_processor(audit_entries.c.time.type, dialect)
        self.error: type[Exception] = dialect.loaded_dbapi.Error


def _bind_processor(type_: Any, dialect: Dialect) -> Callable[[Any], Any]:
    """How SQLAlchemy converts a value of ``type_`` for this dialect's driver."""
    process = type_.dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else _unchanged


def _unchanged(value: Any) -> Any:
    return value


class AuditLogReads:
    """The MetadataStore's audit reads; each batch runs on its own read connection.

    The host provides ``_sql`` and ``_read()`` (a read-only connection whose
    SQLAlchemy errors become ``StorageError``).
    """

    _sql: AuditSql

    if TYPE_CHECKING:

        def _read(self) -> AbstractContextManager[Connection]: ...

    def iter_audit(self, start: int = 0, end: int | None = None) -> Iterator[AuditRecord]:
        cursor = start
        while end is None or cursor < end:
            query = select(audit_entries).where(audit_entries.c.seq >= cursor)
            if end is not None:
                query = query.where(audit_entries.c.seq < end)
            query = query.order_by(audit_entries.c.seq).limit(_AUDIT_BATCH)
            with self._read() as conn:
                rows = conn.execute(query).all()
            for r in rows:
                yield AuditRecord(r.seq, r.body, r.leaf_hash, r.action, r.recording_id, r.time)
            if len(rows) < _AUDIT_BATCH:
                return
            cursor = rows[-1].seq + 1

    def iter_audit_leaves(
        self, start: int = 0, end: int | None = None
    ) -> Iterator[tuple[int, bytes, bytes]]:
        stop = _MAX_SEQ if end is None else end
        cursor = start
        while cursor < stop:
            rows = self._fetch(self._sql.leaves, (cursor, stop, _AUDIT_BATCH))
            yield from rows
            if len(rows) < _AUDIT_BATCH:
                return
            cursor = rows[-1][0] + 1

    def checkpoints(self) -> list[tuple[int, str]]:
        with self._read() as conn:
            query = select(audit_checkpoints.c.size, audit_checkpoints.c.note)
            return [(r.size, r.note) for r in conn.execute(query.order_by("size"))]

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        """Every row (a plain tuple) of a driver-level query, on a read connection."""
        with self._read() as conn:
            try:
                cursor = dbapi(conn).cursor()
                try:
                    cursor.execute(sql, params)
                    return list(cursor.fetchall())
                finally:
                    cursor.close()
            except self._sql.error as exc:
                raise StorageError("metadata database") from exc


class AuditLogWrites:
    """The Transaction's audit writes.

    The host provides ``_c`` (its connection), ``_sql``, and the statement
    runners ``_exec``, ``_first`` and ``_driver`` with their error contract.
    """

    _c: Connection
    _sql: AuditSql

    if TYPE_CHECKING:

        def _exec(self, statement: Executable, params: Any = None) -> CursorResult[Any]: ...

        def _first(self, statement: Executable) -> Any: ...

        def _driver(self, work: Callable[[Any], _T]) -> _T: ...

    def append_audit(
        self, entries: list[tuple[bytes, bytes, str, uuid.UUID | None, dt.datetime]]
    ) -> list[int]:
        sql = self._sql

        def append(cursor: Any) -> list[int]:
            size, frontier_bytes = self._locked_head(cursor)
            frontier = Frontier.from_bytes(frontier_bytes)
            rows = []
            for seq, (body, leaf_hash, action, recording_id, time) in enumerate(entries, size):
                frontier.append(leaf_hash)
                stored = (sql.recording_id(recording_id), sql.time(time))
                rows.append((seq, body, leaf_hash, action, *stored))
            if rows:
                cursor.executemany(sql.insert_entry, rows)
            cursor.execute(sql.update_head, (size + len(rows), frontier.to_bytes()))
            return list(range(size, size + len(rows)))

        return self._driver(append)

    def audit_head(self) -> tuple[int, bytes]:
        row = self._first(_HEAD)
        if row is None:
            return 0, Frontier().to_bytes()
        return row.size, row.frontier

    def add_checkpoint(self, size: int, note: str, created_at: dt.datetime) -> None:
        # Idempotent without a check-then-insert race: the first note stays.
        statement = insert_or_merge(self._c, audit_checkpoints).values(
            size=size, note=note, created_at=created_at
        )
        self._exec(statement.on_conflict_do_nothing(index_elements=["size"]))

    def latest_checkpoint_size(self) -> int | None:
        row = self._first(select(func.max(audit_checkpoints.c.size)))
        return None if row is None or row[0] is None else int(row[0])

    def _locked_head(self, cursor: Any) -> tuple[int, bytes]:
        """(size, frontier) of the log, locked against other appenders until commit."""
        cursor.execute(self._sql.lock_head)
        row = cursor.fetchone()
        if row is None:
            # The first append ever creates the head row.  Two first appenders
            # on PostgreSQL would both see none: ON CONFLICT makes the second
            # wait for the first and keep its row, then it locks that row.
            cursor.execute(self._sql.seed_head, (Frontier().to_bytes(),))
            cursor.execute(self._sql.lock_head)
            row = cursor.fetchone()
        return int(row[0]), bytes(row[1])
