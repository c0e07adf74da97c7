"""Audit entries and their closed vocabulary.

An entry (``AuditEvent``) records who did what to which recording, when, why
and with what outcome, and nothing personal: names and free text are
screened for anything that looks like a phone number or personnummer before
an event can exist.  The log is append-only and tamper-evident, so an
identifier that got in could never be taken out again.

The log is a Merkle tree (``callvault.core.merkle``) whose leaf ``i`` is
``leaf_hash(canonical_bytes())`` of the entry with seq ``i``: seq is the
0-based leaf index.  ``callvault.core.audit_verify`` checks the whole log.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from callvault.core.errors import AuditTampered, InvalidInput

__all__ = [
    "Action",
    "AuditEvent",
    "DetailValue",
    "Outcome",
    "contains_personal_identifier",
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
    POLICY_LIST = "policy:list"  # recording policies read (R19)
    RECORDING_HOLD = "recording:hold"  # a legal hold set (R20)
    HOLD_LIST = "hold:list"  # the legal holds in force, read (R20)
    RECORDING_RELEASE = "recording:release"  # a legal hold released (R20)
    KEY_DESTROY = "key:destroy"  # a bucket KEK destroyed: a whole bucket shredded (R20)
    RETENTION_SWEEP = "retention:sweep"  # one retention sweep, its counts (R20)
    SUBJECT_ERASE = "subject:erase"  # an Art. 17 erasure request, its counts (R21)
    AUDIT_EXTRACT = "audit:extract"  # a patient's log extract produced (R18)
    SUBJECT_EXPORT = "subject:export"  # one recording put in a caller's Art. 15 copy (R21)
    REVIEW_RUN = "review:run"  # a systematic log review run (R17)
    REVIEW_READ = "review:read"  # review items listed, or the monthly report
    REVIEW_RESOLVE = "review:resolve"  # a review item's outcome recorded
    BREACH_REPORT = "breach:report"  # an Art. 33 breach report (R22)
    IMPORT_RUN = "import:run"  # a legacy archive import; detail step: start | finish


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
