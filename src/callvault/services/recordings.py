"""Finding, showing and exporting recordings; every call writes its audit entry."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from callvault.core import format as cv1
from callvault.core import identifiers as ids
from callvault.core.access import Principal
from callvault.core.audit import Action, Outcome
from callvault.core.errors import IntegrityError, InvalidInput, NotFound
from callvault.core.recordings import (
    ACTIVE,
    RecordingRow,
    SearchCriteria,
    validate_agent,
    validate_care_unit,
)
from callvault.services import audit, keyring
from callvault.services.context import Vault
from callvault.services.details import OpenedDetails, call_id_index, open_details, parse_timestamp

MAX_RESULTS = 1000


@dataclass(frozen=True)
class SearchQuery:
    """Search input as typed; identifiers are normalised, then blind-indexed."""

    caller: str | None = None
    personnummer: str | None = None
    call_id: str | None = None
    care_unit: str | None = None
    agent: str | None = None
    started_from: str | None = None
    started_to: str | None = None
    limit: int = 100


@dataclass(frozen=True)
class Summary:
    id: uuid.UUID
    started_at: dt.datetime
    care_unit: str
    agent: str | None
    duration_seconds: float
    media_type: str


def search(vault: Vault, principal: Principal, query: SearchQuery) -> list[Summary]:
    criteria = _criteria(vault, query)
    with vault.store.transaction() as tx:
        rows = tx.search(criteria)
        audit.record(vault, tx, principal, Action.RECORDING_SEARCH, detail={"results": len(rows)})
    return [_summary(row) for row in rows]


def _criteria(vault: Vault, q: SearchQuery) -> SearchCriteria:
    if not 1 <= q.limit <= MAX_RESULTS:
        raise InvalidInput(f"limit must be between 1 and {MAX_RESULTS}")
    key = vault.keys.index_key()
    today = vault.now().date()
    criteria = SearchCriteria(
        caller_bidx=ids.blind_index(key, "phone", ids.PhoneNumber.parse(q.caller).value)
        if q.caller
        else None,
        pnr_bidx=ids.blind_index(
            key, "pnr", ids.PersonalNumber.parse(q.personnummer, today=today).value
        )
        if q.personnummer
        else None,
        call_id_bidx=call_id_index(key, q.call_id.strip()) if q.call_id else None,
        care_unit=validate_care_unit(q.care_unit) if q.care_unit else None,
        agent=validate_agent(q.agent) if q.agent else None,
        started_from=_day_or_time(q.started_from, end=False),
        started_to=_day_or_time(q.started_to, end=True),
        limit=q.limit,
    )
    if criteria.is_empty():
        raise InvalidInput("give at least one search criterion; the vault does not list recordings")
    return criteria


def _day_or_time(text: str | None, *, end: bool) -> dt.datetime | None:
    """``2019-12-31`` means the whole day (in UTC); a full time is taken as is."""
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        return parse_timestamp(text)
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    return start + dt.timedelta(days=1) if end else start


def _summary(row: RecordingRow) -> Summary:
    return Summary(
        row.id, row.started_at, row.care_unit, row.agent, row.duration_ms / 1000, row.media_type
    )


@dataclass(frozen=True)
class Detail:
    summary: Summary
    caller: str | None
    personnummer: str | None
    call_id: str | None
    codec: str
    sample_rate: int
    channels: int
    retention_class: str
    plaintext_size: int
    created_at: dt.datetime


def show(vault: Vault, principal: Principal, recording_id: uuid.UUID) -> Detail:
    """Metadata of one recording (no audio); the view is audited."""
    row = _active(vault, principal, recording_id, Action.RECORDING_VIEW, None)
    opened = _open(vault, row)
    audit.record_alone(vault, principal, Action.RECORDING_VIEW, recording_id=row.id)
    return Detail(
        _summary(row),
        opened.caller,
        opened.personnummer,
        opened.call_id,
        row.codec,
        row.sample_rate,
        row.channels,
        row.retention_class,
        row.plaintext_size,
        row.created_at,
    )


def _open(vault: Vault, row: RecordingRow) -> OpenedDetails:
    dek = keyring.dek_for(vault, row)
    return open_details(row.id, dek, row.enc_caller, row.enc_pnr, row.enc_call_id)


def _active(
    vault: Vault, principal: Principal, recording_id: uuid.UUID, action: Action, reason: str | None
) -> RecordingRow:
    with vault.store.transaction() as tx:
        row = tx.get_recording(recording_id)
    if row is None or row.state != ACTIVE:
        audit.record_alone(
            vault,
            principal,
            action,
            Outcome.FAILED,
            recording_id=recording_id,
            reason=reason,
            detail={"error": "not_found"},
        )
        raise NotFound("recording")
    return row


@dataclass(frozen=True)
class ExportResult:
    recording_id: uuid.UUID
    path: Path
    size: int


def export(
    vault: Vault, principal: Principal, recording_id: uuid.UUID, out: Path, reason: str
) -> ExportResult:
    """Decrypt one recording to a new file, for a stated reason.

    The audit entry is committed before the first plaintext byte is written
    (R15).  The output is created exclusively (never overwrites) and removed
    if anything fails on the way, including an integrity failure.
    """
    if not reason or not reason.strip():
        raise InvalidInput("a reason is required to export a recording")
    row = _active(vault, principal, recording_id, Action.RECORDING_EXPORT, reason)
    dek = keyring.dek_for(vault, row)
    ad = cv1.associated_data(row.id, row.dek_id, row.media_type)
    cv1.check_commitment(dek, ad, row.commitment)
    check_ciphertext(vault, row)
    audit.record_alone(
        vault, principal, Action.RECORDING_EXPORT, recording_id=row.id, reason=reason.strip()
    )
    read = object_reader(vault, row)
    assert row.ciphertext_size is not None
    size = _write_exclusive(out, cv1.decrypt_stream(dek, ad, read, row.ciphertext_size))
    return ExportResult(row.id, out, size)


def object_reader(vault: Vault, row: RecordingRow) -> Callable[[int, int], bytes]:
    name = row.object_name

    def read(offset: int, length: int) -> bytes:
        return vault.blobs.read(name, offset, length)

    return read


def check_ciphertext(vault: Vault, row: RecordingRow) -> None:
    """Length and SHA-256 of the stored object against the row (R23)."""
    if row.ciphertext_size is None or row.ciphertext_sha256 is None:
        raise IntegrityError()
    try:
        size = vault.blobs.size(row.object_name)
    except NotFound:
        raise IntegrityError() from None
    if size != row.ciphertext_size:
        raise IntegrityError()
    digest = hashlib.sha256()
    step = 4 * 1024 * 1024
    for offset in range(0, size, step):
        digest.update(vault.blobs.read(row.object_name, offset, step))
    if digest.digest() != row.ciphertext_sha256:
        raise IntegrityError()


def _write_exclusive(out: Path, chunks: Iterator[bytes]) -> int:
    flags = (
        os.O_WRONLY
        | os.O_CREAT
        | os.O_EXCL
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_CLOEXEC", 0)
    )
    try:
        fd = os.open(out, flags, 0o600)
    except FileExistsError:
        raise InvalidInput("output file exists; choose a new name") from None
    except OSError:
        raise InvalidInput("cannot create the output file") from None
    written = 0
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
                written += len(chunk)
    except BaseException as exc:
        # Never leave a partial plaintext behind, whatever interrupted us.
        out.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise InvalidInput("cannot write the output file") from None
        raise
    return written
