"""``callvault users | care-units | tokens``: accounts, care units and API tokens.

Run by the operator on the vault host.  New accounts get no password: the
command prints a one-time enrolment link (valid 24 hours) to hand to the
person, who sets a password and an authenticator with it.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from callvault.core.access import Principal
from callvault.core.errors import InvalidInput
from callvault.entrypoints.cli.common import opened
from callvault.services import accounts, tokens


def register(commands: Any) -> None:
    users = commands.add_parser("users", help="people's accounts")
    sub = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    p = sub.add_parser("create-admin", help="an administrator; prints an enrolment link")
    p.add_argument("username")
    p.set_defaults(handler=cmd_create_admin)
    p = sub.add_parser("create", help="an account; prints an enrolment link")
    p.add_argument("username")
    p.add_argument("--role", required=True)
    p.add_argument("--care-unit", action="append", default=[], dest="care_units")
    p.set_defaults(handler=cmd_create)
    sub.add_parser("list", help="every account").set_defaults(handler=cmd_list)
    p = sub.add_parser("reset", help="clear password and TOTP; prints a new enrolment link")
    p.add_argument("username")
    p.set_defaults(handler=cmd_reset)
    p = sub.add_parser("disable", help="disable an account and end its sessions")
    p.add_argument("username")
    p.set_defaults(handler=cmd_disable)

    units = commands.add_parser("care-units", help="care units")
    sub = units.add_subparsers(dest="units_command", required=True, metavar="ACTION")
    p = sub.add_parser("add", help="a new care unit")
    p.add_argument("id")
    p.add_argument("name")
    p.set_defaults(handler=cmd_unit_add)
    sub.add_parser("list", help="every care unit").set_defaults(handler=cmd_unit_list)

    toks = commands.add_parser("tokens", help="API tokens for recorders")
    sub = toks.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    p = sub.add_parser("create", help="a recorder token for one care unit (shown once)")
    p.add_argument("name")
    p.add_argument("--care-unit", required=True)
    p.set_defaults(handler=cmd_token_create)
    sub.add_parser("list", help="every token, without secrets").set_defaults(handler=cmd_token_list)
    p = sub.add_parser("revoke", help="revoke a token for good")
    p.add_argument("id")
    p.set_defaults(handler=cmd_token_revoke)


def base_url(settings: object) -> str:
    """Where the service answers, for enrolment links: https://host:port."""
    host = str(getattr(settings, "bind_host", "127.0.0.1"))
    port = int(getattr(settings, "bind_port", 8443))
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}"


def _print_enrolment(args: argparse.Namespace, found: accounts.Enrolment) -> None:
    print(
        f"user {found.username}: enrolment link, valid until {found.expires_at:%Y-%m-%d %H:%M} UTC"
    )
    print(f"  {found.link(base_url(args.app.settings))}")
    print("Hand it to the person over a trusted channel; it works once.")


def cmd_create_admin(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        found = accounts.create_admin(vault, principal, args.username)
    _print_enrolment(args, found)
    return 0


def cmd_create(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        found = accounts.create_user(vault, principal, args.username, args.role, args.care_units)
    _print_enrolment(args, found)
    return 0


def cmd_list(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        users = accounts.list_users(vault, principal)
    for u in users:
        state = "disabled" if u.disabled else "enrolled" if u.enrolled else "not enrolled"
        print(f"{u.username:<24} {u.role:<16} {state:<13} {','.join(u.care_units) or '-'}")
    return 0


def cmd_reset(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        found = accounts.reset_user(vault, principal, args.username)
    _print_enrolment(args, found)
    return 0


def cmd_disable(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        accounts.disable_user(vault, principal, args.username)
    print(f"user {args.username.strip().lower()} disabled; sessions ended")
    return 0


def cmd_unit_add(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        row = accounts.create_care_unit(vault, principal, args.id, args.name)
    print(f"care unit {row.id} added")
    return 0


def cmd_unit_list(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        rows = accounts.list_care_units(vault, principal)
    for r in rows:
        print(f"{r.id:<24} {r.name}")
    return 0


def cmd_token_create(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        made = tokens.create(vault, principal, args.name, args.care_unit)
    print(f"token {made.info.name} ({made.info.id}) for care unit {made.info.care_unit}:")
    print(f"  {made.token}")
    print("Shown this once; the vault keeps only its hash.")
    return 0


def cmd_token_list(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        found = tokens.list_tokens(vault, principal)
    for t in found:
        used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
        state = "revoked" if t.revoked_at else "active"
        print(f"{t.id}  {t.name:<20} {t.care_unit:<16} {state:<8} last used {used}")
    return 0


def cmd_token_revoke(args: argparse.Namespace, principal: Principal) -> int:
    try:
        token_id = uuid.UUID(args.id)
    except ValueError:
        raise InvalidInput("token id must be the UUID that `callvault tokens list` shows") from None
    with opened(args) as vault:
        info = tokens.revoke(vault, principal, token_id)
    print(f"token {info.name} revoked")
    return 0
