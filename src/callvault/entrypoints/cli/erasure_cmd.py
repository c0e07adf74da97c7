"""``callvault erasure plan | erase``: a caller's right to erasure (GDPR Art. 17, R21)."""

from __future__ import annotations

import argparse
from typing import Any

from callvault.core.access import Principal
from callvault.entrypoints.cli.common import opened
from callvault.services.erasure import ErasureReport, erase_by_caller

_WHY = {
    "erasable": "may be erased now",
    "due": "retention passed: may be erased now",
    "legal_hold": "kept: on legal hold",
    "record_document_duty": "kept: record document, ten-year duty (needs --decision)",
}


def register(commands: Any) -> None:
    group = commands.add_parser("erasure", help="erase a caller's recordings on request")
    sub = group.add_subparsers(dest="erasure_command", required=True, metavar="ACTION")
    for name, helptext, handler in (
        ("plan", "what matches and what may be erased; changes nothing", cmd_plan),
        ("erase", "erase what may be erased and report the rest", cmd_erase),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--caller", help="the caller's phone number")
        p.add_argument("--personnummer", help="the caller's personnummer")
        p.add_argument("--reason", required=True, help="why (e.g. the request's reference)")
        p.add_argument("--decision", help="decision reference allowing early record deletion")
        p.set_defaults(handler=handler)


def _render(report: ErasureReport) -> None:
    for item in report.items:
        keep = f" until {item.keep_until:%Y-%m-%d}" if item.keep_until else ""
        erased = " -> erased" if item.recording_id in report.erased else ""
        print(
            f"{item.recording_id}  {item.started_at:%Y-%m-%d}  {item.care_unit:<16} "
            f"{item.retention_class}{keep}: {_WHY[item.verdict]}{erased}"
        )
    kept = sum(1 for i in report.items if not i.eligible)
    print(f"{len(report.items)} matching, {len(report.erased)} erased, {kept} kept")


def _run(args: argparse.Namespace, principal: Principal, dry_run: bool) -> int:
    with opened(args) as vault:
        report = erase_by_caller(
            vault,
            principal,
            caller=args.caller,
            personnummer=args.personnummer,
            reason=args.reason,
            decision=args.decision,
            dry_run=dry_run,
        )
    _render(report)
    return 0


def cmd_plan(args: argparse.Namespace, principal: Principal) -> int:
    return _run(args, principal, True)


def cmd_erase(args: argparse.Namespace, principal: Principal) -> int:
    return _run(args, principal, False)
