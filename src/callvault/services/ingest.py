"""Ingest: decode and check an audio file, encrypt it under a fresh DEK, record it.

Crash safety (R28) comes from the order of durable steps:

1. a *pending* row claims a random object name (no object yet);
2. the ciphertext is written under that name atomically by the blob store;
3. one transaction turns the row *active* and appends the audit entry.

A crash after 1 or 2 leaves a pending row that is never shown or served;
ingesting the same file again reclaims it (removes the object and the row)
and starts over, so a re-run reaches the same end state.  Plaintext is only
ever read from the caller's file; nothing plaintext is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callvault.core import format as cv1
from callvault.core import keys as hierarchy
from callvault.core.access import Principal
from callvault.core.audit import Action
from callvault.core.errors import Conflict, InvalidInput
from callvault.core.recordings import (
    ACTIVE,
    PENDING,
    RecordingRow,
    new_object_name,
    new_recording_id,
    validate_retention_class,
)
from callvault.services import audit, keyring
from callvault.services.context import AudioFacts, Vault
from callvault.services.details import CallDetails, SealedDetails, seal_details

READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class IngestResult:
    recording_id: uuid.UUID
    duplicate: bool
    duration_seconds: float


def ingest(vault: Vault, principal: Principal, path: Path, details: CallDetails) -> IngestResult:
    retention_class = validate_retention_class(details.retention_class)
    facts = vault.probe(path, max_bytes=vault.max_ingest_bytes)
    # Ciphertext that killed ingests left in the store's temp area; the store
    # never removes a temp file another live writer still holds.
    vault.blobs.discard_incomplete()
    digest = _file_sha256(path)
    fingerprint = content_fingerprint(vault.keys.index_key(), digest)

    with vault.store.transaction() as tx:
        existing = tx.find_by_fingerprint(fingerprint)
        if existing is not None and existing.state == ACTIVE:
            audit.record(
                vault,
                tx,
                principal,
                Action.RECORDING_INGEST,
                recording_id=existing.id,
                detail={"duplicate": True},
            )
            return IngestResult(existing.id, True, existing.duration_ms / 1000)
    if existing is not None:
        _reclaim(vault, existing)

    bucket = keyring.current_bucket(vault, call_month(details.started_at), retention_class)
    recording_id = new_recording_id()
    dek, dek_id = hierarchy.new_dek(), hierarchy.new_dek_id()
    ad = cv1.associated_data(recording_id, dek_id, facts.media_type)
    sealed = seal_details(vault, details, recording_id, dek, facts.peaks)
    row = _pending_row(
        recording_id,
        fingerprint,
        bucket.id,
        dek_id,
        keyring.wrap_dek(vault, bucket, recording_id, dek_id, dek),
        cv1.key_commitment(dek, ad),
        facts,
        details,
        sealed,
        retention_class,
        vault.now(),
    )
    with vault.store.transaction() as tx:
        tx.insert_recording(row)

    plain_hash, cipher_hash = hashlib.sha256(), hashlib.sha256()
    chunks = _hashing(
        cv1.encrypt_stream(dek, ad, _hashing(_read_chunks(path), plain_hash)), cipher_hash
    )
    size = vault.blobs.put(row.object_name, chunks)
    if plain_hash.digest() != digest:
        _reclaim(vault, row)
        raise InvalidInput("the input file changed while it was being ingested")

    with vault.store.transaction() as tx:
        if not tx.activate_recording(recording_id, size, cipher_hash.digest()):
            raise Conflict("another ingest of the same recording took over")
        audit.record(vault, tx, principal, Action.RECORDING_INGEST, recording_id=recording_id)
    return IngestResult(recording_id, False, facts.duration_seconds)


def call_month(started_at: dt.datetime) -> str:
    return started_at.astimezone(dt.UTC).strftime("%Y-%m")


def content_fingerprint(index_key: bytes, sha256: bytes) -> bytes:
    """Keyed, truncated: recognises a re-ingest without storing a plaintext hash."""
    return hmac.new(index_key, b"callvault/content\x00" + sha256, hashlib.sha256).digest()[:16]


def _reclaim(vault: Vault, row: RecordingRow) -> None:
    """Remove what an interrupted ingest left: its object first, then its row."""
    vault.blobs.delete(row.object_name)
    with vault.store.transaction() as tx:
        current = tx.get_recording(row.id)
        if current is not None and current.state == PENDING:
            tx.delete_recording(row.id)


def _pending_row(
    recording_id: uuid.UUID,
    fingerprint: bytes,
    bucket_kek_id: int,
    dek_id: bytes,
    wrapped_dek: bytes,
    commitment: bytes,
    f: AudioFacts,
    details: CallDetails,
    sealed: SealedDetails,
    retention_class: str,
    now: dt.datetime,
) -> RecordingRow:
    return RecordingRow(
        id=recording_id,
        state=PENDING,
        object_name=new_object_name(),
        fingerprint=fingerprint,
        bucket_kek_id=bucket_kek_id,
        dek_id=dek_id,
        wrapped_dek=wrapped_dek,
        commitment=commitment,
        media_type=f.media_type,
        container=f.container,
        codec=f.codec,
        sample_rate=f.sample_rate,
        channels=f.channels,
        frames=f.frames,
        duration_ms=round(f.duration_seconds * 1000),
        plaintext_size=f.size_bytes,
        ciphertext_size=None,
        ciphertext_sha256=None,
        care_unit=details.care_unit,
        agent=details.agent,
        started_at=details.started_at,
        retention_class=retention_class,
        created_at=now,
        caller_bidx=sealed.caller_bidx,
        pnr_bidx=sealed.pnr_bidx,
        call_id_bidx=sealed.call_id_bidx,
        enc_caller=sealed.enc_caller,
        enc_pnr=sealed.enc_pnr,
        enc_call_id=sealed.enc_call_id,
        enc_peaks=sealed.enc_peaks,
    )


def _file_sha256(path: Path) -> bytes:
    digest = hashlib.sha256()
    for chunk in _read_chunks(path):
        digest.update(chunk)
    return digest.digest()


def _read_chunks(path: Path) -> Iterator[bytes]:
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(READ_CHUNK):
                yield chunk
    except OSError:
        raise InvalidInput("cannot read input file") from None


def _hashing(chunks: Iterator[bytes], digest: Any) -> Iterator[bytes]:
    for chunk in chunks:
        digest.update(chunk)
        yield chunk
