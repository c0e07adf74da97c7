"""A per-process memory of passed playback checks, held for one second.

A player seeks and buffers: one playback grant brings a range request every
few seconds per listener, and bursts when someone drags the slider.  Each
request, checked in full, resolves the session, re-checks the role, the
care unit and the grant, and unwraps the DEK: nine SQL statements to send
64 KiB.  When such a check passes, its outcome (the principal, the row, the
DEK and the object's checked length) is kept here for at most
:data:`HOLD`, measured both on the monotonic clock and on the vault's
clock, keyed by the digest of the session cookie and the recording id.  A
range asked for within that second is served from memory.

What the second costs, and why it is bounded so tightly:

* a logout, a disabled account or a reset second factor in *this* process
  forgets at once (:meth:`PlayCache.forget_session`, :meth:`PlayCache.clear`);
  on another API node they take effect within :data:`HOLD`;
* an expired grant, session or emergency access is noticed at most
  :data:`HOLD` late (and a vault clock that jumps, as in tests, misses);
* a DEK stays in memory at most :data:`HOLD` after its last use, against a
  grant's ten minutes during which any request could unwrap it anyway.

Bearer tokens are never remembered: no token may play.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from callvault.core.access import Principal
from callvault.core.recordings import RecordingRow

HOLD = dt.timedelta(seconds=1)
MAX_ENTRIES = 4096


@dataclass(frozen=True)
class PassedCheck:
    """What a full playback check established for one session and recording."""

    principal: Principal
    row: RecordingRow
    dek: bytes
    ciphertext_size: int


@dataclass(frozen=True)
class _Entry:
    check: PassedCheck
    session_digest: bytes
    checked_at: dt.datetime  # vault time
    until: float  # monotonic


class PlayCache:
    """Passed playback checks by (session digest, recording id); thread-safe."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._entries: dict[tuple[bytes, uuid.UUID], _Entry] = {}
        self._lock = threading.Lock()
        self._monotonic = monotonic

    def recall(
        self, session_digest: bytes, recording_id: uuid.UUID, now: dt.datetime
    ) -> PassedCheck | None:
        key = (session_digest, recording_id)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._monotonic() < entry.until and entry.checked_at <= now < entry.checked_at + HOLD:
            return entry.check
        with self._lock:
            if self._entries.get(key) is entry:
                del self._entries[key]
        return None

    def remember(self, session_digest: bytes, check: PassedCheck, now: dt.datetime) -> None:
        entry = _Entry(check, session_digest, now, self._monotonic() + HOLD.total_seconds())
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                # Entries live a second: a full table is a burst, not a working set.
                self._entries.clear()
            self._entries[(session_digest, check.row.id)] = entry

    def forget_session(self, session_digest: bytes) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[0] == session_digest]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
