"""Call details: parsed from what people type, sealed before they touch storage.

Identifiers are sealed with the recording's metadata key (derived from its
DEK, so shredding the DEK shreds them) and indexed with keyed blind indexes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass

from callvault.core import identifiers as ids
from callvault.core import keys as hierarchy
from callvault.core.errors import InvalidInput
from callvault.core.recordings import validate_agent, validate_care_unit
from callvault.services.context import Vault

_CALL_ID = re.compile(r"\A[\x21-\x7e]{1,128}\Z")


@dataclass(frozen=True)
class CallDetails:
    """Validated details of one call; personal values are in memory only."""

    care_unit: str
    started_at: dt.datetime
    caller: ids.PhoneNumber | None = None
    personnummer: ids.PersonalNumber | None = None
    agent: str | None = None
    call_id: str | None = None
    retention_class: str = "record"

    @classmethod
    def parse(
        cls,
        *,
        care_unit: str,
        started_at: str | dt.datetime,
        today: dt.date,
        caller: str | None = None,
        personnummer: str | None = None,
        agent: str | None = None,
        call_id: str | None = None,
        retention_class: str = "record",
    ) -> CallDetails:
        return cls(
            care_unit=validate_care_unit(care_unit),
            started_at=parse_timestamp(started_at),
            caller=ids.PhoneNumber.parse(caller) if caller else None,
            personnummer=ids.PersonalNumber.parse(personnummer, today=today)
            if personnummer
            else None,
            agent=validate_agent(agent) if agent else None,
            call_id=_call_id(call_id) if call_id else None,
            retention_class=retention_class,
        )


def parse_timestamp(value: str | dt.datetime) -> dt.datetime:
    """An ISO 8601 time with an explicit offset; naive times are refused."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput("time must be ISO 8601, e.g. 2019-02-18T10:22:00+01:00") from None
    if value.tzinfo is None:
        raise InvalidInput("time needs a UTC offset, e.g. 2019-02-18T10:22:00+01:00")
    return value.astimezone(dt.UTC)


def _call_id(text: str) -> str:
    value = text.strip()
    if not _CALL_ID.match(value):
        raise InvalidInput("call id must be 1-128 printable characters without spaces")
    return value


@dataclass(frozen=True)
class SealedDetails:
    caller_bidx: bytes | None
    pnr_bidx: bytes | None
    call_id_bidx: bytes | None
    enc_caller: bytes | None
    enc_pnr: bytes | None
    enc_call_id: bytes | None
    enc_peaks: bytes


def seal_details(
    vault: Vault, details: CallDetails, recording_id: uuid.UUID, dek: bytes, peaks: bytes
) -> SealedDetails:
    key = hierarchy.metadata_key(dek, recording_id)
    index_key = vault.keys.index_key()

    def seal(name: str, value: str | None) -> bytes | None:
        return (
            None if value is None else ids.seal_field(key, value, ids.field_ad(recording_id, name))
        )

    caller = details.caller.value if details.caller else None
    pnr = details.personnummer.value if details.personnummer else None
    return SealedDetails(
        caller_bidx=ids.blind_index(index_key, "phone", caller) if caller else None,
        pnr_bidx=ids.blind_index(index_key, "pnr", pnr) if pnr else None,
        call_id_bidx=call_id_index(index_key, details.call_id) if details.call_id else None,
        enc_caller=seal("caller", caller),
        enc_pnr=seal("pnr", pnr),
        enc_call_id=seal("call_id", details.call_id),
        enc_peaks=hierarchy.seal(key, peaks, peaks_ad(recording_id)),
    )


_PEAKS_DOMAIN = b"callvault/peaks/v1\x00"


def peaks_ad(recording_id: uuid.UUID) -> bytes:
    """Associated data of a recording's sealed waveform peaks.

    ``"callvault/peaks/v1" 0x00 ‖ recording uuid (16) ‖ "peaks"``: the peaks are
    sealed as raw bytes with :func:`callvault.core.keys.seal` under the same
    per-recording metadata key as the text fields, so the domain keeps them
    apart from every field sealed by :func:`~callvault.core.identifiers.seal_field`.
    The blob is ``nonce(12) ‖ ciphertext(len(peaks)) ‖ tag(16)``.
    """
    return _PEAKS_DOMAIN + ids.field_ad(recording_id, "peaks")


def open_peaks(recording_id: uuid.UUID, dek: bytes, enc_peaks: bytes) -> bytes:
    """The stored peaks bytes; ``IntegrityError`` if the blob or its binding was altered."""
    key = hierarchy.metadata_key(dek, recording_id)
    return hierarchy.unseal(key, enc_peaks, peaks_ad(recording_id))


def call_id_index(index_key: bytes, call_id: str) -> bytes:
    message = b"callvault/call_id\x00" + call_id.encode("utf-8")
    return hmac.new(index_key, message, hashlib.sha256).digest()[:16]


@dataclass(frozen=True)
class OpenedDetails:
    caller: str | None
    personnummer: str | None
    call_id: str | None


def open_details(
    recording_id: uuid.UUID,
    dek: bytes,
    enc_caller: bytes | None,
    enc_pnr: bytes | None,
    enc_call_id: bytes | None,
) -> OpenedDetails:
    key = hierarchy.metadata_key(dek, recording_id)

    def unseal(name: str, blob: bytes | None) -> str | None:
        return None if blob is None else ids.open_field(key, blob, ids.field_ad(recording_id, name))

    return OpenedDetails(
        unseal("caller", enc_caller), unseal("pnr", enc_pnr), unseal("call_id", enc_call_id)
    )
