"""``callvault keys rotate`` and ``callvault keys status``."""

from __future__ import annotations

import argparse
from typing import Any

from callvault.core.access import Principal
from callvault.entrypoints.cli.common import opened
from callvault.services import keyring


def register(commands: Any) -> None:
    keys = commands.add_parser("keys", help="key hierarchy: status and rotation")
    sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    sub.add_parser(
        "rotate", help="new root and bucket KEK versions; re-wrap all keys"
    ).set_defaults(handler=cmd_rotate)
    sub.add_parser("status", help="key versions and how many recordings each holds").set_defaults(
        handler=cmd_status
    )


def cmd_rotate(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        r = keyring.rotate(vault, principal)
    print(f"root KEK now version {r.root_version}")
    print(f"bucket KEKs rotated: {r.buckets_rotated}; DEKs re-wrapped: {r.deks_rewrapped}")
    if r.roots_retired:
        print(f"root versions retired: {', '.join(map(str, r.roots_retired))}")
    return 0


def cmd_status(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        s = keyring.status(vault, principal)
    print(
        f"root KEK: current version {s.root_current}; held: {', '.join(map(str, s.root_versions))}"
    )
    last = s.last_rotation.isoformat(timespec="seconds") if s.last_rotation else "never"
    print(f"last rotation: {last}")
    print(f"{'bucket':<18} {'version':>7} {'root':>5} {'recordings':>10}")
    for month, klass, version, root, count in s.buckets:
        print(f"{month + '/' + klass:<18} {version:>7} {root:>5} {count:>10}")
    return 0
