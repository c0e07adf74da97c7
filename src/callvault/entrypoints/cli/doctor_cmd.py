"""``callvault doctor``: check this vault's own deployment.

Exit codes: 0 all good, 1 findings, 2 a check could not be done.  See docs/doctor.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from callvault.core.access import Principal
from callvault.entrypoints.cli.common import opened
from callvault.services.exposure import doctor
from callvault.services.exposure.deployment import Deployment
from callvault.services.exposure.report import render_json, render_results


def register(commands: Any) -> None:
    p = commands.add_parser(
        "doctor",
        help="check this vault's deployment: stray audio, keys, TLS, accounts, log, backups",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=cmd_doctor)


def cmd_doctor(args: argparse.Namespace, principal: Principal) -> int:
    report = doctor.run(
        Deployment.from_settings(args.app.settings),
        lambda: opened(args),
        principal,
        args.app.audio_sniffer(),
        dt.datetime.now(dt.UTC),
    )
    if args.json:
        print(render_json(report.as_dict()))
    else:
        print(render_results(report.results, report.exit_code, what="check"))
    return report.exit_code
