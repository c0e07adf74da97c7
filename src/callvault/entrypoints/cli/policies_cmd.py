"""``callvault policies set | retire | list``: recording policies (R19)."""

from __future__ import annotations

import argparse
from typing import Any

from callvault.core.access import Principal
from callvault.core.retention import POLICY_CLASSES, RecordingPolicy
from callvault.entrypoints.cli.common import opened
from callvault.services import policies


def register(commands: Any) -> None:
    group = commands.add_parser("policies", help="recording policies: purpose before recording")
    sub = group.add_subparsers(dest="policies_command", required=True, metavar="ACTION")
    p = sub.add_parser("set", help="create or replace the policy of care units and a class")
    p.add_argument("--care-unit", action="append", required=True, help="repeat for several")
    p.add_argument("--class", dest="retention_class", required=True, choices=POLICY_CLASSES)
    p.add_argument("--purpose", required=True, help="why calls are recorded")
    p.add_argument("--legal-basis", required=True, help="the legal basis for recording")
    p.add_argument(
        "--keep-days",
        type=int,
        help="days kept after the call (record: at least 3653, the default; quality: 30)",
    )
    p.set_defaults(handler=cmd_set)
    r = sub.add_parser("retire", help="deactivate a policy: ingest for it is refused")
    r.add_argument("--care-unit", required=True)
    r.add_argument("--class", dest="retention_class", required=True, choices=POLICY_CLASSES)
    r.set_defaults(handler=cmd_retire)
    sub.add_parser("list", help="every policy").set_defaults(handler=cmd_list)


def _line(p: RecordingPolicy) -> str:
    state = "active" if p.active else "retired"
    doc = "record document" if p.record_document else "not a record document"
    return (
        f"{p.care_unit}/{p.retention_class}: {state}, keep {p.keep_days} days, {doc}; "
        f"purpose: {p.purpose}; legal basis: {p.legal_basis} "
        f"(changed {p.changed_at:%Y-%m-%d %H:%M}Z by {p.changed_by})"
    )


def cmd_set(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        for unit in args.care_unit:
            policy = policies.set_policy(
                vault,
                principal,
                care_unit=unit,
                retention_class=args.retention_class,
                purpose=args.purpose,
                legal_basis=args.legal_basis,
                keep_days=args.keep_days,
            )
            print(_line(policy))
    return 0


def cmd_retire(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        policy = policies.retire_policy(
            vault, principal, care_unit=args.care_unit, retention_class=args.retention_class
        )
    print(_line(policy))
    return 0


def cmd_list(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        rows = policies.list_policies(vault, principal)
    for policy in rows:
        print(_line(policy))
    if not rows:
        print("no recording policies: ingest is refused until one is set")
    return 0
