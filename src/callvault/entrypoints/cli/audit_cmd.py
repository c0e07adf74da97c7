"""``callvault audit verify | tail | checkpoint``."""

from __future__ import annotations

import argparse
from typing import Any

from callvault.core.access import Principal
from callvault.entrypoints.cli import privacy_cmd
from callvault.entrypoints.cli.common import opened
from callvault.services import audit


def register(commands: Any) -> None:
    p = commands.add_parser("audit", help="the tamper-evident access log")
    sub = p.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    sub.add_parser(
        "verify", help="recompute the Merkle tree, check signed checkpoints"
    ).set_defaults(handler=cmd_verify)
    t = sub.add_parser("tail", help="the newest entries")
    t.add_argument("-n", type=int, default=20)
    t.set_defaults(handler=cmd_tail)
    sub.add_parser("checkpoint", help="sign the current tree head").set_defaults(
        handler=cmd_checkpoint
    )
    privacy_cmd.register_verify(sub)  # a patient's log extract, offline (R18)


def cmd_verify(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        report = audit.verify(vault, principal)
    print(f"entries: {report.size}; checkpoints checked: {report.checkpoints_checked}")
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    print("OK" if report.ok else "FAILED")
    return 0 if report.ok else 1


def cmd_tail(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        entries = audit.tail(vault, principal, args.n)
    for entry in entries:
        e = entry.event
        print(
            f"{entry.seq:>8} {e.time.strftime('%Y-%m-%dT%H:%M:%SZ')} {e.actor:<12} {e.role:<9} "
            f"{e.action:<20} {e.outcome:<8} {e.recording_id or '-'}"
            + (f" reason={e.reason!r}" if e.reason else "")
        )
    return 0


def cmd_checkpoint(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        note = audit.checkpoint(vault, principal)
    print(note, end="")
    return 0
