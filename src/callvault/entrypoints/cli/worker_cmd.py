"""``callvault worker``: run background jobs until SIGTERM (docs/jobs.md)."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from callvault.core.access import Principal
from callvault.core.jobs import schedules
from callvault.entrypoints.cli.common import opened
from callvault.services import jobs


def register(commands: Any) -> None:
    p = commands.add_parser("worker", help="run background jobs until stopped (SIGTERM)")
    p.add_argument("--concurrency", type=int, default=1, help="jobs run at once (default 1)")
    p.add_argument(
        "--until-idle", action="store_true", help="stop once no job is ready (no schedules)"
    )
    p.set_defaults(handler=cmd_worker)


def cmd_worker(args: argparse.Namespace, principal: Principal) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()  # each thread finishes or releases its job, then the worker exits

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    settings = args.app.settings
    plan = (
        [] if args.until_idle else schedules(settings.jobs_scrub_hours, settings.jobs_sweep_minutes)
    )
    with opened(args) as vault:
        count = jobs.run_worker(
            vault,
            principal,
            plan,
            concurrency=args.concurrency,
            until_idle=args.until_idle,
            stop=stop.is_set,
        )
    print(f"worker stopped after {count} jobs")
    return 0
