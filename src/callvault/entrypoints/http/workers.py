"""Several server processes on one listening socket (``callvault serve --workers N``).

One Python process serves on one core.  The API keeps no state between
requests that the database does not hold (sessions, grants and the audit
log all live there; the play cache only remembers for a second), so N
processes serve like N API nodes.  The parent binds the socket and forks;
each worker opens the vault itself after the fork, so no database
connection, HSM session or key handle is ever shared across processes
(none of those survive a fork safely), and the parent holds no key at all.

A worker that dies while serving is replaced.  One that dies within
:data:`STARTUP_GRACE` seconds of starting (a wrong passphrase, a vault it
cannot open) stops the whole service with its exit code: restarting it
would only fail again, forever.  SIGINT and SIGTERM are passed on to the
workers, which finish their requests and seal the audit log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("callvault.http")

STARTUP_GRACE = 5.0
MAX_WORKERS = 64


def supervise(serve_one: Callable[[], int], workers: int) -> int:
    """Run ``serve_one`` in ``workers`` forked processes until SIGINT/SIGTERM.

    Returns 0 after an orderly stop, or the exit code of a worker that
    could not start.
    """
    started: dict[int, float] = {}
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in started:
            _signal(pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for _ in range(workers):
            started[_fork(serve_one)] = time.monotonic()
        failure = 0
        while started:
            pid, status = _wait()
            if pid not in started:
                continue
            began = started.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if stopping:
                continue
            if time.monotonic() - began < STARTUP_GRACE:
                log.error("worker %d could not start (exit %d); stopping the service", pid, code)
                failure = code if code > 0 else 1
                stop(signal.SIGTERM, None)
                continue
            log.error("worker %d exited (%d); starting another", pid, code)
            started[_fork(serve_one)] = time.monotonic()
        return failure
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _fork(serve_one: Callable[[], int]) -> int:
    pid = os.fork()
    if pid:
        return pid
    # The worker: default signal handling until its server installs its own.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    code = 1
    try:
        code = serve_one()
    finally:
        logging.shutdown()
        os._exit(code)


def _wait() -> tuple[int, int]:
    while True:
        try:
            return os.wait()
        except InterruptedError:
            continue


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
