"""Verification of the whole audit log against its signed checkpoints.

``verify_log`` re-reads every entry (``callvault.core.audit``) and every
signed checkpoint (``callvault.core.notes``) and names, by seq and never by
content, each entry that was changed, removed, reordered or inserted.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from callvault.core.errors import AuditTampered
from callvault.core.merkle import EMPTY_ROOT, Frontier
from callvault.core.notes import Checkpoint, parse_and_verify_checkpoint

__all__ = ["VerifyReport", "verify_log"]

_MAX_LISTED = 100  # problems listed in full; the rest are counted


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of ``verify_log``.  ``ok`` is False iff there is a problem.

    ``problems`` name entries by seq and checkpoints by size or by their
    1-based position in the input, never by content.  ``unanchored`` counts
    entries after the last signed checkpoint: not an error, but not yet
    protected against undetectable truncation or rewriting.
    """

    ok: bool
    problems: list[str]
    size: int
    checkpoints_checked: int
    unanchored: int
    notes: list[str]


class _Problems:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.count = 0

    def add(self, line: str) -> None:
        self.count += 1
        if len(self.lines) < _MAX_LISTED:
            self.lines.append(line)

    def listed(self) -> list[str]:
        hidden = self.count - len(self.lines)
        return self.lines + ([f"... and {hidden} more problems"] if hidden else [])


@dataclass(frozen=True)
class _Head:
    number: int  # 1-based position in the caller's list, for messages
    checkpoint: Checkpoint


def _read_heads(
    notes: Iterable[str], public_key: bytes, key_name: str, origin: str | None, out: _Problems
) -> list[_Head]:
    heads: list[_Head] = []
    for number, note in enumerate(notes, start=1):
        try:
            cp = parse_and_verify_checkpoint(note, public_key, key_name)
        except AuditTampered as exc:
            out.add(f"checkpoint #{number}: {exc.params['detail']}")
            continue
        origin = cp.origin if origin is None else origin
        if cp.origin != origin:
            out.add(f"checkpoint #{number}: signed for another log (origin differs)")
            continue
        heads.append(_Head(number, cp))
    heads.sort(key=lambda h: h.checkpoint.size)
    return heads


@dataclass
class _Scan:
    size: int = 0
    roots: dict[int, bytes] = field(default_factory=dict)  # log root at each checkpoint size
    gaps: list[tuple[int, int]] = field(default_factory=list)  # missing seq ranges [lo, hi)
    late: list[int] = field(default_factory=list)  # seqs met after a higher one


def _scan(entries: Iterable[tuple[int, bytes, bytes]], sizes: set[int], out: _Problems) -> _Scan:
    """One pass: recompute leaves, fold them into a frontier, note the root at
    every checkpointed size and every break in the seq sequence."""
    scan = _Scan()
    frontier = Frontier()
    if 0 in sizes:
        scan.roots[0] = EMPTY_ROOT
    sha256, expected = hashlib.sha256, 0
    for position, item in enumerate(entries):
        try:
            seq, body, stored = item
            leaf = sha256(b"\x00" + body).digest()
        except (TypeError, ValueError):
            out.add(f"entry at position {position}: malformed")
            continue
        label = f"seq {seq}"
        if type(seq) is not int:
            label = f"entry at position {position}"  # never quote a malformed value
            out.add(f"{label}: malformed seq")
        elif seq == expected:
            expected += 1
        elif seq > expected:
            scan.gaps.append((expected, seq))
            expected = seq + 1
        else:
            scan.late.append(seq)
        if leaf != stored:
            out.add(f"{label}: entry does not match its stored leaf hash (changed)")
        frontier.append(leaf)
        if frontier.size in sizes:
            scan.roots[frontier.size] = frontier.root()
    scan.size = frontier.size
    return scan


