"""The embedded worker: threads that claim, run and settle jobs of a lease-based queue.

Each running job has a heartbeat thread renewing its lease at a third of the
lease time, so a job only stalls when its whole process does.  A stop request
lets each thread finish or release its current job and return.  Logs name a
job's id, kind and error code only: payloads and messages may not be shown.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from callvault.core import jobs as core_jobs
from callvault.core.errors import CallvaultError, Conflict
from callvault.core.jobs import ClaimedJob, JobInterrupted
from callvault.core.ports import JobHandler

log = logging.getLogger("callvault.jobs")


class LeaseQueue(Protocol):
    @property
    def lease(self) -> dt.timedelta: ...

    def claim(self, worker_id: str, kinds: list[str]) -> ClaimedJob | None: ...

    def heartbeat(
        self,
        job_id: int,
        worker_id: str,
        done: int | None = None,
        total: int | None = None,
        cursor: Mapping[str, str | int] | None = None,
    ) -> bool: ...

    def complete(self, job_id: int, worker_id: str) -> bool: ...

    def fail(self, job_id: int, worker_id: str, code: str) -> bool: ...

    def release(self, job_id: int, worker_id: str) -> bool: ...


def new_worker_id() -> str:
    return f"w{os.getpid()}-{secrets.token_hex(4)}"


class _Context:
    """The JobContext port for one claimed job."""

    def __init__(
        self, queue: LeaseQueue, job: ClaimedJob, worker_id: str, stop: Callable[[], bool]
    ) -> None:
        self._queue = queue
        self._job = job
        self._worker = worker_id
        self._stop = stop
        self.lost = threading.Event()

    @property
    def job(self) -> ClaimedJob:
        return self._job

    def progress(
        self, done: int, total: int | None = None, cursor: Mapping[str, str | int] | None = None
    ) -> None:
        if self.lost.is_set() or not self._queue.heartbeat(
            self._job.id, self._worker, done, total, cursor
        ):
            self.lost.set()
            raise Conflict("the job's lease was lost to another worker")

    def stopping(self) -> bool:
        return self._stop()


class WorkerLoop:
    def __init__(
        self,
        queue: LeaseQueue,
        handlers: Mapping[str, JobHandler],
        poll_seconds: float,
        tick_seconds: float,
    ) -> None:
        self._queue = queue
        self._handlers = dict(handlers)
        self._poll = poll_seconds
        self._tick = tick_seconds
        self._count = 0
        self._count_lock = threading.Lock()
        self._wake = threading.Event()

    def run(
        self,
        *,
        concurrency: int,
        until_idle: bool,
        tick: Callable[[], None] | None,
        stop: Callable[[], bool] | None,
    ) -> int:
        should_stop = stop or (lambda: False)
        if tick is not None:
            _safe_tick(tick)
        threads = [
            threading.Thread(
                target=self._thread, args=(new_worker_id(), until_idle, should_stop), daemon=True
            )
            for _ in range(max(1, concurrency))
        ]
        for t in threads:
            t.start()
        next_tick = time.monotonic() + self._tick
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=min(self._poll, 0.2))
            if tick is not None and time.monotonic() >= next_tick and not should_stop():
                _safe_tick(tick)
                next_tick = time.monotonic() + self._tick
        return self._count

    def _thread(self, worker_id: str, until_idle: bool, stop: Callable[[], bool]) -> None:
        kinds = sorted(self._handlers)
        while not stop():
            try:
                job = self._queue.claim(worker_id, kinds)
            except CallvaultError as exc:
                log.warning("job claim failed: %s", exc.code)
                job = None
            if job is None:
                if until_idle:
                    return
                self._wake.wait(self._poll)
                continue
            self._execute(worker_id, job, stop)
            with self._count_lock:
                self._count += 1

    def _execute(self, worker_id: str, job: ClaimedJob, stop: Callable[[], bool]) -> None:
        ctx = _Context(self._queue, job, worker_id, stop)
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(ctx, worker_id, done), daemon=True)
        beat.start()
        try:
            self._handlers[job.kind](ctx)
        except JobInterrupted:
            self._queue.release(job.id, worker_id)
            log.info("job %d (%s) released on stop", job.id, job.kind)
            return
        except CallvaultError as exc:
            if not ctx.lost.is_set():
                self._queue.fail(job.id, worker_id, exc.code)
            log.warning("job %d (%s) failed: %s", job.id, job.kind, exc.code)
            return
        except Exception as exc:
            # Only the exception's type is logged: its message may quote data.
            self._queue.fail(job.id, worker_id, core_jobs.error_code("internal_error"))
            log.warning("job %d (%s) failed: %s", job.id, job.kind, type(exc).__name__)
            return
        finally:
            done.set()
            beat.join()
        if not ctx.lost.is_set():
            self._queue.complete(job.id, worker_id)

    def _heartbeat(self, ctx: _Context, worker_id: str, done: threading.Event) -> None:
        interval = max(0.05, self._queue.lease.total_seconds() / 3)
        while not done.wait(interval):
            try:
                if not self._queue.heartbeat(ctx.job.id, worker_id):
                    ctx.lost.set()
                    return
            except CallvaultError:
                continue  # the database blinked; the next beat tries again


def _safe_tick(tick: Callable[[], None]) -> None:
    try:
        tick()
    except CallvaultError as exc:
        log.warning("periodic job tick failed: %s", exc.code)
