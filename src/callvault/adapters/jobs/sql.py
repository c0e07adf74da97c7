"""The embedded job queue: a ``jobs`` table in the vault's own database.

Claiming is one short write transaction: ``BEGIN IMMEDIATE`` on SQLite (one
writer at a time), ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL (workers
skip each other's candidates).  Locks are partial unique indexes, so even two
PostgreSQL workers racing for two jobs with one lock key cannot both win.
A claimed job carries a lease that the worker renews; a job whose lease ran
out (its worker was killed) is given back by ``recover_stalled``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, select, update
from sqlalchemy import exc as sa_exc

from callvault.adapters.db.schema import job_schedules, jobs
from callvault.adapters.db.store import READ_ONLY_OPTIONS, translate
from callvault.adapters.jobs.runner import WorkerLoop
from callvault.core import jobs as core_jobs
from callvault.core.errors import AlreadyExists, StorageError
from callvault.core.jobs import ClaimedJob, JobInfo, JobState, RetryPolicy
from callvault.core.ports import Clock, JobHandler

STALLED = "stalled"


class SqlJobQueue:
    """The JobQueue port on one SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        retry: RetryPolicy = core_jobs.DEFAULT_RETRY,
        lease: dt.timedelta = dt.timedelta(seconds=60),
        poll_seconds: float = 1.0,
        tick_seconds: float = 30.0,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self.retry = retry
        self.lease = lease
        self.poll_seconds = poll_seconds
        self.tick_seconds = tick_seconds
        self._pg = engine.dialect.name == "postgresql"

    # --- the port ---------------------------------------------------------------

    def init_schema(self) -> None:
        """Nothing to do: the vault's migrations made the tables."""

    def enqueue(
        self,
        kind: str,
        payload: Mapping[str, str | int],
        *,
        lock: str | None = None,
        queueing_lock: str | None = None,
        run_after: dt.datetime | None = None,
    ) -> int | None:
        kind = core_jobs.parse_kind(kind).value
        clean = core_jobs.validate_payload(payload)
        now = self._clock.now()
        values = {
            "kind": kind,
            "payload": core_jobs.encode_payload(clean),
            "state": JobState.QUEUED.value,
            "lock_key": core_jobs.validate_lock(lock),
            "queueing_key": core_jobs.validate_lock(queueing_lock),
            "attempts": 0,
            "max_attempts": self.retry.max_attempts,
            "run_after": run_after or now,
            "progress_done": 0,
            "created_at": now,
            "updated_at": now,
        }
        try:
            with self._tx() as conn:
                key = conn.execute(insert(jobs).values(**values)).inserted_primary_key
                assert key is not None
                return int(key[0])
        except AlreadyExists:
            return None  # the queueing key already has a queued job

    def jobs(self, *, state: JobState | None = None, limit: int = 100) -> list[JobInfo]:
        query = select(jobs).order_by(jobs.c.id.desc()).limit(max(1, min(limit, 1000)))
        if state is not None:
            query = query.where(jobs.c.state == JobState(state).value)
        return [_info(r) for r in read_all(self._engine, query)]

    def job(self, job_id: int) -> JobInfo | None:
        rows = read_all(self._engine, select(jobs).where(jobs.c.id == job_id))
        return _info(rows[0]) if rows else None

    def mark_slot(self, name: str, slot: int) -> bool:
        return mark_slot(self._engine, name, slot)

    def recover_stalled(self) -> int:
        now = self._clock.now()
        with self._tx() as conn:
            rows = conn.execute(
                select(jobs.c.id, jobs.c.attempts, jobs.c.max_attempts).where(
                    and_(jobs.c.state == JobState.RUNNING.value, jobs.c.lease_until < now)
                )
            ).all()
            for row in rows:
                used_up = row.attempts >= row.max_attempts
                conn.execute(
                    update(jobs)
                    .where(and_(jobs.c.id == row.id, jobs.c.state == JobState.RUNNING.value))
                    .values(
                        state=(JobState.FAILED if used_up else JobState.QUEUED).value,
                        lease_owner=None,
                        lease_until=None,
                        run_after=now,
                        last_error=STALLED,
                        updated_at=now,
                    )
                )
        return len(rows)

    def run(
        self,
        handlers: Mapping[str, JobHandler],
        *,
        concurrency: int = 1,
        until_idle: bool = False,
        tick: Callable[[], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> int:
        loop = WorkerLoop(self, handlers, self.poll_seconds, self.tick_seconds)
        return loop.run(concurrency=concurrency, until_idle=until_idle, tick=tick, stop=stop)

    def close(self) -> None:
        self._engine.dispose()

    # --- what the worker loop needs -----------------------------------------------

    def claim(self, worker_id: str, kinds: list[str]) -> ClaimedJob | None:
        """Lease the oldest ready job of ``kinds`` whose lock is free; None if there is none."""
        for _ in range(5):  # a lost race on a lock key (PostgreSQL) just tries again
            try:
                return self._claim_once(worker_id, kinds)
            except AlreadyExists:
                continue
        return None

    def _claim_once(self, worker_id: str, kinds: list[str]) -> ClaimedJob | None:
        now = self._clock.now()
        with self._tx() as conn:
            query = (
                select(jobs)
                .where(
                    and_(
                        jobs.c.state == JobState.QUEUED.value,
                        jobs.c.run_after <= now,
                        jobs.c.kind.in_(kinds),
                    )
                )
                .order_by(jobs.c.run_after, jobs.c.id)
                .limit(20)
            )
            if self._pg:
                query = query.with_for_update(skip_locked=True)
            held = _held_locks(conn)
            for row in conn.execute(query).all():
                if row.lock_key is not None and row.lock_key in held:
                    continue
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == row.id)
                    .values(
                        state=JobState.RUNNING.value,
                        # Running, it no longer holds its queueing key: a new
                        # job of that key may be queued behind it.
                        queueing_key=None,
                        lease_owner=worker_id,
                        lease_until=now + self.lease,
                        started_at=now,
                        attempts=row.attempts + 1,
                        updated_at=now,
                    )
                )
                return ClaimedJob(
                    id=row.id,
                    kind=row.kind,
                    payload=core_jobs.decode_payload(row.payload),
                    attempt=row.attempts + 1,
                    max_attempts=row.max_attempts,
                    cursor=core_jobs.decode_payload(row.cursor),
                )
        return None

    def heartbeat(
        self,
        job_id: int,
        worker_id: str,
        done: int | None = None,
        total: int | None = None,
        cursor: Mapping[str, str | int] | None = None,
    ) -> bool:
        """Renew the lease (and record progress); False if this worker lost the job."""
        now = self._clock.now()
        values: dict[str, Any] = {"lease_until": now + self.lease, "updated_at": now}
        if done is not None:
            values["progress_done"] = done
            values["progress_total"] = total
        if cursor is not None:
            values["cursor"] = core_jobs.encode_payload(core_jobs.validate_payload(cursor))
        with self._tx() as conn:
            return self._mine(conn, job_id, worker_id, values)

    def complete(self, job_id: int, worker_id: str) -> bool:
        now = self._clock.now()
        with self._tx() as conn:
            return self._mine(
                conn,
                job_id,
                worker_id,
                {"state": JobState.DONE.value, "lease_owner": None, "lease_until": None,
                 "last_error": None, "updated_at": now},
            )  # fmt: skip

    def fail(self, job_id: int, worker_id: str, code: str) -> bool:
        """Back to the queue after a backoff, or failed for good once attempts are used up."""
        now = self._clock.now()
        with self._tx() as conn:
            row = conn.execute(select(jobs.c.attempts, jobs.c.max_attempts).where(
                jobs.c.id == job_id)).first()  # fmt: skip
            if row is None:
                return False
            retry = row.attempts < row.max_attempts
            return self._mine(
                conn,
                job_id,
                worker_id,
                {
                    "state": (JobState.QUEUED if retry else JobState.FAILED).value,
                    "run_after": now + self.retry.delay(row.attempts) if retry else now,
                    "lease_owner": None,
                    "lease_until": None,
                    "last_error": core_jobs.error_code(code),
                    "updated_at": now,
                },
            )

    def release(self, job_id: int, worker_id: str) -> bool:
        """Give a job back untouched (the worker is stopping); the attempt does not count."""
        now = self._clock.now()
        with self._tx() as conn:
            return self._mine(
                conn,
                job_id,
                worker_id,
                {"state": JobState.QUEUED.value, "lease_owner": None, "lease_until": None,
                 "attempts": jobs.c.attempts - 1, "run_after": now, "updated_at": now},
            )  # fmt: skip

    def _mine(self, conn: Connection, job_id: int, worker_id: str, values: dict[str, Any]) -> bool:
        result = conn.execute(
            update(jobs)
            .where(
                and_(
                    jobs.c.id == job_id,
                    jobs.c.state == JobState.RUNNING.value,
                    jobs.c.lease_owner == worker_id,
                )
            )
            .values(**values)
        )
        return result.rowcount == 1

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self._engine.begin() as conn:
                yield conn
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc) from exc


