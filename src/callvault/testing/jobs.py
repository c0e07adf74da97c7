"""Conformance suite that every :class:`~callvault.core.ports.JobQueue` must pass.

A backend's test class inherits :class:`JobQueueConformance` and provides two
fixtures: ``make_queue(retry) -> queue`` and ``abandon(queue, kind) -> job id``,
which leaves one job of ``kind`` held by a worker that died (its lease or
heartbeat already stale), so that ``recover_stalled`` must give it back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from callvault.core.errors import Conflict, InvalidInput
from callvault.core.jobs import JobKind, JobState, RetryPolicy
from callvault.core.ports import JobContext

QueueFactory = Callable[[RetryPolicy], Any]
KIND = JobKind.SCRUB_RANGE.value
OTHER = JobKind.PEAKS_RECORDING.value
ID_A = "00000000-0000-4000-8000-00000000000a"
ID_B = "00000000-0000-4000-8000-00000000000b"
FAST = RetryPolicy(max_attempts=3, base_seconds=0.0)


class JobQueueConformance:
    def test_enqueued_job_runs_once_with_its_payload_and_progress(
        self, make_queue: QueueFactory
    ) -> None:
        q = make_queue(FAST)
        seen: list[dict[str, str | int]] = []

        def handler(ctx: JobContext) -> None:
            seen.append(dict(ctx.job.payload))
            ctx.progress(1, 2)
            ctx.progress(2, 2)

        job_id = q.enqueue(KIND, {"lo": ID_A, "hi": ID_B})
        assert job_id is not None
        assert q.job(job_id).state is JobState.QUEUED
        assert q.run({KIND: handler}, until_idle=True) == 1
        info = q.job(job_id)
        assert seen == [{"lo": ID_A, "hi": ID_B}]
        assert (info.state, info.attempts, info.progress_done, info.progress_total) == (
            JobState.DONE, 1, 2, 2,
        )  # fmt: skip
        assert [j.id for j in q.jobs(state=JobState.DONE)] == [job_id]

    def test_payload_with_personal_data_is_refused_and_nothing_queued(
        self, make_queue: QueueFactory
    ) -> None:
        """Payloads carry ids and counters only: no phone number can be queued."""
        q = make_queue(FAST)
        for bad in ({"caller": "+46701234567"}, {"recording_id": "0701234567"}, {"done": -1}):
            with pytest.raises(InvalidInput):
                q.enqueue(KIND, bad)
        with pytest.raises(InvalidInput):
            q.enqueue("no_such_kind", {})
        assert q.jobs() == []

    def test_queueing_lock_keeps_one_queued_job_per_key(self, make_queue: QueueFactory) -> None:
        q = make_queue(FAST)
        first = q.enqueue(KIND, {}, queueing_lock="scrub")
        assert first is not None
        assert q.enqueue(KIND, {}, queueing_lock="scrub") is None
        q.run({KIND: lambda ctx: None}, until_idle=True)
        assert q.enqueue(KIND, {}, queueing_lock="scrub") is not None

    def test_failing_job_is_retried_until_it_succeeds(self, make_queue: QueueFactory) -> None:
        q = make_queue(FAST)
        calls: list[int] = []

        def flaky(ctx: JobContext) -> None:
            calls.append(ctx.job.attempt)
            if len(calls) < 3:
                raise Conflict("not yet")

        job_id = q.enqueue(KIND, {})
        q.run({KIND: flaky}, until_idle=True)
        info = q.job(job_id)
        assert calls == [1, 2, 3]
        assert (info.state, info.attempts) == (JobState.DONE, 3)

    def test_job_failing_every_attempt_ends_failed_with_its_error_code(
        self, make_queue: QueueFactory
    ) -> None:
        q = make_queue(FAST)

        def broken(ctx: JobContext) -> None:
            raise Conflict("the message is never kept: 070-123 45 67")

        job_id = q.enqueue(KIND, {})
        q.run({KIND: broken}, until_idle=True)
        info = q.job(job_id)
        assert (info.state, info.attempts, info.last_error) == (JobState.FAILED, 3, "conflict")

    def test_retry_resumes_from_the_saved_cursor(self, make_queue: QueueFactory) -> None:
        q = make_queue(FAST)
        cursors: list[dict[str, str | int]] = []

        def resumable(ctx: JobContext) -> None:
            cursors.append(dict(ctx.job.cursor))
            if not ctx.job.cursor:
                ctx.progress(5, 10, {"after": ID_A, "done": 5})
                raise Conflict("interrupted half-way")
            ctx.progress(10, 10, {"after": ID_B, "done": 10})

        job_id = q.enqueue(KIND, {})
        q.run({KIND: resumable}, until_idle=True)
        assert cursors == [{}, {"after": ID_A, "done": 5}]
        assert q.job(job_id).state is JobState.DONE

    def test_jobs_with_one_lock_never_run_at_the_same_time(self, make_queue: QueueFactory) -> None:
        """Per-recording locks: two jobs on one recording run one after the other."""
        q = make_queue(FAST)
        spans: list[tuple[float, float]] = []
        guard = threading.Lock()

        def slow(ctx: JobContext) -> None:
            start = time.monotonic()
            time.sleep(0.4)
            with guard:
                spans.append((start, time.monotonic()))

        lock = f"recording:{ID_A}"
        ids = [q.enqueue(OTHER, {"recording_id": ID_A}, lock=lock) for _ in range(2)]
        for _ in range(5):  # a worker may stop while the second job still waits for the lock
            q.run({OTHER: slow}, concurrency=2, until_idle=True)
            if all(q.job(i).state is JobState.DONE for i in ids):
                break
        assert all(q.job(i).state is JobState.DONE for i in ids)
        (_, first_end), (second_start, _) = sorted(spans)
        assert second_start >= first_end, "two jobs holding one lock overlapped"

    def test_job_of_a_dead_worker_is_recovered_and_finished_by_another(
        self, make_queue: QueueFactory, abandon: Callable[[Any, str], int]
    ) -> None:
        q = make_queue(FAST)
        job_id = abandon(q, KIND)
        assert q.job(job_id).state is JobState.RUNNING
        assert q.recover_stalled() == 1
        assert q.recover_stalled() == 0
        ran: list[int] = []
        q.run({KIND: lambda ctx: ran.append(ctx.job.id)}, until_idle=True)
        assert ran == [job_id]
        assert q.job(job_id).state is JobState.DONE

    def test_periodic_slot_is_claimed_exactly_once(self, make_queue: QueueFactory) -> None:
        q = make_queue(FAST)
        assert q.mark_slot("scrub", 100) is True
        assert q.mark_slot("scrub", 100) is False
        assert q.mark_slot("scrub", 99) is False
        assert q.mark_slot("sweep", 100) is True
        assert q.mark_slot("scrub", 101) is True
        results: list[bool] = []
        threads = [
            threading.Thread(target=lambda: results.append(q.mark_slot("scrub", 102)))
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [False, False, False, True]
