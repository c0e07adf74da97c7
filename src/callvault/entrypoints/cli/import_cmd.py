"""``callvault import SOURCE``: a legacy archive (folder or web listing) into the vault."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from callvault.core.access import Principal
from callvault.core.errors import InvalidInput
from callvault.entrypoints.cli.common import VaultApp, passphrase_prompt
from callvault.services import audit
from callvault.services.context import Vault
from callvault.services.legacy_import import (
    KEEP,
    MOVE,
    PRESETS,
    SHRED,
    SHRED_WARNING,
    ImportOptions,
    ImportReport,
    PathPattern,
    parse_unit_map,
    run_import,
)

EXIT_SOME_NOT_IMPORTED = 3
MAX_LISTED = 100  # files named in the readable report; --json has them all


def register(commands: Any) -> None:
    p = commands.add_parser(
        "import",
        help="import a legacy archive (folder or web listing), resumably",
        description="Import every recording under SOURCE; re-run the same command to resume.",
    )
    p.add_argument("source", help="a folder, or an http(s) URL of an autoindex listing")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--preset", choices=sorted(PRESETS), help="a known archive layout")
    how.add_argument("--pattern", help="regex over the relative path, with named groups")
    p.add_argument("--care-unit", help="care unit when the pattern has no care_unit group")
    p.add_argument("--unit-map", action="append", default=[], metavar="FOLDER=UNIT")
    p.add_argument("--unit-map-file", type=Path, help="lines of FOLDER=UNIT")
    p.add_argument("--timezone", default="Europe/Stockholm", help="zone of times in names")
    p.add_argument("--time-format", help="strptime format of started_at (default: by digits)")
    p.add_argument("--retention-class", default="record", choices=["record", "quality"])
    p.add_argument("--dry-run", action="store_true", help="show what would happen; change nothing")
    p.add_argument("--samples", type=int, default=5, help="parsed names shown by --dry-run")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    originals = p.add_mutually_exclusive_group()
    originals.add_argument("--move-originals-to", type=Path, metavar="DIR")
    originals.add_argument(
        "--shred-originals", action="store_true", help=f"overwrite and unlink ({SHRED_WARNING})"
    )
    p.add_argument("--progress", action="store_true", help="progress bar even without a TTY")
    p.add_argument("--json", action="store_true", help="the final report as JSON")
    p.set_defaults(handler=cmd_import)


class _Remembered:
    """The prompt, asked at most once, so worker processes can open the vault too."""

    def __init__(self, prompt: Any) -> None:
        self.prompt, self.value = prompt, None

    def __call__(self) -> str:
        if self.value is None:
            self.value = self.prompt()
        return str(self.value)


class _Given:
    def __init__(self, value: str) -> None:
        self.value = value

    def __call__(self) -> str:
        return self.value


def _open_in_worker(app: VaultApp, prompt: Any) -> Vault:
    return app.open_vault(prompt)


@contextmanager
def _opened(app: VaultApp, prompt: Any) -> Iterator[Vault]:
    vault = app.open_vault(prompt)
    try:
        yield vault
    finally:
        try:
            audit.seal(vault)
        finally:
            vault.close()


def cmd_import(args: argparse.Namespace, principal: Principal) -> int:
    unit_lines = list(args.unit_map)
    if args.unit_map_file is not None:
        try:
            unit_lines += args.unit_map_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            raise InvalidInput("cannot read the care-unit map file (UTF-8 text)") from None
    pattern = PathPattern.build(
        pattern=args.pattern,
        preset=args.preset,
        timezone=args.timezone,
        time_format=args.time_format,
        default_care_unit=args.care_unit,
        unit_map=parse_unit_map(unit_lines),
        retention_class=args.retention_class,
    )
    move_to = args.move_originals_to
    options = ImportOptions(
        source=args.source,
        pattern=pattern,
        home=Path(getattr(args.app.settings, "home", Path("var"))),
        dry_run=args.dry_run,
        workers=args.workers,
        originals=MOVE if move_to else SHRED if args.shred_originals else KEEP,
        move_to=move_to,
        samples=args.samples,
    )
    if args.shred_originals and not args.dry_run:
        print(f"callvault: warning: {SHRED_WARNING}", file=sys.stderr)
    prompt = passphrase_prompt()
    remembered = _Remembered(prompt) if prompt is not None else None
    bar = _Bar() if (args.progress or sys.stderr.isatty()) and not args.dry_run else None
    with _opened(args.app, remembered) as vault:
        given = _Given(remembered.value) if remembered and remembered.value else None
        opener = functools.partial(_open_in_worker, args.app, given)
        report = run_import(vault, principal, options, opener=opener, progress=bar)
    if bar is not None:
        bar.finish()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, ensure_ascii=True))
    else:
        print(render(report))
    imported = sum(report.outcomes.get(k, 0) for k in ("imported", "duplicate", "would_import"))
    everything = imported + report.outcomes.get("already_done", 0)
    return 0 if everything == sum(report.outcomes.values()) else EXIT_SOME_NOT_IMPORTED


class _Bar:
    """files, bytes, rate and ETA on one stderr line, redrawn at most 5 times a second."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.last = 0.0

    def __call__(self, files: int, total_files: int, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.2 and files < total_files:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-6)
        rate = done / elapsed
        left = (total - done) / rate if rate > 0 and total else float("nan")
        eta = time.strftime("%H:%M:%S", time.gmtime(left)) if left == left else "--:--:--"
        line = (
            f"\r{files}/{total_files} files  {done / 1e6:.1f}/{total / 1e6:.1f} MB  "
            f"{rate / 1e6:.1f} MB/s  {files / elapsed:.1f} files/s  ETA {eta} "
        )
        sys.stderr.write(line)
        sys.stderr.flush()

    def finish(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


def render(report: ImportReport) -> str:
    """The readable report; names only masked and by index."""
    title = "dry run: nothing was changed" if report.dry_run else "import finished"
    lines = [f"{title}: {report.source_files} file(s) in the source"]
    for outcome, count in sorted(report.outcomes.items()):
        lines.append(f"  {outcome:<14} {count}")
    if report.reasons:
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(report.reasons.items()))
        lines.append(f"  reasons: {reasons}")
    if report.originals:
        lines.append("  originals: " + ", ".join(f"{k} {v}" for k, v in report.originals.items()))
    lines.append(
        f"  {report.bytes_imported / 1e6:.1f} MB imported of {report.bytes_seen / 1e6:.1f} MB; "
        f"{report.seconds:.1f} s; {report.mb_per_second:.2f} MB/s; "
        f"{report.files_per_second:.2f} files/s"
    )
    if report.samples:
        lines.append("what the names say (identifiers masked):")
        for s in report.samples:
            lines.append("  " + "  ".join(f"{k}={v}" for k, v in s.items()))
    if report.problems:
        lines.append("files not imported (by index in the sorted source; names masked):")
        for p in report.problems[:MAX_LISTED]:
            lines.append(f"  #{p.index:<6} {p.name}  {p.outcome}: {p.reason} ({p.message})")
        if len(report.problems) > MAX_LISTED:
            lines.append(f"  ... and {len(report.problems) - MAX_LISTED} more (--json lists all)")
    return "\n".join(lines)