def read_all(engine: Engine, query: Any) -> list[Any]:
    """Rows of one query in a read-only unit: the store's begin hook makes it a
    deferred BEGIN with query_only on SQLite, so a listing or a scrub's reads
    never queue for (or hold) the write lock that claims take."""
    try:
        with engine.connect() as conn:
            conn.execution_options(**READ_ONLY_OPTIONS)
            with conn.begin():
                return list(conn.execute(query).all())
    except sa_exc.SQLAlchemyError as exc:
        raise translate(exc) from exc


def _held_locks(conn: Connection) -> set[str]:
    rows = conn.execute(
        select(jobs.c.lock_key).where(
            and_(jobs.c.state == JobState.RUNNING.value, jobs.c.lock_key.is_not(None))
        )
    )
    return {r.lock_key for r in rows}


def mark_slot(engine: Engine, name: str, slot: int) -> bool:
    """One conditional write: True for exactly one caller per (name, slot)."""
    try:
        with engine.begin() as conn:
            moved = conn.execute(
                update(job_schedules)
                .where(and_(job_schedules.c.name == name, job_schedules.c.last_slot < slot))
                .values(last_slot=slot)
            ).rowcount
            if moved:
                return True
            exists = conn.execute(
                select(job_schedules.c.name).where(job_schedules.c.name == name)
            ).first()
            if exists is not None:
                return False
            conn.execute(insert(job_schedules).values(name=name, last_slot=slot))
            return True
    except sa_exc.IntegrityError:
        return False  # another worker inserted the first slot at the same moment
    except sa_exc.SQLAlchemyError as exc:
        raise StorageError("job schedules") from exc


def _info(row: Any) -> JobInfo:
    return JobInfo(
        id=row.id,
        kind=row.kind,
        state=JobState(row.state),
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        progress_done=row.progress_done,
        progress_total=row.progress_total,
        last_error=row.last_error,
        lock=row.lock_key,
        created_at=row.created_at,
        run_after=row.run_after,
        updated_at=row.updated_at,
        payload=core_jobs.decode_payload(row.payload),
        started_at=row.started_at,
    )
