"""The JobQueue port on procrastinate (PostgreSQL only), for scale-out.

procrastinate does the queueing: its ``lock`` keeps jobs of one key apart,
its ``queueing_lock`` keeps one queued job per key, its retry strategy
retries with exponential backoff, its workers send heartbeats, and a
periodic task (every minute) runs the vault's tick: stalled jobs of workers
whose heartbeat stopped are retried and the schedules are queued.  Its
schema lives beside the vault's in the same database and is applied by
``callvault jobs init``.  Progress, resume cursors and error codes, which
procrastinate has no place for, go to the vault's ``job_progress`` table.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

import procrastinate
from procrastinate import exceptions as pexc
from sqlalchemy import Engine, insert, text, update
from sqlalchemy import exc as sa_exc

from callvault.adapters.db.schema import job_progress
from callvault.adapters.jobs.sql import mark_slot
from callvault.core import jobs as core_jobs
from callvault.core.errors import CallvaultError, StorageError
from callvault.core.jobs import ClaimedJob, JobInfo, JobState, RetryPolicy
from callvault.core.ports import Clock, JobHandler

log = logging.getLogger("callvault.jobs")

_STATES = {
    "todo": JobState.QUEUED,
    "doing": JobState.RUNNING,
    "succeeded": JobState.DONE,
    "failed": JobState.FAILED,
    "cancelled": JobState.FAILED,
    "aborting": JobState.RUNNING,
    "aborted": JobState.FAILED,
}
_TICK = "callvault_tick"


def conninfo(engine: Engine) -> str:
    """psycopg's connection string for the engine's database (password included)."""
    url = engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class ProcrastinateJobQueue:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        retry: RetryPolicy = core_jobs.DEFAULT_RETRY,
        stalled_seconds: float = 30.0,
        heartbeat_seconds: float = 5.0,
        poll_seconds: float = 1.0,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self.retry = retry
        self.stalled_seconds = stalled_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.poll_seconds = poll_seconds
        self._conninfo = conninfo(engine)

    def _app(self) -> procrastinate.App:
        connector = procrastinate.PsycopgConnector(conninfo=self._conninfo)
        return procrastinate.App(connector=connector)

    # --- the port ---------------------------------------------------------------

    def init_schema(self) -> None:
        if self._has_schema():
            return
        app = self._app()
        with app.open():
            app.schema_manager.apply_schema()

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
        app = self._app()
        try:
            with app.open():
                task = app.configure_task(
                    name=kind,
                    allow_unknown=True,
                    lock=core_jobs.validate_lock(lock),
                    queueing_lock=core_jobs.validate_lock(queueing_lock),
                    schedule_at=run_after,
                )
                return int(task.defer(**clean))
        except pexc.AlreadyEnqueued:
            return None
        except pexc.ConnectorException as exc:
            raise StorageError("job queue") from exc

    def jobs(self, *, state: JobState | None = None, limit: int = 100) -> list[JobInfo]:
        where = ""
        params: dict[str, Any] = {"limit": max(1, min(limit, 1000))}
        if state is not None:
            wanted = [k for k, v in _STATES.items() if v is JobState(state)]
            where = "WHERE j.status::text = ANY(:states)"
            params["states"] = wanted
        return [_info(r, self.retry) for r in self._query(_LIST.format(where=where), params)]

    def job(self, job_id: int) -> JobInfo | None:
        rows = self._query(_LIST.format(where="WHERE j.id = :id"), {"id": job_id, "limit": 1})
        return _info(rows[0], self.retry) if rows else None

    def mark_slot(self, name: str, slot: int) -> bool:
        return mark_slot(self._engine, name, slot)

    def recover_stalled(self) -> int:
        async def work() -> int:
            app = self._app()
            async with app.open_async():
                return await self._retry_stalled(app)

        return asyncio.run(work())

    async def _retry_stalled(self, app: procrastinate.App) -> int:
        manager = app.job_manager
        stalled = list(await manager.get_stalled_jobs(seconds_since_heartbeat=self.stalled_seconds))
        for job in stalled:
            await manager.retry_job(job)
        return len(stalled)

    def run(
        self,
        handlers: Mapping[str, JobHandler],
        *,
        concurrency: int = 1,
        until_idle: bool = False,
        tick: Callable[[], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> int:
        """procrastinate's worker; it handles SIGINT/SIGTERM itself (finishing
        running jobs), so ``stop`` is not polled."""
        app = self._app()
        count = [0]
        strategy = procrastinate.RetryStrategy(
            max_attempts=max(0, self.retry.max_attempts - 1),
            exponential_wait=int(self.retry.base_seconds),
        )
        for kind, handler in handlers.items():
            app.task(name=kind, pass_context=True, retry=strategy)(self._wrap(kind, handler, count))
        if tick is not None:
            tick()  # recover and schedule now, not only at the next whole minute
            tick_fn = tick

            def run_tick(timestamp: int) -> None:
                tick_fn()

            app.periodic(cron="* * * * *", periodic_id=_TICK)(
                app.task(name=_TICK, queueing_lock=_TICK)(run_tick)
            )
        app.run_worker(
            concurrency=max(1, concurrency),
            wait=not until_idle,
            fetch_job_polling_interval=self.poll_seconds,
            update_heartbeat_interval=self.heartbeat_seconds,
            stalled_worker_timeout=self.stalled_seconds,
            install_signal_handlers=not until_idle,
            listen_notify=not until_idle,
        )
        return count[0]

    def close(self) -> None:
        self._engine.dispose()

    # --- helpers --------------------------------------------------------------------

    def _wrap(self, kind: str, handler: JobHandler, count: list[int]) -> Callable[..., None]:
        queue = self

        def run(context: Any, **payload: Any) -> None:
            job = context.job
            cursor = queue._cursor(job.id)
            claimed = ClaimedJob(
                id=job.id,
                kind=kind,
                payload=core_jobs.validate_payload(payload),
                attempt=job.attempts + 1,
                max_attempts=queue.retry.max_attempts,
                cursor=cursor,
            )
            try:
                handler(_Context(queue, claimed, context))
            except CallvaultError as exc:
                queue._progress(job.id, None, None, None, exc.code)
                raise
            except Exception:
                queue._progress(job.id, None, None, None, "internal_error")
                raise
            finally:
                count[0] += 1

        return run

    def _cursor(self, job_id: int) -> dict[str, str | int]:
        rows = self._query("SELECT cursor FROM job_progress WHERE job_id = :id", {"id": job_id})
        return core_jobs.decode_payload(rows[0].cursor) if rows else {}

    def _progress(
        self,
        job_id: int,
        done: int | None,
        total: int | None,
        cursor: Mapping[str, str | int] | None,
        error: str | None = None,
    ) -> None:
        values: dict[str, Any] = {}
        if done is not None:
            values.update(progress_done=done, progress_total=total)
        if cursor is not None:
            values["cursor"] = core_jobs.encode_payload(core_jobs.validate_payload(cursor))
        if error is not None:
            values["last_error"] = core_jobs.error_code(error)
        try:
            with self._engine.begin() as conn:
                moved = conn.execute(
                    update(job_progress).where(job_progress.c.job_id == job_id).values(**values)
                ).rowcount
                if not moved:
                    conn.execute(
                        insert(job_progress).values(
                            job_id=job_id, progress_done=values.pop("progress_done", 0), **values
                        )
                    )
        except sa_exc.SQLAlchemyError as exc:
            raise StorageError("job progress") from exc

    def _has_schema(self) -> bool:
        rows = self._query("SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS ok", {})
        return bool(rows[0].ok)

    def _query(self, sql: str, params: dict[str, Any]) -> list[Any]:
        try:
            with self._engine.connect() as conn:
                return list(conn.execute(text(sql), params).all())
        except sa_exc.SQLAlchemyError as exc:
            raise StorageError("job queue") from exc


_LIST = """
SELECT j.id, j.task_name, j.status::text AS status, j.attempts, j.lock, j.args,
       j.scheduled_at, p.progress_done, p.progress_total, p.last_error,
       (SELECT min(e.at) FROM procrastinate_events e WHERE e.job_id = j.id) AS created_at,
       (SELECT max(e.at) FROM procrastinate_events e WHERE e.job_id = j.id) AS updated_at,
       (SELECT max(e.at) FROM procrastinate_events e
         WHERE e.job_id = j.id AND e.type = 'started') AS started_at
