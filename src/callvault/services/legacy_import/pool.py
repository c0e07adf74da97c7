"""Worker processes: decoding and encrypting are CPU bound, so one process per core.

Each worker opens the vault once (its own database connection, blob store
and key provider) through a picklable ``opener`` and its own descriptor on
the shared journal.  SQLite writers from several processes are serialised
by the store itself (``BEGIN IMMEDIATE`` with a busy timeout, WAL), and each
ingest commits in its own transactions, so no write is lost or doubled.

Only a bounded window of tasks is in flight, so a source of millions of
files never sits in the executor's queue at once.  A worker that dies (a
decoder crash, the OOM killer) fails only the files it held, which a re-run
retries; the rest go on in a fresh pool.
"""

from __future__ import annotations

import collections
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from callvault.core.access import Principal
from callvault.core.errors import CallvaultError
from callvault.services.context import Vault
from callvault.services.legacy_import.journal import Journal
from callvault.services.legacy_import.worker import FAILED, Job, Result, Task, process

Opener = Callable[[], Vault]

_IN_FLIGHT_PER_WORKER = 4
_worker: dict[str, object] = {}


def run(
    tasks: Iterable[Task],
    *,
    workers: int,
    opener: Opener | None,
    vault: Vault,
    principal: Principal,
    job: Job,
) -> Iterator[Result]:
    """Results of every task, in completion order.  ``workers == 0`` runs them
    here on ``vault`` (for tests and tiny imports)."""
    if workers <= 0 or opener is None:
        with Journal(job.journal_path) as journal:
            for task in tasks:
                yield process(vault, principal, job, journal, task)
        return
    pending = _Apart(iter(tasks))
    while True:
        crashed: list[Task] = []
        produced = 0
        for result in _pool(pending, workers, opener, principal, job, crashed):
            produced += 1
            yield result
        if not crashed:
            return
        if produced == 0:
            # Not one file went through: the workers cannot start (or open the
            # vault), and trying pool after pool would only repeat that.
            raise CallvaultError("the import's worker processes could not start")
        for task in crashed:
            yield Result(
                task.file.index, task.key, FAILED, "worker_crashed", "a worker process died", 0
            )


def _pool(
    pending: _Apart,
    workers: int,
    opener: Opener,
    principal: Principal,
    job: Job,
    crashed: list[Task],
) -> Iterator[Result]:
    context = multiprocessing.get_context("spawn")
    window = workers * _IN_FLIGHT_PER_WORKER
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start, initargs=(opener, principal, job)
    ) as pool:
        flying: dict[Future[Result], Task] = {}
        while True:
            while len(flying) < window:
                # Web files have no size yet; their call ids keep them apart.
                task = pending.take({t.file.size for t in flying.values()} - {None})
                if task is None:
                    break
                flying[pool.submit(_run, task)] = task
            if not flying:
                return
            done, _ = wait(flying, return_when=FIRST_COMPLETED)
            for future in done:
                task = flying.pop(future)
                try:
                    yield future.result()
                except BrokenProcessPool:
                    crashed.append(task)
            if crashed:
                crashed.extend(flying.values())
                return


class _Apart:
    """Hands out tasks so that no two files of the same size are in flight at once.

    Only files of the same size can have the same content, and two workers
    ingesting the same content at the same moment would race for one record
    (the loser retries, but its stored object would be wasted).  Holding back
    a same-size file until the other is done avoids the race; a bounded
    number are held, beyond which a task goes out anyway.
    """

    _MAX_HELD = 1024

    def __init__(self, tasks: Iterator[Task]) -> None:
        self._tasks = tasks
        self._held: collections.deque[Task] = collections.deque()

    def take(self, busy: set[int | None]) -> Task | None:
        """The next task whose size is not ``busy``; None if none can go now."""
        for _ in range(len(self._held)):
            task = self._held.popleft()
            if task.file.size not in busy:
                return task
            self._held.append(task)
        for task in self._tasks:
            if task.file.size not in busy or len(self._held) >= self._MAX_HELD:
                return task
            self._held.append(task)
        return None  # all held back behind busy sizes: ask again when one is done


def _start(opener: Opener, principal: Principal, job: Job) -> None:
    _worker["vault"] = opener()
    _worker["principal"] = principal
    _worker["job"] = job
    _worker["journal"] = Journal(job.journal_path)


def _run(task: Task) -> Result:
    vault = _worker["vault"]
    principal = _worker["principal"]
    job = _worker["job"]
    journal = _worker["journal"]
    assert isinstance(vault, Vault) and isinstance(principal, Principal)
    assert isinstance(job, Job) and isinstance(journal, Journal)
    return process(vault, principal, job, journal, task)