def _report_seqs(scan: _Scan, out: _Problems) -> None:
    """Tell reordered (a missing seq that turns up later) from duplicated
    (a seq seen before) from removed (a missing seq that never turns up)."""
    starts = [lo for lo, _ in scan.gaps]
    filled: set[int] = set()
    for seq in scan.late:
        i = bisect.bisect_right(starts, seq) - 1
        if i >= 0 and seq < scan.gaps[i][1] and seq not in filled:
            filled.add(seq)
            out.add(f"seq {seq}: stored out of order (reordered)")
        else:
            out.add(f"seq {seq}: duplicate seq (inserted entry)")
    found = sorted(filled)
    for lo, hi in scan.gaps:
        # The parts of [lo, hi) that no late entry filled.
        start = lo
        for seq in found[bisect.bisect_left(found, lo) : bisect.bisect_left(found, hi)]:
            _missing(start, seq, out)
            start = seq + 1
        _missing(start, hi, out)


def _missing(lo: int, hi: int, out: _Problems) -> None:
    if lo < hi:
        out.add(f"{_seqs(lo, hi)}: missing (removed)")


def _seqs(lo: int, hi: int) -> str:
    return f"seq {lo}" if hi - lo == 1 else f"seq {lo}..{hi - 1}"


def _report_heads(heads: list[_Head], scan: _Scan, out: _Problems) -> None:
    """Compare each signed root with the log's root at that size.

    A head that differs from the log while a later (or same-size) head matches
    it is a fork: the two heads cannot both describe one append-only log.
    Otherwise the log changed, and the change lies after the last head that
    still matches; later heads then differ too and are only counted.
    """
    matching = [h for h in heads if scan.roots.get(h.checkpoint.size) == h.checkpoint.root]
    last_good, first_reported, later = 0, False, 0
    for head in heads:
        size, number = head.checkpoint.size, head.number
        if size > scan.size:
            out.add(
                f"checkpoint #{number} (size {size}) is beyond the end of the log "
                f"({scan.size} entries): {_seqs(scan.size, size)} removed"
            )
            break  # larger heads say the same
        if scan.roots[size] == head.checkpoint.root:
            last_good = size
            continue
        witness = next((h for h in matching if h.checkpoint.size >= size), None)
        if witness is not None and witness.checkpoint.size == size:
            out.add(f"checkpoints #{number} and #{witness.number} disagree at size {size} (fork)")
        elif witness is not None:
            out.add(
                f"checkpoint #{number} (size {size}) is not consistent with checkpoint "
                f"#{witness.number} (size {witness.checkpoint.size}): "
                "the later does not extend the earlier"
            )
        elif not first_reported:
            first_reported = True
            out.add(
                f"checkpoint #{number} (size {size}): log root differs; an entry in "
                f"{_seqs(last_good, size)} was changed, removed, reordered or inserted"
            )
        else:
            later += 1
    if later:
        out.add(f"{later} later checkpoints do not match the log either")


def verify_log(
    entries: Iterable[tuple[int, bytes, bytes]],
    checkpoints: Iterable[str],
    public_key: bytes,
    key_name: str,
    *,
    origin: str | None = None,
) -> VerifyReport:
    """Check the whole log against itself and its signed checkpoints.

    ``entries`` are ``(seq, canonical bytes, stored leaf hash)`` in stored
    order, streamed once; ``checkpoints`` are signed notes in any order.
    With ``origin`` given, heads for another log are problems; without it,
    all heads must share the first valid head's origin.  Raises nothing of
    its own (errors raised while iterating the inputs propagate): every
    finding is a line in the report.  Memory is O(log n) for the tree
    plus the checkpoints and the anomalies found.
    """
    out = _Problems()
    heads = _read_heads(checkpoints, public_key, key_name, origin, out)
    scan = _scan(entries, {h.checkpoint.size for h in heads}, out)
    _report_seqs(scan, out)
    _report_heads(heads, scan, out)
    anchored = max((h.checkpoint.size for h in heads), default=0)
    unanchored = max(scan.size - anchored, 0)
    return VerifyReport(
        ok=out.count == 0,
        problems=out.listed(),
        size=scan.size,
        checkpoints_checked=len(heads),
        unanchored=unanchored,
        notes=[f"unanchored: {unanchored}"],
    )
