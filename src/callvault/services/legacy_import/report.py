"""The import's final account: counts by outcome and reason, bytes, time, and
the files that were not taken, named only in masked form.

Legacy file names carry callers' phone numbers and sometimes personnummer,
so a name is never shown as it is: every digit of a path part is hidden
unless the part is a plain year, month, day or hour folder (``2019``,
``02``, ``2019-02-18``), control characters and non-ASCII letters are
shown as ``?``, and long parts are cut.  The file's index (its place in the
sorted source) identifies it exactly.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from callvault.services.legacy_import.journal import DONE, REJECTED, VERIFIED, Entry
from callvault.services.legacy_import.sources import SourceFile

IMPORTED = "imported"
DUPLICATE = "duplicate"
PENDING = "pending"
_SAFE_PART = re.compile(r"\d{1,4}|\d{4}-\d{2}(?:-\d{2})?")
_MAX_PART = 24
_SUFFIX = re.compile(r"[A-Za-z][A-Za-z0-9]{0,3}")


def mask_path(relative: str) -> str:
    """``relative`` with everything that could identify a caller hidden."""
    parts = relative.split("/")
    stem, dot, ext = parts[-1].rpartition(".")
    suffix = ""
    if dot and stem and _SUFFIX.fullmatch(ext):
        parts[-1], suffix = stem, "." + ext
    masked = [_mask_part(part) for part in parts]
    return "/".join(masked) + suffix


def _mask_part(part: str) -> str:
    if not _SAFE_PART.fullmatch(part):
        part = re.sub(r"\d", "#", part)
    part = "".join(c if c.isascii() and c.isprintable() else "?" for c in part)
    if len(part) > _MAX_PART:
        part = part[: _MAX_PART - 1] + "…"
    return part


@dataclass(frozen=True)
class Problem:
    index: int
    name: str  # masked
    outcome: str
    reason: str
    message: str


@dataclass
class ImportReport:
    dry_run: bool
    source_files: int
    outcomes: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    originals: dict[str, int] = field(default_factory=dict)
    bytes_imported: int = 0
    bytes_seen: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    samples: list[dict[str, str]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not any(self.outcomes.get(k) for k in ("failed", PENDING))

    @property
    def mb_per_second(self) -> float:
        return self.bytes_seen / 1e6 / self.seconds if self.seconds > 0 else 0.0

    @property
    def files_per_second(self) -> float:
        done = self.outcomes.get(IMPORTED, 0) + self.outcomes.get(DUPLICATE, 0)
        return done / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "source_files": self.source_files,
            "outcomes": dict(sorted(self.outcomes.items())),
            "reasons": dict(sorted(self.reasons.items())),
            "originals": dict(sorted(self.originals.items())),
            "bytes_imported": self.bytes_imported,
            "bytes_seen": self.bytes_seen,
            "seconds": round(self.seconds, 3),
            "mb_per_second": round(self.mb_per_second, 3),
            "files_per_second": round(self.files_per_second, 3),
            "complete": self.complete,
            "problems": [p.__dict__ for p in self.problems],
            "samples": self.samples,
        }


def summarise(
    files: list[SourceFile],
    keys: dict[int, str],
    state: dict[str, Entry],
    messages: dict[str, str],
    seconds: float,
) -> ImportReport:
    """The report over the whole journal: files this run saw, and those an
    earlier run already finished (a moved original is no longer in the source)."""
    report = ImportReport(dry_run=False, source_files=len(files), seconds=seconds)
    outcomes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    originals: Counter[str] = Counter()
    claimed: set[str] = set()
    # The first key (in a fixed order) that holds a recording imported it, the
    # rest are duplicates: the same answer however the work was interleaved.
    for key in sorted(state):
        entry = state[key]
        if entry.stage in (DONE, VERIFIED):
            first = entry.recording_id not in claimed
            claimed.add(entry.recording_id)
            outcomes[IMPORTED if first else DUPLICATE] += 1
            report.bytes_imported += entry.size if first else 0
            report.bytes_seen += entry.size
            originals[entry.originals if entry.stage == DONE else PENDING] += 1
        elif entry.stage == REJECTED:
            outcomes[entry.outcome] += 1
            reasons[entry.reason] += 1
            report.bytes_seen += entry.size
    by_index = {f.index: f for f in files}
    for index, key in sorted(keys.items()):
        latest = state.get(key)
        if latest is None:
            outcomes[PENDING] += 1
        elif latest.stage == REJECTED:
            f = by_index[index]
            message = messages.get(key, latest.reason)
            report.problems.append(
                Problem(index, mask_path(f.relative), latest.outcome, latest.reason, message)
            )
    report.outcomes, report.reasons, report.originals = (
        dict(outcomes),
        dict(reasons),
        dict(originals),
    )
    return report
