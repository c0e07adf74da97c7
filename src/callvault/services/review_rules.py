"""The rules of the systematic log review (R17): which accesses a reviewer must look at.

Pure functions over audit entries already read: no database, no clock.
Each finding names a rule (``kind``), the entry (by seq) and the recording.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
import zoneinfo
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from callvault.core.access import Role
from callvault.core.audit import Action, AuditEvent, Outcome
from callvault.core.errors import InvalidInput

# Rule names, stored in review_items.kind: never rename one.
SAMPLE: Final = "sample"
AFTER_HOURS: Final = "after_hours"
VOLUME: Final = "volume"
EMERGENCY: Final = "emergency"
OTHER_UNIT: Final = "other_unit"
MANY_USERS: Final = "many_users"
RULES: Final = (SAMPLE, AFTER_HOURS, VOLUME, EMERGENCY, OTHER_UNIT, MANY_USERS)

# Accesses to recordings: what the review looks at.
ACCESSES: Final = frozenset(
    {
        Action.RECORDING_VIEW,
        Action.RECORDING_PLAY,
        Action.RECORDING_DOWNLOAD,
        Action.RECORDING_EXPORT,
        Action.SUBJECT_EXPORT,
        Action.ACCESS_EMERGENCY,
    }
)
# Roles whose work is vault-wide by definition: never "outside their unit".
_VAULT_WIDE = frozenset({Role.PRIVACY_OFFICER, Role.LOG_REVIEWER, Role.OPERATOR})


@dataclass(frozen=True)
class ReviewRules:
    """Thresholds of one review; the defaults suit a regional advice line."""

    sample_share: float = 0.02
    timezone: str = "Europe/Stockholm"
    work_start_hour: int = 7
    work_end_hour: int = 18
    max_plays_per_day: int = 30
    max_users_per_recording: int = 5

    def __post_init__(self) -> None:
        if not 0 <= self.sample_share <= 1:
            raise InvalidInput("sample share must be between 0 and 1")
        if not 0 <= self.work_start_hour < self.work_end_hour <= 24:
            raise InvalidInput("working hours must be 0 <= start < end <= 24")
        if self.max_plays_per_day < 1 or self.max_users_per_recording < 1:
            raise InvalidInput("review thresholds must be at least 1")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise InvalidInput("unknown time zone") from None


@dataclass(frozen=True)
class Finding:
    kind: str
    seq: int
    actor: str
    recording_id: uuid.UUID | None


Entry = tuple[int, AuditEvent]


def sampled(key: bytes, seq: int, share: float) -> bool:
    """A keyed, repeatable draw: the same entries are sampled if the review runs
    again, and nobody without the key can tell which will be."""
    mac = hmac.new(key, b"callvault/review-sample\x00" + seq.to_bytes(8, "big"), hashlib.sha256)
    return int.from_bytes(mac.digest()[:8], "big") < share * 2**64


def find(
    entries: Iterable[Entry],
    rules: ReviewRules,
    sample_key: bytes,
    units_of: Callable[[str], frozenset[str] | None],
    unit_of_recording: Callable[[uuid.UUID], str | None],
) -> list[Finding]:
    """Every finding over ``entries`` (accesses only; others are skipped).

    ``units_of(actor)`` gives a user's care units (None: not a user, such as
    a token); ``unit_of_recording`` a recording's unit (None: gone).
    """
    zone = zoneinfo.ZoneInfo(rules.timezone)
    plays: dict[tuple[str, dt.date], int] = defaultdict(int)
    players: dict[uuid.UUID, set[str]] = defaultdict(set)
    out: list[Finding] = []
    for seq, e in entries:
        if e.action not in ACCESSES or e.outcome != Outcome.SUCCESS:
            continue

        def hit(kind: str, seq: int = seq, e: AuditEvent = e) -> None:
            out.append(Finding(kind, seq, e.actor, e.recording_id))

        local = e.time.astimezone(zone)
        if sampled(sample_key, seq, rules.sample_share):
            hit(SAMPLE)
        if local.weekday() >= 5 or not rules.work_start_hour <= local.hour < rules.work_end_hour:
            hit(AFTER_HOURS)
        if e.action == Action.ACCESS_EMERGENCY or e.detail.get("emergency") is True:
            hit(EMERGENCY)
        if e.recording_id is not None and e.role not in _VAULT_WIDE:
            unit, mine = unit_of_recording(e.recording_id), units_of(e.actor)
            if unit is not None and mine is not None and unit not in mine:
                hit(OTHER_UNIT)
        if e.action == Action.RECORDING_PLAY and e.recording_id is not None:
            plays[(e.actor, local.date())] += 1
            if plays[(e.actor, local.date())] == rules.max_plays_per_day + 1:
                hit(VOLUME)
            before = len(players[e.recording_id])
            players[e.recording_id].add(e.actor)
            if before == rules.max_users_per_recording < len(players[e.recording_id]):
                hit(MANY_USERS)
    return out
