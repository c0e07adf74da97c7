"""``callvault init`` and ``callvault verify``."""

from __future__ import annotations

import argparse
from typing import Any

from callvault.core.access import Principal
from callvault.entrypoints.cli.common import opened, passphrase_prompt
from callvault.services import audit
from callvault.services import vault as vault_service
from callvault.services.verify import verify_vault


def register(commands: Any) -> None:
    p = commands.add_parser("init", help="create a new vault (keys, database, object store)")
    p.set_defaults(handler=cmd_init)
    p = commands.add_parser("verify", help="check every recording, object and the audit log")
    p.set_defaults(handler=cmd_verify)


def cmd_init(args: argparse.Namespace, principal: Principal) -> int:
    settings = args.app.settings
    vault = args.app.create_vault(passphrase_prompt())
    try:
        vault_id = vault_service.initialise(vault, principal)
        print(f"vault {vault_id} created")
        print(f"  data:  {settings.data_dir}")
        print(f"  keys:  {settings.keys_url}")
        print(f"  audit verifier key: {audit.verifier_key(vault)}")
    finally:
        vault.close()
    return 0


def cmd_verify(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        report = verify_vault(vault, principal)
    print(f"recordings verified: {report.recordings_checked}")
    if report.interrupted_ingests:
        print(
            f"interrupted ingests: {report.interrupted_ingests} "
            "(not visible; ingesting the same file again completes them)"
        )
    assert report.audit is not None
    print(
        f"audit log: {report.audit.size} entries, "
        f"{report.audit.checkpoints_checked} checkpoints checked"
    )
    for problem in [*report.problems, *report.audit.problems]:
        print(f"PROBLEM: {problem}")
    print("OK" if report.ok else "FAILED")
    return 0 if report.ok else 1