FROM procrastinate_jobs j LEFT JOIN job_progress p ON p.job_id = j.id
{where}
ORDER BY j.id DESC LIMIT :limit
"""


def _utc(value: dt.datetime | None) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.UTC)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _info(row: Any, retry: RetryPolicy) -> JobInfo:
    state = _STATES.get(row.status, JobState.FAILED)
    # procrastinate counts finished attempts; the one running counts too.
    attempts = row.attempts + (1 if state is JobState.RUNNING else 0)
    return JobInfo(
        id=row.id,
        kind=row.task_name,
        state=state,
        attempts=attempts,
        max_attempts=retry.max_attempts,
        progress_done=row.progress_done or 0,
        progress_total=row.progress_total,
        last_error=row.last_error,
        lock=row.lock,
        created_at=_utc(row.created_at),
        run_after=_utc(row.scheduled_at or row.created_at),
        updated_at=_utc(row.updated_at),
        payload={} if row.task_name == _TICK else core_jobs.validate_payload(row.args or {}),
        started_at=None if row.started_at is None else _utc(row.started_at),
    )


class _Context:
    def __init__(self, queue: ProcrastinateJobQueue, job: ClaimedJob, context: Any) -> None:
        self._queue = queue
        self._job = job
        self._context = context

    @property
    def job(self) -> ClaimedJob:
        return self._job

    def progress(
        self, done: int, total: int | None = None, cursor: Mapping[str, str | int] | None = None
    ) -> None:
        self._queue._progress(self._job.id, done, total, cursor)

    def stopping(self) -> bool:
        return bool(self._context.should_abort())
