"""``callvault serve``: the HTTPS API on CALLVAULT_BIND (default 127.0.0.1:8443)."""

from __future__ import annotations

import argparse
from typing import Any

from callvault.core.access import Principal
from callvault.entrypoints.cli.common import opened


def register(commands: Any) -> None:
    p = commands.add_parser("serve", help="run the HTTPS API (TLS only) until interrupted")
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace, principal: Principal) -> int:
    # Imported here: the web stack is the heaviest import of all and no other
    # command needs it (a vault process stays small).
    from callvault.entrypoints.http import serve

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
        with opened(args) as vault:
            serve.run(vault, context, sock)
    finally:
        sock.close()
    return 0
