"""``callvault review run | list | resolve | report``: the systematic log review (R17)."""

from __future__ import annotations

import argparse
from typing import Any

from callvault.core.access import Principal
from callvault.core.rows import ReviewItemRow
from callvault.entrypoints.cli.common import opened
from callvault.services import review
from callvault.services.review import Period
from callvault.services.review_rules import ReviewRules


def register(commands: Any) -> None:
    group = commands.add_parser("review", help="systematic review of the access log")
    sub = group.add_subparsers(dest="review_command", required=True, metavar="ACTION")
    r = sub.add_parser("run", help="apply the review rules to a period; queue items")
    r.add_argument("--period", required=True, help="YYYY-MM, YYYY-MM-DD or FROM..TO (UTC)")
    r.add_argument(
        "--sample",
        type=float,
        default=ReviewRules.sample_share,
        help="share of accesses drawn at random (0-1)",
    )
    r.add_argument(
        "--max-plays",
        type=int,
        default=ReviewRules.max_plays_per_day,
        help="plays per user and day above which to review",
    )
    r.add_argument(
        "--max-users",
        type=int,
        default=ReviewRules.max_users_per_recording,
        help="users per recording above which to review",
    )
    r.set_defaults(handler=cmd_run)
    ls = sub.add_parser("list", help="review items, oldest first")
    ls.add_argument("--all", action="store_true", help="resolved ones too")
    ls.add_argument("--period", help="only items queued in this period")
    ls.set_defaults(handler=cmd_list)
    s = sub.add_parser("resolve", help="record an item's outcome")
    s.add_argument("item", type=int)
    s.add_argument("--outcome", required=True, choices=review.OUTCOMES)
    s.add_argument("--comment", help="what was found (no personal identifiers)")
    s.set_defaults(handler=cmd_resolve)
    m = sub.add_parser("report", help="what was reviewed and found in a period")
    m.add_argument("--period", required=True, help="YYYY-MM (or days, as for run)")
    m.set_defaults(handler=cmd_report)  # fmt: skip


def _line(i: ReviewItemRow) -> str:
    state = f"{i.outcome} by {i.resolved_by}" if i.resolved_at else "open"
    comment = f" {i.comment!r}" if i.comment else ""
    return (
        f"#{i.id:<6} {i.created_at:%Y-%m-%d %H:%M} {i.kind:<16} {i.actor:<16} "
        f"seq={i.audit_seq if i.audit_seq is not None else '-'} "
        f"{i.recording_id or '-'} {state}{comment}"
    )


def cmd_run(args: argparse.Namespace, principal: Principal) -> int:
    period = Period.parse(args.period)
    rules = ReviewRules(
        sample_share=args.sample,
        max_plays_per_day=args.max_plays,
        max_users_per_recording=args.max_users,
    )
    with opened(args) as vault:
        run = review.run_review(vault, principal, period=period, rules=rules)
    found = ", ".join(f"{kind}={n}" for kind, n in run.found.items())
    print(f"{period.label}: {run.examined} accesses examined; {found}; {run.added} new items")
    return 0


def cmd_list(args: argparse.Namespace, principal: Principal) -> int:
    period = Period.parse(args.period) if args.period else None
    with opened(args) as vault:
        items = review.list_items(vault, principal, open_only=not args.all, period=period)
    for item in items:
        print(_line(item))
    print(f"{len(items)} items")
    return 0


def cmd_resolve(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        review.resolve(vault, principal, args.item, args.outcome, args.comment)
    print(f"#{args.item}: {args.outcome}")
    return 0


def cmd_report(args: argparse.Namespace, principal: Principal) -> int:
    period = Period.parse(args.period)
    with opened(args) as vault:
        monthly = review.report(vault, principal, period=period)
    print(f"log review {period.label}")
    for kind, n in sorted(monthly.by_kind.items()):
        print(f"  queued {kind:<18} {n}")
    for outcome, n in sorted(monthly.by_outcome.items()):
        print(f"  outcome {outcome:<17} {n}")
    print(f"  still open {monthly.open_items}")
    for item in monthly.incidents:
        print("  incident " + _line(item))
    return 0
