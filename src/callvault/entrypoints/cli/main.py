"""The ``callvault`` command: parse, call one service, render; errors mapped here only."""

from __future__ import annotations

import argparse
import os
import pwd
import sys
from collections.abc import Sequence

from callvault.core.access import OPERATOR, Principal
from callvault.core.errors import CallvaultError
from callvault.entrypoints.cli import (
    audit_cmd,
    doctor_cmd,
    erasure_cmd,
    import_cmd,
    jobs_cmd,
    keys_cmd,
    policies_cmd,
    privacy_cmd,
    recordings_cmd,
    retention_cmd,
    review_cmd,
    scan_cmd,
    serve_cmd,
    users_cmd,
    vault_cmd,
    worker_cmd,
)
from callvault.entrypoints.cli.common import VaultApp


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callvault",
        description="An encrypted, audited vault for recorded calls. See README.md.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        vault_cmd,
        recordings_cmd,
        keys_cmd,
        audit_cmd,
        serve_cmd,
        users_cmd,
        scan_cmd,
        doctor_cmd,
        import_cmd,
    ):
        module.register(commands)
    for module in (policies_cmd, retention_cmd, erasure_cmd):
        module.register(commands)
    for module in (privacy_cmd, review_cmd):
        module.register(commands)
    for module in (jobs_cmd, worker_cmd):
        module.register(commands)
    return parser


def cli_principal() -> Principal:
    """CLI actions are logged under the operating-system user.

    Taken from the effective uid, not from $USER or $LOGNAME, which anyone
    can set to put another name in the log.
    """
    return Principal(name=pwd.getpwuid(os.geteuid()).pw_name, role=OPERATOR)


def report_error(exc: CallvaultError) -> int:
    """The one place CLI errors become messages and exit codes."""
    print(f"callvault: error: {exc.message} [{exc.code}]", file=sys.stderr)
    return exc.exit_code


def main(argv: Sequence[str], app: VaultApp) -> int:
    # Everything the vault creates (database, WAL, objects, key file) is private.
    os.umask(0o077)
    args = build_parser().parse_args(argv)
    args.app = app
    try:
        return int(args.handler(args, cli_principal()) or 0)
    except CallvaultError as exc:
        return report_error(exc)
    except KeyboardInterrupt:
        print("callvault: interrupted", file=sys.stderr)
        return 130
