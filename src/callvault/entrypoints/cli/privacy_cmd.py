"""``callvault privacy export | export-open | extract | breach`` and ``audit verify-extract``.

The privacy officer's tools: a caller's Art. 15 copy, the patient's log
extract (loggutdrag), the Art. 33 breach report.  Parse, call one service,
render.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from callvault.core import agefile
from callvault.core.access import Principal
from callvault.core.errors import InvalidInput
from callvault.core.extract_verify import verify_extract
from callvault.entrypoints.cli.common import opened
from callvault.services import breach, exports, extract_pdf, extracts
from callvault.services.details import parse_timestamp


def register(commands: Any) -> None:
    group = commands.add_parser("privacy", help="caller copies, log extracts, breach reports")
    sub = group.add_subparsers(dest="privacy_command", required=True, metavar="ACTION")
    e = sub.add_parser("export", help="a caller's recordings as an encrypted archive (Art. 15)")
    _subject(e)
    e.add_argument("--out", type=Path, help="the .zip.age file to create (default: a new name)")
    e.set_defaults(handler=cmd_export)
    o = sub.add_parser("export-open", help="decrypt an export without the age tool")
    o.add_argument("file", type=Path)
    o.add_argument("--out", type=Path, required=True, help="the .zip file to create")
    o.set_defaults(handler=cmd_export_open)
    x = sub.add_parser("extract", help="the patient's log extract, JSON and PDF (loggutdrag)")
    _subject(x)
    x.add_argument("--out", type=Path, required=True, help="base name: writes OUT.json, OUT.pdf")
    x.add_argument("--lang", choices=extract_pdf.LANGUAGES, default="sv")
    x.add_argument("--with-users", action="store_true", help="name users as well as care units")
    x.set_defaults(handler=cmd_extract)
    b = sub.add_parser("breach", help="recordings and callers a window or credential reached")
    b.add_argument("--from", dest="time_from", help="ISO time with offset")
    b.add_argument("--to", dest="time_to", help="ISO time with offset")
    b.add_argument("--actor", help="user name, or token:NAME")
    b.add_argument("--show-callers", action="store_true", help="list callers' numbers")
    b.set_defaults(handler=cmd_breach)


def register_verify(audit_sub: Any) -> None:
    """``audit verify-extract FILE --key VKEY``: offline, needs no vault."""
    v = audit_sub.add_parser("verify-extract", help="check a patient's log extract offline")
    v.add_argument("file", type=Path)
    v.add_argument("--key", required=True, help="the vault's published verifier key")
    v.set_defaults(handler=cmd_verify_extract)


def _subject(p: argparse.ArgumentParser) -> None:
    p.add_argument("--caller", help="the caller's phone number")
    p.add_argument("--personnummer", help="the caller's personnummer")


def _create(path: Path, data: bytes) -> None:
    try:
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600
        )
    except FileExistsError:
        raise InvalidInput("output file exists; choose a new name") from None
    except OSError:
        raise InvalidInput("cannot create the output file") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def cmd_export(args: argparse.Namespace, principal: Principal) -> int:
    # A random name: the caller's number must never end up in a file name.
    out = args.out or Path(f"export-{secrets.token_hex(4)}.zip.age")
    with opened(args) as vault:
        result = exports.export_to_file(
            vault, principal, out, caller=args.caller, personnummer=args.personnummer
        )
    print(f"wrote {out} ({result.recordings} recordings, {result.size} bytes)")
    print(f"passphrase (shown once; give it to the caller by another channel): {result.passphrase}")
    print("the caller opens it with: age -d -o calls.zip " + out.name)
    return 0


def cmd_export_open(args: argparse.Namespace, principal: Principal) -> int:
    passphrase = getpass.getpass("export passphrase: ") if sys.stdin.isatty() else input()
    try:
        source = args.file.open("rb")
    except OSError:
        raise InvalidInput("cannot read the export file") from None
    with source:
        chunks = agefile.decrypt(source, passphrase.strip())
        first = next(chunks)  # a wrong passphrase fails before the file is created
        _create(args.out, first)
        try:
            with args.out.open("ab") as handle:
                for chunk in chunks:
                    handle.write(chunk)
        except BaseException:
            args.out.unlink(missing_ok=True)
            raise
    print(f"wrote {args.out}")
    return 0


def cmd_extract(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        extract = extracts.produce(
            vault,
            principal,
            caller=args.caller,
            personnummer=args.personnummer,
            with_users=args.with_users,
        )
    pdf = extract_pdf.render(extract.document, args.lang)
    base = Path(str(args.out).removesuffix(".json").removesuffix(".pdf"))
    _create(base.with_name(base.name + ".json"), extract.json_bytes())
    _create(base.with_name(base.name + ".pdf"), pdf)
    print(f"wrote {base}.json and {base}.pdf: {len(extract.entries)} entries")
    print(f"verifier key: {extract.document['verifier_key']}")
    return 0


def cmd_verify_extract(args: argparse.Namespace, principal: Principal) -> int:
    try:
        data = args.file.read_bytes()
    except OSError:
        raise InvalidInput("cannot read the extract file") from None
    report = verify_extract(data, args.key)
    print(f"entries: {report.entries}; checkpoint size: {report.checkpoint_size}")
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    print("OK" if report.ok else "FAILED")
    return 0 if report.ok else 1


def _time(text: str | None) -> dt.datetime | None:
    return parse_timestamp(text) if text else None


def cmd_breach(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        report = breach.breach_report(
            vault,
            principal,
            time_from=_time(args.time_from),
            time_to=_time(args.time_to),
            actor=args.actor,
            show_callers=args.show_callers,
        )
    for r in report.recordings:
        how = ", ".join(f"{k.split(':')[1]}={n}" for k, n in sorted(r.how.items()))
        who = f" {r.caller or '-'} {r.personnummer or '-'}" if report.with_identifiers else ""
        print(f"{r.recording_id} {r.care_unit or '(erased)':<16} {how}{who}")
    print(
        f"{report.accesses} accesses, {len(report.recordings)} recordings, "
        f"{report.distinct_callers} distinct callers, {report.without_caller} without caller"
    )
    return 0
