"""``callvault jobs list | status | enqueue | init``: background jobs (docs/jobs.md)."""

from __future__ import annotations

import argparse
from typing import Any

from callvault.core.access import Principal
from callvault.core.jobs import JobInfo, JobKind
from callvault.entrypoints.cli.common import opened
from callvault.services import jobs


def register(commands: Any) -> None:
    group = commands.add_parser("jobs", help="background jobs: list, status, enqueue")
    sub = group.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    ls = sub.add_parser("list", help="recent jobs with progress, attempts and last error")
    ls.add_argument("--state", help="queued, running, done or failed")
    ls.add_argument("--limit", type=int, default=30)
    ls.set_defaults(handler=cmd_list)
    st = sub.add_parser("status", help="one job")
    st.add_argument("job_id", type=int)
    st.set_defaults(handler=cmd_status)
    en = sub.add_parser("enqueue", help="queue a job now")
    en.add_argument("kind", help=", ".join(k.value for k in JobKind))
    en.add_argument("--recording", help="recording id (peaks_recording)")
    en.add_argument("--parts", type=int, help="id ranges a scrub is split into (default 16)")
    en.set_defaults(handler=cmd_enqueue)
    sub.add_parser(
        "init", help="create the job queue's own schema (procrastinate on PostgreSQL)"
    ).set_defaults(handler=cmd_init)


def _row(j: JobInfo) -> str:
    total = "?" if j.progress_total is None else str(j.progress_total)
    return (
        f"{j.id:>6} {j.kind:<16} {j.state.value:<8} {j.progress_done:>8}/{total:<8} "
        f"{j.attempts}/{j.max_attempts:<3} {j.last_error or '-':<16} "
        f"{j.updated_at:%Y-%m-%d %H:%M:%S}"
    )


_HEADER = (
    f"{'id':>6} {'kind':<16} {'state':<8} {'done/total':>17} {'tries':<5} "
    f"{'last error':<16} updated (UTC)"
)


def cmd_list(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        result = jobs.list_jobs(vault, principal, state=args.state, limit=args.limit)
    print(f"queued {result.queued}, running {result.running}, failed {result.failed}")
    print(_HEADER)
    for j in result.jobs:
        print(_row(j))
    return 0


def cmd_status(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        info = jobs.job_status(vault, principal, args.job_id)
    if info is None:
        print(f"no job {args.job_id}")
        return 1
    print(_HEADER)
    print(_row(info))
    return 0


def cmd_enqueue(args: argparse.Namespace, principal: Principal) -> int:
    payload: dict[str, str | int] = {}
    if args.recording is not None:
        payload["recording_id"] = args.recording
    if args.parts is not None:
        payload["parts"] = args.parts
    with opened(args) as vault:
        job_id = jobs.enqueue(vault, principal, args.kind, payload)
    if job_id is None:
        print(f"a {args.kind} job is already queued")
    else:
        print(f"queued job {job_id} ({args.kind})")
    return 0


def cmd_init(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        jobs.init_queue(vault, principal)
    print("job queue schema ready")
    return 0
