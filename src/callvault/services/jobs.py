"""Background jobs: queueing them, listing them, and what each kind does.

Every kind is idempotent: run twice (or re-run after its worker was killed)
it ends in the same state, because each step is a conditional write or a
read.  Jobs that touch one recording take that recording's lock.  Job kinds
whose effect is vault-wide take a lock of their own name, so two of a kind
never run at once.  The periodic ``tick`` recovers stalled jobs and queues
scheduled ones (scrub daily, sweep hourly by default), once per slot however
many workers tick.

The legacy import plugs in through ``handlers(..., extra={"import_chunk": fn})``;
no import handler is registered by default, so its jobs wait for a worker
that has one (docs/jobs.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from callvault.core.access import Operation, Principal
from callvault.core.errors import InvalidInput
from callvault.core.jobs import JobInfo, JobState, Schedule, parse_kind
from callvault.core.ports import JobContext, JobHandler
from callvault.services import jobs_kinds
from callvault.services.context import Vault
from callvault.services.guard import authorise
from callvault.services.jobs_kinds import queue_of, submit

# Queueing and running jobs changes the vault: the local operator only.
MANAGE = Operation.VAULT_MANAGE
# Seeing jobs (kinds, states, counts, error codes; no payloads over HTTP):
# administrators and the local operator.
VIEW = Operation.JOB_VIEW


def enqueue(
    vault: Vault, principal: Principal, kind: str, payload: Mapping[str, str | int] | None = None
) -> int | None:
    """Queue one job by hand; its id, or None if one of that kind is already queued."""
    authorise(vault, principal, MANAGE, None)
    return submit(vault, parse_kind(kind), payload or {})


@dataclass(frozen=True)
class JobList:
    jobs: list[JobInfo]
    queued: int
    running: int
    failed: int


def list_jobs(
    vault: Vault, principal: Principal, *, state: str | None = None, limit: int = 50
) -> JobList:
    authorise(vault, principal, VIEW, None)
    queue = queue_of(vault)
    wanted = None if state is None else _state(state)
    shown = queue.jobs(state=wanted, limit=limit)
    counts = {s: len(queue.jobs(state=s, limit=1000)) for s in JobState}
    return JobList(
        shown, counts[JobState.QUEUED], counts[JobState.RUNNING], counts[JobState.FAILED]
    )


def _state(text: str) -> JobState:
    try:
        return JobState(text)
    except ValueError:
        raise InvalidInput(
            "unknown job state (one of: " + ", ".join(s.value for s in JobState) + ")"
        ) from None


def job_status(vault: Vault, principal: Principal, job_id: int) -> JobInfo | None:
    authorise(vault, principal, VIEW, None)
    return queue_of(vault).job(job_id)


def handlers(
    vault: Vault, principal: Principal, extra: Mapping[str, JobHandler] | None = None
) -> dict[str, JobHandler]:
    """What a worker runs, each kind bound to the vault and the worker's principal."""

    def bind(fn: jobs_kinds.KindFn) -> JobHandler:
        def run(ctx: JobContext) -> None:
            fn(vault, principal, ctx)

        return run

    table: dict[str, JobHandler] = {kind.value: bind(fn) for kind, fn in jobs_kinds.KINDS.items()}
    table.update(extra or {})
    return table


def tick(vault: Vault, schedules: list[Schedule]) -> int:
    """Recover stalled jobs, then queue each schedule's job once per slot; jobs queued."""
    queue = queue_of(vault)
    queue.recover_stalled()
    queued = 0
    now = vault.now()
    for schedule in schedules:
        if queue.mark_slot(schedule.kind.value, schedule.slot(now)):
            queued += submit(vault, schedule.kind, {}) is not None
    return queued


def init_queue(vault: Vault, principal: Principal) -> None:
    """Create the queue backend's own schema (procrastinate's, on PostgreSQL)."""
    authorise(vault, principal, MANAGE, None)
    queue_of(vault).init_schema()


def run_worker(
    vault: Vault,
    principal: Principal,
    schedules: list[Schedule],
    *,
    concurrency: int = 1,
    until_idle: bool = False,
    stop: jobs_kinds.StopFn | None = None,
    extra: Mapping[str, JobHandler] | None = None,
) -> int:
    """Run jobs until ``stop()`` (or, with ``until_idle``, until none is ready)."""
    if concurrency < 1 or concurrency > 64:
        raise InvalidInput("concurrency must be 1 to 64")
    authorise(vault, principal, MANAGE, None)
    return queue_of(vault).run(
        handlers(vault, principal, extra),
        concurrency=concurrency,
        until_idle=until_idle,
        tick=lambda: _tick(vault, schedules),
        stop=stop,
    )


def _tick(vault: Vault, schedules: list[Schedule]) -> None:
    tick(vault, schedules)
