"""Audit entries, their closed vocabulary, and verification of the whole log.

An entry (``AuditEvent``) records who did what to which recording, when, why
and with what outcome, and nothing personal: names and free text are
screened for anything that looks like a phone number or personnummer before
an event can exist.  The log is append-only and tamper-evident, so an
identifier that got in could never be taken out again.

The log is a Merkle tree (``callvault.core.merkle``) whose leaf ``i`` is
``leaf_hash(canonical_bytes())`` of the entry with seq ``i``: seq is the
0-based leaf index.  ``verify_log`` re-reads every entry and every signed
checkpoint and names, by seq and never by content, each entry that was
changed, removed, reordered or inserted.
"""

from __future__ import annotations

import bisect
import datetime as dt
import enum
import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from callvault.core.errors import AuditTampered, InvalidInput
from callvault.core.merkle import (
    EMPTY_ROOT,
    Checkpoint,
    Frontier,
    parse_and_verify_checkpoint,
    parse_verifier_key,
    public_key_from_seed,
    sign_checkpoint,
    verifier_key_string,
)

__all__ = [
    "Action",
    "AuditEvent",
    "Checkpoint",
    "DetailValue",
    "Outcome",
    "VerifyReport",
    "contains_personal_identifier",
    "parse_and_verify_checkpoint",
    "parse_verifier_key",
    "public_key_from_seed",
    "sign_checkpoint",
    "verifier_key_string",
    "verify_log",
]


class Action(enum.StrEnum):
    """The closed vocabulary of audited actions, as ``subject:action`` tags.

    The values are written into the log: never rename or reuse one.
    """

    RECORDING_INGEST = "recording:ingest"
    RECORDING_SEARCH = "recording:search"
    RECORDING_VIEW = "recording:view"  # metadata shown
    RECORDING_PLAY = "recording:play"
    RECORDING_DOWNLOAD = "recording:download"
    RECORDING_EXPORT = "recording:export"
    RECORDING_SHRED = "recording:shred"
    RECORDING_VERIFY = "recording:verify"
    KEY_ROTATE = "key:rotate"
    KEY_STATUS = "key:status"
    KEY_INIT = "key:init"
    AUDIT_VERIFY = "audit:verify"
    AUDIT_CHECKPOINT = "audit:checkpoint"
    AUDIT_READ = "audit:read"
    VAULT_INIT = "vault:init"
    VAULT_VERIFY = "vault:verify"
    AUTH_LOGIN = "auth:login"
    AUTH_LOGIN_FAILED = "auth:login_failed"
    AUTH_LOGOUT = "auth:logout"
    ACCESS_DENIED = "access:denied"
    USER_CHANGE = "user:change"
    POLICY_CHANGE = "policy:change"
    USER_CREATE = "user:create"
    USER_ENROL = "user:enrol"  # detail step: start | finish
    USER_RESET = "user:reset"  # a new enrolment link; password and TOTP cleared
    USER_DISABLE = "user:disable"
    USER_LIST = "user:list"
    UNIT_CREATE = "unit:create"
    UNIT_LIST = "unit:list"
    TOKEN_CREATE = "token:create"  # noqa: S105 (an action name, not a secret)
    TOKEN_REVOKE = "token:revoke"  # noqa: S105
    TOKEN_LIST = "token:list"  # noqa: S105
    AUTH_PASSWORD = "auth:password"  # noqa: S105 (first factor accepted, second pending)
    AUTH_TOTP_FAILED = "auth:totp_failed"
    ACCESS_EMERGENCY = "access:emergency"  # an emergency grant opened (flagged, reviewed)
    ALERT_RATE_LIMIT = "alert:rate_limit"  # a play or download limit was crossed


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    FAILED = "failed"


DetailValue = str | int | bool | None

# --- screening for personal identifiers --------------------------------------

# A run of digits joined by up to three separators, so that "070-123 45 67",
# "+46 (0)70 123 45 67" and "850115-1234" are each one run.  Linear time:
# the separator class and \d are disjoint.
_DIGIT_RUN = re.compile(r"\d(?:[\s\-./()+]{0,3}\d)*")
_DIGIT = re.compile(r"\d")
# Eight digits are the shortest phone number with area code and the date part
# of a 12-digit personnummer.  An ISO date on its own is let through so users
# can date a reason; anything touching it (such as "-1234") joins the run.
_MAX_RUN_DIGITS = 7
_ISO_DATE = re.compile(r"\A(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])\Z")
_ACTOR_DIGITS = re.compile(r"\d{6}")
_DETAIL_KEY = re.compile(r"\A[a-z][a-z0-9_]{0,31}\Z")
_MAX_DETAIL_ITEMS = 16
_MAX_DETAIL_INT = 10**_MAX_RUN_DIGITS - 1


def contains_personal_identifier(text: str) -> bool:
    """True if ``text`` holds 8 or more digits in one (separated) run.

    Deliberately over-broad: it catches every personnummer, samordningsnummer
    and Swedish or E.164 phone number in the usual spellings, at the price of
    refusing long case numbers, which a reason can carry in words instead.
    """
    for match in _DIGIT_RUN.finditer(text):
        run = match.group()
        if len(_DIGIT.findall(run)) > _MAX_RUN_DIGITS and not _ISO_DATE.match(run):
            return True
    return False


