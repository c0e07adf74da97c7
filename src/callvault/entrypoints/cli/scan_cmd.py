"""``callvault scan TARGET…``: look for exposed recordings on your own servers (R25).

Exit codes: 0 nothing found, 1 findings, 2 a target could not be scanned
(fully) or the command line was wrong.  See docs/scanner.md.
"""

from __future__ import annotations

import argparse
from typing import Any

from callvault.core.access import Principal
from callvault.core.errors import InvalidInput
from callvault.services.exposure.ports import Limits, Tools
from callvault.services.exposure.report import render_json, render_results
from callvault.services.exposure.scan import scan

_DEFAULTS = Limits()


def register(commands: Any) -> None:
    p = commands.add_parser(
        "scan",
        help="check your own web server, folder or S3 bucket for exposed recordings",
        description="Targets: http(s)://host[:port]/path, s3://bucket[/prefix]?endpoint=URL, "
        "or a local folder.  Exit 0 clean, 1 findings, 2 could not scan.",
    )
    p.add_argument("targets", nargs="+", metavar="TARGET")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--max-requests",
        type=int,
        default=_DEFAULTS.max_requests,
        help=f"requests (or files) per target (default {_DEFAULTS.max_requests})",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=_DEFAULTS.rate,
        help=f"requests per second (default {_DEFAULTS.rate:g})",
    )
    p.add_argument(
        "--max-depth",
        type=int,
        default=_DEFAULTS.max_depth,
        help=f"folder levels to follow (default {_DEFAULTS.max_depth})",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    p.add_argument("--cafile", help="verify TLS certificates against this CA file")
    p.set_defaults(handler=cmd_scan)


def _tools(args: argparse.Namespace) -> Tools:
    if not 0 < args.timeout <= 300:
        raise InvalidInput("--timeout must be above 0 and at most 300 seconds")
    # The scanner needs no vault, only an HTTP client and the audio sniffer.
    app = args.app
    return Tools(http=app.http_probe(args.timeout, args.cafile), sniff=app.audio_sniffer())


def cmd_scan(args: argparse.Namespace, principal: Principal) -> int:
    limits = Limits(max_requests=args.max_requests, rate=args.rate, max_depth=args.max_depth)
    tools = _tools(args)
    report = scan(args.targets, limits, tools)
    if args.json:
        print(render_json(report.as_dict()))
    else:
        print(render_results(report.results, report.exit_code))
    return report.exit_code
