"""``callvault retention sweep | hold | release`` (R20)."""

from __future__ import annotations

import argparse
from typing import Any

from callvault.core.access import Principal
from callvault.core.recordings import parse_recording_id
from callvault.entrypoints.cli.common import opened
from callvault.services import retention


def register(commands: Any) -> None:
    group = commands.add_parser("retention", help="retention sweep and legal holds")
    sub = group.add_subparsers(dest="retention_command", required=True, metavar="ACTION")
    s = sub.add_parser("sweep", help="crypto-shred every unheld recording whose time is up")
    s.add_argument("--dry-run", action="store_true", help="count what is due; change nothing")
    s.add_argument("--limit", type=int, help="shred at most this many recordings")
    s.add_argument(
        "--rotate",
        action="store_true",
        help="after destroying a bucket KEK, rotate the root keys so old backups cannot open it",
    )
    s.set_defaults(handler=cmd_sweep)
    for name, helptext, handler in (
        ("hold", "put a recording on legal hold", cmd_hold),
        ("release", "release a recording's legal hold", cmd_release),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("recording_id")
        p.add_argument("--reference", required=True, help="case or decision reference")
        p.set_defaults(handler=handler)


def cmd_sweep(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        r = retention.sweep(
            vault, principal, dry_run=args.dry_run, limit=args.limit, rotate=args.rotate
        )
    due = ", ".join(f"{k} {n}" for k, n in r.due.items()) or "none"
    print(f"due: {due}; on legal hold (kept): {r.held}")
    if r.dry_run:
        print("dry run: nothing changed")
        return 0
    shredded = ", ".join(f"{k} {n}" for k, n in r.shredded.items()) or "none"
    print(f"shredded: {shredded}; objects deleted: {r.objects_deleted}")
    if r.buckets_destroyed:
        print(f"bucket KEKs destroyed: {', '.join(r.buckets_destroyed)}")
        if r.roots_retired:
            print(f"root versions retired: {', '.join(map(str, r.roots_retired))}")
        else:
            print("run `callvault keys rotate` so old database backups cannot open them either")
    if not r.complete:
        print("stopped at --limit; run again to continue")
    return 0


def cmd_hold(args: argparse.Namespace, principal: Principal) -> int:
    recording_id = parse_recording_id(args.recording_id)
    with opened(args) as vault:
        h = retention.hold(vault, principal, recording_id, args.reference)
    print(f"{h.recording_id} on legal hold ({h.reference})")
    return 0


def cmd_release(args: argparse.Namespace, principal: Principal) -> int:
    recording_id = parse_recording_id(args.recording_id)
    with opened(args) as vault:
        h = retention.release(vault, principal, recording_id, args.reference)
    print(f"{h.recording_id} released from legal hold ({h.reference})")
    return 0