def _text(value: object, name: str, limit: int, *, optional: bool = False) -> str | None:
    """Validate one string field; messages name the field, never echo the value."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise InvalidInput(f"{name} must be text of 1 to {limit} characters")
    if not value.isprintable():
        raise InvalidInput(f"{name} must be printable text on one line")
    if contains_personal_identifier(value):
        raise InvalidInput(f"{name} must not contain personal identifiers")
    return value


def _session(value: object) -> str | None:
    # A session handle is random (hex from secrets), so a digit-run screen
    # would refuse a fair share of genuine ones; it is checked for shape only.
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
        raise InvalidInput("session must be an opaque token of 1 to 64 characters")
    return value


def _detail(value: object) -> Mapping[str, DetailValue]:
    if not isinstance(value, Mapping) or len(value) > _MAX_DETAIL_ITEMS:
        raise InvalidInput(f"detail must be a mapping of at most {_MAX_DETAIL_ITEMS} items")
    clean: dict[str, DetailValue] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not _DETAIL_KEY.match(key):
            raise InvalidInput("detail keys must be short lowercase identifiers")
        _text(key, "detail", 32)
        if isinstance(item, bool) or item is None:
            clean[key] = item
        elif isinstance(item, int):
            # An int is screened like text: 8 digits could be an identifier.
            if abs(item) > _MAX_DETAIL_INT:
                raise InvalidInput("detail must not contain personal identifiers")
            clean[key] = int(item)
        else:
            clean[key] = _text(item, "detail", 200)
    return MappingProxyType(clean)


def _format_time(t: dt.datetime) -> str:
    # Formatted by hand: strftime("%Y") does not zero-pad years below 1000.
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T"
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}.{t.microsecond:06d}Z"
    )


_TIME = re.compile(r"\A(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{6})Z\Z", re.ASCII)
_FIELDS = {
    "v", "time", "actor", "role", "care_unit", "action", "recording_id",
    "outcome", "reason", "session", "detail",
}  # fmt: skip
_VERSION = 1


def _parse_time(text: object) -> dt.datetime:
    match = _TIME.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError("bad time")
    year, month, day, hour, minute, second, micro = (int(p) for p in match.groups())
    return dt.datetime(year, month, day, hour, minute, second, micro, tzinfo=dt.UTC)


# --- the entry ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AuditEvent:
    """One audit entry, PHI-free by construction.

    ``time`` must be timezone-aware (it is kept in UTC); ``actor``, ``role``
    and ``care_unit`` are short names (actor: no run of 6 digits); ``reason``
    is the user's typed purpose, at most 500 characters; ``detail`` holds up
    to 16 non-personal extras such as counts (ints of at most 7 digits).
    Every string is printable, single-line and free of anything that looks
    like a phone number or personnummer.  ``InvalidInput`` otherwise.
    """

    time: dt.datetime
    actor: str
    role: str
    action: Action
    outcome: Outcome
    care_unit: str | None = None
    recording_id: uuid.UUID | None = None
    reason: str | None = None
    session: str | None = None
    detail: Mapping[str, DetailValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.time, dt.datetime) or self.time.utcoffset() is None:
            raise InvalidInput("audit time must be a timezone-aware datetime")
        self._set("time", self.time.astimezone(dt.UTC))
        actor = _text(self.actor, "actor", 64)
        if _ACTOR_DIGITS.search(self.actor):
            raise InvalidInput("actor must not contain personal identifiers")
        self._set("actor", actor)
        self._set("role", _text(self.role, "role", 64))
        self._set("care_unit", _text(self.care_unit, "care unit", 64, optional=True))
        self._set("reason", _text(self.reason, "reason", 500, optional=True))
        self._set("session", _session(self.session))
        self._set("detail", _detail(self.detail))
        try:
            self._set("action", Action(self.action))
            self._set("outcome", Outcome(self.outcome))
        except ValueError:
            raise InvalidInput("unknown audit action or outcome") from None
        if self.recording_id is not None and not isinstance(self.recording_id, uuid.UUID):
            raise InvalidInput("recording id must be a UUID")

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)  # normalising inside a frozen dataclass

    def canonical_bytes(self) -> bytes:
        """The stable encoding that is hashed into the log.

        ASCII JSON, keys sorted, no whitespace, time as
        ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, a format version ``"v": 1``.
        """
        doc: dict[str, Any] = {
            "v": _VERSION,
            "time": _format_time(self.time),
            "actor": self.actor,
            "role": self.role,
            "care_unit": self.care_unit,
            "action": self.action.value,
            "recording_id": None if self.recording_id is None else str(self.recording_id),
            "outcome": self.outcome.value,
            "reason": self.reason,
            "session": self.session,
            "detail": dict(self.detail),
        }
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return text.encode("ascii")

    @classmethod
    def from_canonical(cls, data: bytes) -> AuditEvent:
        """Decode ``canonical_bytes``; ``AuditTampered`` unless ``data`` is
        exactly the canonical encoding of a valid event."""
        try:
            doc = json.loads(data.decode("ascii"))
            if not isinstance(doc, dict) or set(doc) != _FIELDS or doc["v"] != _VERSION:
                raise ValueError("bad shape")
            rid = doc["recording_id"]
            event = cls(
                time=_parse_time(doc["time"]),
                actor=doc["actor"],
                role=doc["role"],
                care_unit=doc["care_unit"],
                action=doc["action"],
                recording_id=None if rid is None else uuid.UUID(rid),
                outcome=doc["outcome"],
                reason=doc["reason"],
                session=doc["session"],
                detail=doc["detail"],
            )
        except (ValueError, TypeError, AttributeError, InvalidInput):
            raise AuditTampered("malformed audit entry") from None
        if event.canonical_bytes() != data:
            raise AuditTampered("audit entry is not in canonical form")
        return event

    def __hash__(self) -> int:
        return hash(self.canonical_bytes())


# --- verification -----------------------------------------------------------------

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
