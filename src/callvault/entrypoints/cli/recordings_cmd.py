"""``ingest``, ``search``, ``show`` and ``export``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from callvault.core.access import Principal
from callvault.core.recordings import parse_recording_id
from callvault.entrypoints.cli.common import opened
from callvault.services.details import CallDetails
from callvault.services.ingest import ingest
from callvault.services.recordings import SearchQuery, export, search, show


def register(commands: Any) -> None:
    p = commands.add_parser("ingest", help="encrypt and store one recording")
    p.add_argument("file", type=Path)
    p.add_argument("--care-unit", required=True)
    p.add_argument("--started-at", required=True, help="ISO 8601 with offset")
    p.add_argument("--caller", help="caller's phone number, any common format")
    p.add_argument("--personnummer", help="personnummer or samordningsnummer")
    p.add_argument("--agent")
    p.add_argument("--call-id")
    p.add_argument("--retention-class", default="record", choices=["record", "quality"])
    p.set_defaults(handler=cmd_ingest)

    p = commands.add_parser("search", help="find recordings by exact criteria")
    p.add_argument("--caller", nargs="+", help="phone number; spaces allowed")
    p.add_argument("--personnummer", nargs="+")
    p.add_argument("--call-id")
    p.add_argument("--care-unit")
    p.add_argument("--agent")
    p.add_argument("--from", dest="started_from", help="date or time (inclusive)")
    p.add_argument("--to", dest="started_to", help="date (inclusive) or time (exclusive)")
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(handler=cmd_search)

    p = commands.add_parser("show", help="metadata of one recording (no audio)")
    p.add_argument("id")
    p.set_defaults(handler=cmd_show)

    p = commands.add_parser("export", help="decrypt one recording to a file, for a reason")
    p.add_argument("id")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--reason", required=True)
    p.set_defaults(handler=cmd_export)


def cmd_ingest(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        details = CallDetails.parse(
            care_unit=args.care_unit,
            started_at=args.started_at,
            today=vault.now().date(),
            caller=args.caller,
            personnummer=args.personnummer,
            agent=args.agent,
            call_id=args.call_id,
            retention_class=args.retention_class,
        )
        result = ingest(vault, principal, args.file, details)
    state = "already in the vault" if result.duplicate else "stored"
    print(f"{result.recording_id} {state} ({result.duration_seconds:.1f} s)")
    return 0


def cmd_search(args: argparse.Namespace, principal: Principal) -> int:
    query = SearchQuery(
        caller=" ".join(args.caller) if args.caller else None,
        personnummer=" ".join(args.personnummer) if args.personnummer else None,
        call_id=args.call_id,
        care_unit=args.care_unit,
        agent=args.agent,
        started_from=args.started_from,
        started_to=args.started_to,
        limit=args.limit,
    )
    with opened(args) as vault:
        results = search(vault, principal, query)
    for r in results:
        started = r.started_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        print(
            f"{r.id}  {started}  {r.care_unit:<16} {r.agent or '-':<12} {r.duration_seconds:8.1f} s"
        )
    print(f"{len(results)} recording(s)")
    return 0


def cmd_show(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        d = show(vault, principal, parse_recording_id(args.id))
    s = d.summary
    for label, value in (
        ("id", s.id),
        ("started at", s.started_at.isoformat()),
        ("care unit", s.care_unit),
        ("agent", s.agent or "-"),
        ("caller", d.caller or "-"),
        ("personnummer", _pnr(d.personnummer)),
        ("call id", d.call_id or "-"),
        ("duration", f"{s.duration_seconds:.2f} s"),
        ("media type", s.media_type),
        ("codec", f"{d.codec}, {d.sample_rate} Hz, {d.channels} ch"),
        ("size", f"{d.plaintext_size} bytes"),
        ("retention", d.retention_class),
        ("stored at", d.created_at.isoformat()),
    ):
        print(f"{label:>13}: {value}")
    return 0


def cmd_export(args: argparse.Namespace, principal: Principal) -> int:
    with opened(args) as vault:
        result = export(vault, principal, parse_recording_id(args.id), args.output, args.reason)
    print(f"wrote {result.size} bytes to {result.path}")
    return 0


def _pnr(digits: str | None) -> str:
    """Show the 12 stored digits the way people write them: YYYYMMDD-NNNN."""
    return f"{digits[:8]}-{digits[8:]}" if digits else "-"
