"""The JobQueue conformance suite on both backends: the embedded SQL runner
(SQLite, and PostgreSQL with SKIP LOCKED) and procrastinate (PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from callvault.adapters.db.store import SqlMetadataStore, create_engine_for
from callvault.adapters.jobs.procrastinate_queue import ProcrastinateJobQueue
from callvault.adapters.jobs.sql import SqlJobQueue
from callvault.core.jobs import JobState, RetryPolicy
from callvault.testing.clock import FakeClock
from callvault.testing.jobs import JobQueueConformance
from callvault.testing.postgres import throwaway_database

START = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)


def _migrated(url: str) -> None:
    SqlMetadataStore.open(url).close()


_TABLES = ("jobs", "job_schedules", "job_progress")
_PROCRASTINATE = (
    "procrastinate_events", "procrastinate_periodic_defers", "procrastinate_jobs",
    "procrastinate_workers",
)  # fmt: skip


def _reset(url: str, procrastinate: bool = False) -> None:
    """Empty the queue's tables: one database serves a whole test class (creating
    and migrating one per test would cost more than the tests)."""
    engine = create_engine_for(url)
    with engine.begin() as conn:
        for table in _TABLES + (_PROCRASTINATE if procrastinate else ()):
            conn.execute(text(f"DELETE FROM {table}"))
    engine.dispose()


class _SqlBackend(JobQueueConformance):
    url: str

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock(START)

    @pytest.fixture
    def make_queue(self, database_url: str, clock: FakeClock) -> Iterator[Any]:
        _migrated(database_url)
        _reset(database_url)
        made: list[SqlJobQueue] = []

        def make(retry: RetryPolicy) -> SqlJobQueue:
            q = SqlJobQueue(create_engine_for(database_url), clock, retry=retry, poll_seconds=0.05)
            made.append(q)
            return q

        yield make
        for q in made:
            q.close()

    @pytest.fixture
    def abandon(self, clock: FakeClock) -> Any:
        def abandon(q: SqlJobQueue, kind: str) -> int:
            job_id = q.enqueue(kind, {})
            assert q.claim("killed-worker", [kind]) is not None
            clock.advance(seconds=q.lease.total_seconds() + 1)  # the lease ran out
            return job_id

        return abandon


class TestSqliteQueue(_SqlBackend):
    @pytest.fixture
    def database_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'vault.db'}"


class TestSqlQueueOnPostgres(_SqlBackend):
    @pytest.fixture(scope="class")
    @classmethod
    def database_url(cls) -> Iterator[str]:
        with throwaway_database() as url:
            yield url


class TestProcrastinateQueue(JobQueueConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def database_url(cls) -> Iterator[str]:
        with throwaway_database() as url:
            _migrated(url)
            q = ProcrastinateJobQueue(create_engine_for(url), FakeClock(START))
            q.init_schema()
            q.close()
            yield url

    @pytest.fixture
    def make_queue(self, database_url: str) -> Iterator[Any]:
        _reset(database_url, procrastinate=True)
        made: list[ProcrastinateJobQueue] = []

        def make(retry: RetryPolicy) -> ProcrastinateJobQueue:
            q = ProcrastinateJobQueue(
                create_engine_for(database_url),
                FakeClock(START),
                retry=retry,
                poll_seconds=0.05,
                stalled_seconds=5,
            )
            q.init_schema()
            made.append(q)
            return q

        yield make
        for q in made:
            q.close()

    @pytest.fixture
    def abandon(self, database_url: str) -> Any:
        def abandon(q: ProcrastinateJobQueue, kind: str) -> int:
            job_id = q.enqueue(kind, {})

            async def fetch() -> None:
                app = q._app()
                async with app.open_async():
                    worker = await app.job_manager.register_worker()
                    job = await app.job_manager.fetch_job(None, worker)
                    assert job is not None and job.id == job_id

            asyncio.run(fetch())
            # The worker died: its heartbeat stopped a minute ago.
            engine = create_engine_for(database_url)
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "UPDATE procrastinate_workers"
                        " SET last_heartbeat = now() - interval '1 minute'"
                    )
                )
            engine.dispose()
            return job_id

        return abandon


def test_a_running_worker_recovers_a_stalled_job_on_its_periodic_tick(tmp_path: Path) -> None:
    """Stalled-job recovery is periodic: no restart is needed to take over a dead worker's job."""
    url = f"sqlite:///{tmp_path / 'vault.db'}"
    _migrated(url)
    clock = FakeClock(START)
    q = SqlJobQueue(create_engine_for(url), clock, poll_seconds=0.05, tick_seconds=0.1)
    job_id = q.enqueue("scrub_range", {})
    assert q.claim("killed-worker", ["scrub_range"]) is not None
    ran: list[int] = []
    worker = threading.Thread(
        target=q.run,
        args=({"scrub_range": lambda ctx: ran.append(ctx.job.id)},),
        kwargs={"tick": q.recover_stalled, "stop": lambda: bool(ran)},
    )
    worker.start()
    time.sleep(0.5)
    assert ran == []  # the dead worker's lease still stands
    clock.advance(seconds=q.lease.total_seconds() + 1)
    worker.join(timeout=10)
    assert ran == [job_id]
    info = q.job(job_id)
    assert (info.state, info.attempts) == (JobState.DONE, 2)
    q.close()
