"""The rows the metadata store's ports pass: plain frozen dataclasses.

Recordings and bucket KEKs are in ``callvault.core.recordings``; the
Protocols that take and return these rows are in ``callvault.core.ports``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

# --- the audit log -------------------------------------------------------------------


@dataclass(frozen=True)
class AuditRecord:
    """An audit entry as stored: canonical bytes plus columns derived from them."""

    seq: int
    body: bytes
    leaf_hash: bytes
    action: str
    recording_id: uuid.UUID | None
    time: dt.datetime


# --- people, sessions and API tokens --------------------------------------------
# Secrets appear here only as SHA-256 digests (session ids, CSRF tokens, API
# tokens, enrolment links, recovery codes), an Argon2id hash (passwords) or
# sealed (TOTP secrets); see callvault.services.credentials.


@dataclass(frozen=True)
class CareUnitRow:
    id: str
    name: str
    created_at: dt.datetime


@dataclass(frozen=True)
class UserRow:
    """A person's account.  Enrolled once ``password_hash`` is set.

    ``totp_secret`` is sealed; before enrolment finishes it holds the pending
    secret shown at enrolment start.  ``totp_last_step`` is the last TOTP time
    step accepted (replay protection).  ``recovery_hashes`` are the SHA-256
    digests of the unused recovery codes.
    """

    id: uuid.UUID
    username: str
    role: str
    created_at: dt.datetime
    care_units: frozenset[str] = frozenset()
    password_hash: str | None = None
    totp_secret: bytes | None = None
    totp_last_step: int | None = None
    recovery_hashes: tuple[bytes, ...] = ()
    enrol_token_hash: bytes | None = None
    enrol_expires_at: dt.datetime | None = None
    disabled_at: dt.datetime | None = None


@dataclass(frozen=True)
class SessionRow:
    """A browser session; pending its second factor while ``second_factor_at`` is None."""

    id_hash: bytes
    public_id: str
    user_id: uuid.UUID
    csrf_hash: bytes
    created_at: dt.datetime
    last_seen_at: dt.datetime
    second_factor_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None


@dataclass(frozen=True)
class ApiTokenRow:
    id: uuid.UUID
    name: str
    token_hash: bytes
    role: str
    care_unit: str
    created_by: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None


@dataclass(frozen=True)
class ThrottleRow:
    """Failed sign-ins counted under one keyed hash (an account or an address)."""

    key_hash: bytes
    failures: int
    window_start: dt.datetime
    blocked_until: dt.datetime | None = None


@dataclass(frozen=True)
class EmergencyGrantRow:
    """An emergency grant as stored; ``care_units`` None means every unit."""

    care_units: frozenset[str] | None
    reason: str
    opened_at: dt.datetime
    expires_at: dt.datetime


# --- grants, review items and the paged reads of the HTTPS service -----------------


@dataclass(frozen=True)
class AccessGrantRow:
    """Permission to play or download one recording from one session, for a reason.

    ``kind`` is ``play`` or ``download``; valid for ``created_at <= t < expires_at``.
    ``emergency`` is True when only an emergency grant allowed the access.
    """

    id: uuid.UUID
    kind: str
    user_id: uuid.UUID
    session_public_id: str
    recording_id: uuid.UUID
    reason: str
    emergency: bool
    created_at: dt.datetime
    expires_at: dt.datetime


@dataclass(frozen=True)
class ReviewItemRow:
    """Something a log reviewer must look at (R10, R12, R17); open while unresolved."""

    id: int
    kind: str
    audit_seq: int | None
    actor: str
    created_at: dt.datetime
    resolved_at: dt.datetime | None = None
    resolved_by: str | None = None
    outcome: str | None = None
    comment: str | None = None
    recording_id: uuid.UUID | None = None


@dataclass(frozen=True)
class RecordingFilter:
    """What every recording on a page of search results matches.

    Identifiers arrive as blind indexes.  ``care_units`` None means every
    unit; an empty set matches nothing.  Times are half-open
    ``[started_from, started_to)``, durations inclusive.
    """

    care_units: frozenset[str] | None = None
    caller_bidx: bytes | None = None
    pnr_bidx: bytes | None = None
    call_id_bidx: bytes | None = None
    agent: str | None = None
    started_from: dt.datetime | None = None
    started_to: dt.datetime | None = None
    min_duration_ms: int | None = None
    max_duration_ms: int | None = None


@dataclass(frozen=True)
class AuditFilter:
    """Columns an audit page can be narrowed by; times half-open ``[time_from, time_to)``."""

    time_from: dt.datetime | None = None
    time_to: dt.datetime | None = None
    action: str | None = None
    recording_id: uuid.UUID | None = None
