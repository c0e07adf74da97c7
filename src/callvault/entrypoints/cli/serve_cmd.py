"""``callvault serve``: the HTTPS API on CALLVAULT_BIND (default 127.0.0.1:8443)."""

from __future__ import annotations

import argparse
from typing import Any

from callvault.core.access import Principal
from callvault.core.errors import CallvaultError, InvalidInput
from callvault.entrypoints.cli.common import opened


def register(commands: Any) -> None:
    p = commands.add_parser("serve", help="run the HTTPS API (TLS only) until interrupted")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="server processes on the one port (about one per core; default 1). "
        "More than one needs the passphrase or PIN from the environment, not a prompt",
    )
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace, principal: Principal) -> int:
    # Imported here: the web stack is the heaviest import of all and no other
    # command needs it (a vault process stays small).
    from callvault.entrypoints.http import serve, workers

    if not 1 <= args.workers <= workers.MAX_WORKERS:
        raise InvalidInput(f"--workers must be between 1 and {workers.MAX_WORKERS}")
    settings = args.app.settings
    # Refuse before asking for the passphrase or touching the vault.
    address = serve.resolve_bind(
        settings.bind_host,
        settings.bind_port,
        certificate_configured=settings.tls_cert_file is not None,
    )
    context = args.app.server_tls()
    sock = serve.open_listener(address)
    try:
        if args.workers == 1:
            with opened(args) as vault:
                serve.run(vault, context, sock)
            return 0

        def one_worker() -> int:
            from callvault.entrypoints.cli.main import report_error

            try:
                with opened(args, interactive=False) as vault:
                    serve.run(vault, context, sock)
            except CallvaultError as exc:
                return report_error(exc)
            return 0

        return workers.supervise(one_worker, args.workers)
    finally:
        sock.close()
