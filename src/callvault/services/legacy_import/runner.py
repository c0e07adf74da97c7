"""``import``: turn a legacy archive into vault records (R26), resumably (R28).

The run walks the source, reads each file's call details from its path,
skips what the journal says is done, and hands the rest to the worker pool.
It writes one ``import:run`` audit entry when it starts and one when it
finishes; every stored recording gets its own ingest entry from
``services.ingest``.  A dry run reads names only and changes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from callvault.core.access import Operation, Principal, UnitTarget
from callvault.core.audit import Action, Outcome
from callvault.core.errors import InvalidInput, NoRecordingPolicy
from callvault.services import audit, policies
from callvault.services.context import Vault
from callvault.services.details import CallDetails
from callvault.services.guard import authorise
from callvault.services.legacy_import import originals, pool
from callvault.services.legacy_import.journal import (
    DONE,
    REJECTED,
    VERIFIED,
    Entry,
    Journal,
    journal_path,
    journal_secret,
    keyed,
    read_state,
)
from callvault.services.legacy_import.patterns import PathPattern, Rejected
from callvault.services.legacy_import.report import ImportReport, Problem, mask_path, summarise
from callvault.services.legacy_import.sources import SourceFile, is_url, walk
from callvault.services.legacy_import.worker import REJECTED_OUTCOME, Job, Task

#: files done, files in all, bytes done, bytes in all (0 when unknown, as for URLs)
Progress = Callable[[int, int, int, int], None]
WOULD_IMPORT = "would_import"
ALREADY_DONE = "already_done"
_AUDIO_HEADS = (b"RIFF", b"ID3")


@dataclass(frozen=True)
class ImportOptions:
    source: str
    pattern: PathPattern
    home: Path  # the vault's home: the journal lives under it
    dry_run: bool = False
    workers: int = 0
    originals: str = originals.KEEP
    move_to: Path | None = None
    samples: int = 5


def run_import(
    vault: Vault,
    principal: Principal,
    options: ImportOptions,
    *,
    opener: pool.Opener | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    source = _check(options)
    authorise(vault, principal, Operation.RECORDING_INGEST, _any_unit(options.pattern))
    started = time.perf_counter()
    files = walk(source)
    secret = journal_secret(vault.keys.index_key())
    path = journal_path(options.home, secret, source)
    keys = {f.index: keyed(secret, "path", f.relative) for f in files}
    state = read_state(path)
    today = vault.now().date()
    if options.pattern.policy is None:
        options = dataclasses.replace(
            options, pattern=dataclasses.replace(options.pattern, policy=_policies(vault))
        )
    if options.dry_run:
        return _dry_run(options, files, keys, state, today, time.perf_counter() - started)

    audit.record_alone(
        vault, principal, Action.IMPORT_RUN, detail={"step": "start", "files": len(files)}
    )
    job = Job(path, options.originals, options.move_to)
    counter = _Counter(files, progress)
    messages: dict[str, str] = {}
    with Journal(path) as journal:
        tasks = _tasks(options, files, keys, state, today, journal, counter, messages)
        results = pool.run(
            tasks,
            workers=options.workers,
            opener=opener,
            vault=vault,
            principal=principal,
            job=job,
        )
        for result in results:
            if result.message:
                messages[result.key] = result.message
            counter.add(result.size)
        _settle_vanished(options, secret, set(keys.values()), read_state(path), journal)
    report = summarise(files, keys, read_state(path), messages, time.perf_counter() - started)
    audit.record_alone(
        vault,
        principal,
        Action.IMPORT_RUN,
        outcome=Outcome.SUCCESS if report.complete else Outcome.FAILED,
        detail={"step": "finish", **{k: v for k, v in sorted(report.outcomes.items())}},
    )
    return report


def _settle_vanished(
    options: ImportOptions,
    secret: bytes,
    walked: set[str],
    state: dict[str, Entry],
    journal: Journal,
) -> None:
    """Finish verified files an interrupted run had already moved or shredded.

    Such a file is no longer in the source, so no task reaches it; a moved one
    is recognised in the destination by the same keyed hash of its path.
    """
    vanished = [e for k, e in state.items() if e.stage == VERIFIED and k not in walked]
    if not vanished:
        return
    arrived: set[str] = set()
    if options.move_to is not None and options.move_to.is_dir():
        arrived = {keyed(secret, "path", f.relative) for f in walk(str(options.move_to))}
    for entry in vanished:
        done = options.originals
        if options.originals == originals.MOVE and entry.key not in arrived:
            done = "missing"
        journal.append(dataclasses.replace(entry, stage=DONE, originals=done))


def _check(options: ImportOptions) -> str:
    """The canonical source; ``InvalidInput`` for options that cannot go together."""
    if options.workers < 0:
        raise InvalidInput("workers must be 0 or more")
    if options.originals not in (originals.KEEP, originals.MOVE, originals.SHRED):
        raise InvalidInput("originals must be kept, moved or shredded")
    if (options.originals == originals.MOVE) != (options.move_to is not None):
        raise InvalidInput("moving originals needs a destination folder")
    if is_url(options.source):
        if options.originals != originals.KEEP:
            raise InvalidInput("originals on a web server can only be left where they are")
        return options.source if options.source.endswith("/") else options.source + "/"
    root = Path(options.source).resolve()
    if options.move_to is not None:
        target = options.move_to.resolve()
        if target == root or target.is_relative_to(root) or root.is_relative_to(target):
            raise InvalidInput("move originals to a folder outside the import source")
    return str(root)


def _any_unit(pattern: PathPattern) -> UnitTarget:
    # Each file's unit is authorised again by ingest; this refuses early a
    # principal who may ingest nowhere the pattern can name.
    return UnitTarget(pattern.default_care_unit or next(iter(pattern.unit_map.values()), "-"))


def _policies(vault: Vault) -> Callable[[str, str], bool]:
    """Whether a unit has an active recording policy for a class (R19), asked once
    per unit: a unit without one is refused by name, before any audio is read."""
    known: dict[tuple[str, str], bool] = {}

    def active(unit: str, retention_class: str) -> bool:
        if (unit, retention_class) not in known:
            try:
                with vault.store.transaction(read_only=True) as tx:
                    policies.require_active(tx, unit, retention_class)
                known[unit, retention_class] = True
            except NoRecordingPolicy:
                known[unit, retention_class] = False
        return known[unit, retention_class]

    return active


class _Counter:
    def __init__(self, files: list[SourceFile], progress: Progress | None) -> None:
        self.total_files = len(files)
        self.total_bytes = sum(f.size or 0 for f in files)
        self.files = self.bytes = 0
        self.progress = progress

    def add(self, size: int) -> None:
        self.files += 1
        self.bytes += size
        if self.progress is not None:
            self.progress(self.files, self.total_files, self.bytes, self.total_bytes)


def _tasks(
    options: ImportOptions,
    files: list[SourceFile],
    keys: dict[int, str],
    state: dict[str, Entry],
    today: dt.date,
    journal: Journal,
    counter: _Counter,
    messages: dict[str, str],
) -> Iterator[Task]:
    """Work left to do; files refused by name are journaled here, not sent out."""
    for f in files:
        key = keys[f.index]
        entry = state.get(key)
        if entry is not None and entry.stage == DONE:
            counter.add(f.size or 0)
            continue
        if entry is not None and entry.stage == VERIFIED:
            # Its record is proven; what is left is the original, which a shred
            # may already have overwritten, so the file is not looked at again.
            yield Task(f, key, None, entry)
            continue
        try:
            details = _details(options.pattern, f, today)
        except Rejected as exc:
            journal.append(Entry(key, REJECTED, REJECTED_OUTCOME, exc.reason, f.size or 0))
            messages[key] = exc.message
            counter.add(f.size or 0)
            continue
        yield Task(f, key, details)


def _details(pattern: PathPattern, f: SourceFile, today: dt.date) -> CallDetails:
    if f.problem is not None:
        raise Rejected(*f.problem)
    if pattern.regex.fullmatch(f.relative) is None:
        raise Rejected("no_match", "the name does not match the pattern")
    if not f.is_url:
        _looks_like_audio(f)
    return pattern.details(f.relative, today)


def _looks_like_audio(f: SourceFile) -> None:
    """A cheap first look (the decoder has the last word in ingest)."""
    try:
        with open(f.location, "rb") as handle:
            head = handle.read(16)
    except OSError:
        raise Rejected("unreadable", "cannot read the file") from None
    mpeg = len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0
    if not (head.startswith(_AUDIO_HEADS) or mpeg):
        raise Rejected("not_audio", "not WAV or MP3 audio")


def _dry_run(
    options: ImportOptions,
    files: list[SourceFile],
    keys: dict[int, str],
    state: dict[str, Entry],
    today: dt.date,
    seconds: float,
) -> ImportReport:
    report = ImportReport(dry_run=True, source_files=len(files), seconds=seconds)
    outcomes: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for f in files:
        entry = state.get(keys[f.index])
        if entry is not None and entry.stage == DONE:
            outcome = ALREADY_DONE
        else:
            try:
                details = _details(options.pattern, f, today)
                outcome = WOULD_IMPORT
                if len(report.samples) < options.samples:
                    report.samples.append(sample(f, details))
            except Rejected as exc:
                outcome = REJECTED_OUTCOME
                reasons[exc.reason] = reasons.get(exc.reason, 0) + 1
                report.problems.append(
                    Problem(f.index, mask_path(f.relative), outcome, exc.reason, exc.message)
                )
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        report.bytes_seen += f.size or 0
    report.outcomes, report.reasons = outcomes, reasons
    return report


def sample(f: SourceFile, d: CallDetails) -> dict[str, str]:
    """What the import read from one name, with identifiers masked."""
    pnr = d.personnummer.value if d.personnummer else None
    return {
        "index": str(f.index),
        "name": mask_path(f.relative),
        "care_unit": d.care_unit,
        "started_at": d.started_at.isoformat(),
        "caller": str(d.caller) if d.caller else "-",
        "personnummer": f"{pnr[:2]}******-****" if pnr else "-",
        "agent": d.agent or "-",
        "call_id": mask_path(d.call_id) if d.call_id else "-",
        "retention_class": d.retention_class,
    }
