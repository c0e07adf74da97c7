"""Background jobs: their kinds, states, payloads and retry policy (pure domain).

A job's payload carries ids and counters only, never personal data: it is
stored in clear in the job table and shown by ``callvault jobs``.  Payloads
are validated here, before any queue sees them.  A job that touches one
recording carries that recording's lock key, so two jobs never work on one
recording at the same time.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from callvault.core.errors import InvalidInput


class JobKind(enum.StrEnum):
    """Every kind of job a worker runs.  Values are stored: never rename one."""

    SCRUB = "scrub"  # plan: split the id space and queue one scrub_range per part (R23)
    SCRUB_RANGE = "scrub_range"  # re-verify every object in one recording id range (R23)
    RETENTION_SWEEP = "retention_sweep"  # crypto-shred what is due (R20)
    KEY_REWRAP = "key_rewrap"  # finish moving DEKs and bucket KEKs to current key versions
    PEAKS = "peaks"  # plan: queue one peaks_recording per recording without peaks
    PEAKS_RECORDING = "peaks_recording"  # derive and seal one recording's waveform peaks
    IMPORT_CHUNK = "import_chunk"  # hook for the legacy import (see docs/jobs.md)


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # attempts used up; kept for the operator to see


# Payload keys and what their values may be.  Anything else is refused.
_UUID_KEYS = frozenset({"recording_id", "lo", "hi", "after"})
_INT_KEYS = frozenset({"checked", "problems", "done", "parts", "chunk", "import_id"})
_MAX_INT = 2**62
_KEY = re.compile(r"\A[a-z][a-z0-9_]{0,31}\Z")
_LOCK = re.compile(r"\A[a-z][a-z0-9_]{0,23}:[0-9a-f-]{1,40}\Z|\A[a-z][a-z0-9_]{0,31}\Z")
_ERROR_CODE = re.compile(r"\A[a-z][a-z0-9_]{0,47}\Z")

Payload = Mapping[str, str | int]


def validate_payload(payload: Mapping[str, object]) -> dict[str, str | int]:
    """A payload of ids and counters only; ``InvalidInput`` names the key, never a value."""
    if not isinstance(payload, Mapping) or len(payload) > 8:
        raise InvalidInput("a job payload is at most 8 ids or counters")
    clean: dict[str, str | int] = {}
    for key, value in payload.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise InvalidInput("a job payload key must be a plain lower-case name")
        if key in _UUID_KEYS:
            if not isinstance(value, str):
                raise InvalidInput(f"job payload {key} must be an id")
            try:
                clean[key] = str(uuid.UUID(value))
            except ValueError:
                raise InvalidInput(f"job payload {key} must be an id") from None
        elif key in _INT_KEYS:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_INT:
                raise InvalidInput(f"job payload {key} must be a non-negative number")
            clean[key] = value
        else:
            raise InvalidInput(f"job payload key {key} is not an id or counter")
    return clean


def encode_payload(payload: Payload) -> str:
    return json.dumps(dict(payload), sort_keys=True, separators=(",", ":"))


def decode_payload(text: str | None) -> dict[str, str | int]:
    if not text:
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise InvalidInput("a stored job payload is not an object")
    return validate_payload(value)


def validate_lock(key: str | None) -> str | None:
    """A lock or queueing key: ``name`` or ``name:hex-id``; nothing personal fits."""
    if key is None:
        return None
    if not isinstance(key, str) or not _LOCK.match(key):
        raise InvalidInput("a job lock key must be a name or name:id")
    return key


def recording_lock(recording_id: uuid.UUID) -> str:
    """The lock every job touching one recording takes: one at a time per recording."""
    return f"recording:{recording_id}"


def error_code(code: str) -> str:
    """What a failed job keeps of its error: a stable code, never a message."""
    return code if isinstance(code, str) and _ERROR_CODE.match(code) else "internal_error"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``base * 2 ** (attempt - 1)`` seconds, capped."""

    max_attempts: int = 5
    base_seconds: float = 10.0
    cap_seconds: float = 3600.0

    def delay(self, attempt: int) -> dt.timedelta:
        seconds = min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempt - 1))
        return dt.timedelta(seconds=seconds)


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class JobInfo:
    """What ``callvault jobs`` and the admin page show of one job."""

    id: int
    kind: str
    state: JobState
    attempts: int
    max_attempts: int
    progress_done: int
    progress_total: int | None
    last_error: str | None
    lock: str | None
    created_at: dt.datetime
    run_after: dt.datetime
    updated_at: dt.datetime
    payload: dict[str, str | int] = field(default_factory=dict)
    started_at: dt.datetime | None = None  # when the latest attempt began


@dataclass(frozen=True)
class ClaimedJob:
    """A job a worker holds a lease on, with the cursor a previous attempt saved."""

    id: int
    kind: str
    payload: dict[str, str | int]
    attempt: int
    max_attempts: int
    cursor: dict[str, str | int]


@dataclass(frozen=True)
class Schedule:
    """A periodic job: ``kind`` queued once per ``every`` (slots counted from the epoch)."""

    kind: JobKind
    every: dt.timedelta

    def slot(self, now: dt.datetime) -> int:
        return int(now.timestamp() // self.every.total_seconds())


def schedules(scrub_hours: int, sweep_minutes: int) -> list[Schedule]:
    """The periodic jobs; an interval of 0 turns that schedule off."""
    out = []
    if scrub_hours > 0:
        out.append(Schedule(JobKind.SCRUB, dt.timedelta(hours=scrub_hours)))
    if sweep_minutes > 0:
        out.append(Schedule(JobKind.RETENTION_SWEEP, dt.timedelta(minutes=sweep_minutes)))
    return out


def parse_kind(text: str) -> JobKind:
    try:
        return JobKind(text)
    except ValueError:
        raise InvalidInput(
            "unknown job kind (one of: " + ", ".join(k.value for k in JobKind) + ")"
        ) from None


def id_ranges(parts: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Split the UUID space into ``parts`` closed ranges ``[lo, hi]`` by their top bits."""
    if isinstance(parts, bool) or not isinstance(parts, int) or not 1 <= parts <= 4096:
        raise InvalidInput("parts must be 1 to 4096")
    top = 1 << 128
    starts = [top * i // parts for i in range(parts)] + [top]
    return [(uuid.UUID(int=starts[i]), uuid.UUID(int=starts[i + 1] - 1)) for i in range(parts)]


class JobInterrupted(Exception):
    """Raised by a handler that saw ``stopping()``: the job goes back to the queue
    unharmed, its attempt not counted, to resume from its last cursor."""
