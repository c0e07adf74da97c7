"""Recording identity and generated names.

Recording ids are UUIDv4 (122 random bits); object names are 128 random bits
in hex.  Neither carries or derives from any personal data, and neither can
be guessed from the other.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import uuid
from dataclasses import dataclass

from callvault.core.errors import InvalidInput

OBJECT_NAME_RE = re.compile(r"\A[0-9a-f]{32}\Z")


def new_recording_id() -> uuid.UUID:
    return uuid.uuid4()


def new_object_name() -> str:
    return secrets.token_hex(16)


def validate_object_name(name: str) -> str:
    """Refuse anything but a generated object name, before any I/O."""
    if not isinstance(name, str) or not OBJECT_NAME_RE.match(name):
        raise InvalidInput("malformed object name")
    return name


def parse_recording_id(text: str) -> uuid.UUID:
    """Parse a recording id given by a user; only canonical UUIDv4 is accepted."""
    try:
        value = uuid.UUID(text.strip())
    except (ValueError, AttributeError):
        raise InvalidInput("not a recording id") from None
    if value.version != 4:
        raise InvalidInput("not a recording id")
    return value


CARE_UNIT_RE = re.compile(r"\A[a-z0-9][a-z0-9._-]{0,63}\Z")
AGENT_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._@-]{0,63}\Z")
RETENTION_CLASSES = ("record", "quality", "hold")


def validate_care_unit(text: str) -> str:
    """Care units are short lowercase slugs (``1177-sthlm``); never free text."""
    value = text.strip().lower()
    if not CARE_UNIT_RE.match(value):
        raise InvalidInput("care unit must be a short slug of a-z, 0-9, '.', '_' or '-'")
    _refuse_identifier_like(value, "care unit")
    return value


def validate_agent(text: str) -> str:
    value = text.strip()
    if not AGENT_RE.match(value):
        raise InvalidInput(
            "agent must be a short user name of letters, digits, '.', '_', '@' or '-'"
        )
    _refuse_identifier_like(value, "agent")
    return value


def validate_retention_class(text: str) -> str:
    if text not in RETENTION_CLASSES:
        raise InvalidInput(f"retention class must be one of {', '.join(RETENTION_CLASSES)}")
    return text


_DIGIT_RUN = re.compile(r"\d{6,}")


def _refuse_identifier_like(value: str, field: str) -> None:
    # Plaintext columns must never carry a phone number or personnummer, even
    # by accident: a long digit run is refused outright.
    if _DIGIT_RUN.search(value):
        raise InvalidInput(f"{field} must not contain long digit runs (personal identifiers)")


# --- stored rows -----------------------------------------------------------

PENDING = "pending"
ACTIVE = "active"


@dataclass(frozen=True)
class RecordingRow:
    """One recording as the metadata store holds it: no plaintext identifiers.

    ``state`` is ``pending`` from the moment an ingest has claimed an object
    name until the object is durable and authenticated; pending rows are
    never shown, searched or served.
    """

    id: uuid.UUID
    state: str
    object_name: str
    fingerprint: bytes
    bucket_kek_id: int
    dek_id: bytes
    wrapped_dek: bytes
    commitment: bytes
    media_type: str
    container: str
    codec: str
    sample_rate: int
    channels: int
    frames: int
    duration_ms: int
    plaintext_size: int
    ciphertext_size: int | None
    ciphertext_sha256: bytes | None
    care_unit: str
    agent: str | None
    started_at: dt.datetime
    retention_class: str
    created_at: dt.datetime
    caller_bidx: bytes | None = None
    pnr_bidx: bytes | None = None
    call_id_bidx: bytes | None = None
    enc_caller: bytes | None = None
    enc_pnr: bytes | None = None
    enc_call_id: bytes | None = None
    enc_peaks: bytes | None = None


@dataclass(frozen=True)
class BucketKekRow:
    """A bucket KEK (call month x retention class, versioned), wrapped by a root KEK."""

    id: int
    month: str
    retention_class: str
    version: int
    root_version: int
    wrapped: bytes
    created_at: dt.datetime


@dataclass(frozen=True)
class SearchCriteria:
    """Exact-match criteria; identifiers arrive already as blind indexes."""

    caller_bidx: bytes | None = None
    pnr_bidx: bytes | None = None
    call_id_bidx: bytes | None = None
    care_unit: str | None = None
    agent: str | None = None
    started_from: dt.datetime | None = None
    started_to: dt.datetime | None = None
    limit: int = 100

    def is_empty(self) -> bool:
        return not any(
            (
                self.caller_bidx,
                self.pnr_bidx,
                self.call_id_bidx,
                self.care_unit,
                self.agent,
                self.started_from,
                self.started_to,
            )
        )
