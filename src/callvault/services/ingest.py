"""Ingest: decode and check an audio file, encrypt it under a fresh DEK, record it.

Crash safety (R28) comes from the order of durable steps:

1. a *pending* row claims a random object name (no object yet);
2. the ciphertext is written under that name atomically by the blob store;
3. one transaction turns the row *active* and appends the audit entry.

A crash after 1 or 2 leaves a pending row that is never shown or served;
ingesting the same file again reclaims it (removes the object and the row)
and starts over, so a re-run reaches the same end state.  Plaintext is only
ever read from the caller's file; nothing plaintext is written.

``ingest_stream`` takes audio that arrives as a stream (an HTTP upload) in
the same three steps.  The audio cannot be decoded before it is stored (it
is never written in clear, and arrives only once), so it is decoded after
step 2 from the stored ciphertext, through a decrypting file object; the
pending row holds placeholder facts until step 3 fills them in.  A stream is
identified by its care unit and call id, not its content, so a recorder can
repeat an upload safely.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import io
import itertools
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callvault.core import format as cv1
from callvault.core import keys as hierarchy
from callvault.core.access import Operation, Principal, UnitTarget
from callvault.core.audit import Action, Outcome
from callvault.core.errors import (
    Conflict,
    InvalidInput,
    NoRecordingPolicy,
    TooLarge,
    UnsupportedAudio,
)
from callvault.core.recordings import (
    ACTIVE,
    PENDING,
    RecordingRow,
    new_object_name,
    new_recording_id,
    validate_retention_class,
)
from callvault.core.retention import RecordingPolicy
from callvault.services import audit, keyring, policies
from callvault.services.context import AudioFacts, Vault
from callvault.services.details import CallDetails, SealedDetails, seal_details
from callvault.services.guard import authorise
from callvault.services.recordings import object_reader

READ_CHUNK = 1024 * 1024
# Bytes of a stream held back to recognise its container before encrypting
# (the media type is bound into the ciphertext): RIFF/WAVE, ID3 or an MPEG frame.
HEAD_BYTES = 4096


@dataclass(frozen=True)
class IngestResult:
    recording_id: uuid.UUID
    duplicate: bool
    duration_seconds: float


def ingest(vault: Vault, principal: Principal, path: Path, details: CallDetails) -> IngestResult:
    retention_class = validate_retention_class(details.retention_class)
    authorise(vault, principal, Operation.RECORDING_INGEST, UnitTarget(details.care_unit))
    policy = _policy_for(vault, principal, details.care_unit, retention_class)
    facts = vault.probe(path, max_bytes=vault.max_ingest_bytes)
    # Ciphertext that killed ingests left in the store's temp area; the store
    # never removes a temp file another live writer still holds.
    vault.blobs.discard_incomplete()
    digest = _file_sha256(path)
    fingerprint = content_fingerprint(vault.keys.index_key(), digest)

    duplicate = _already_stored(vault, principal, fingerprint)
    if duplicate is not None:
        return duplicate

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
        tx.lifecycle.set_keep_until(recording_id, policy.keep_until(details.started_at))

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


def _already_stored(vault: Vault, principal: Principal, fingerprint: bytes) -> IngestResult | None:
    """The recording already stored under ``fingerprint`` (logged as a duplicate
    ingest), or None; what an interrupted ingest left under it is reclaimed."""
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
    return None


def _policy_for(
    vault: Vault, principal: Principal, care_unit: str, retention_class: str
) -> RecordingPolicy:
    """The active recording policy (R19), or a logged ``NoRecordingPolicy``."""
    try:
        with vault.store.transaction(read_only=True) as tx:
            return policies.require_active(tx, care_unit, retention_class)
    except NoRecordingPolicy as exc:
        audit.record_alone(
            vault,
            principal,
            Action.RECORDING_INGEST,
            Outcome.FAILED,
            detail={"error": exc.code, "care_unit": care_unit, "retention_class": retention_class},
        )
        raise


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


def audio_columns(f: AudioFacts) -> dict[str, Any]:
    """The row's columns that come from decoding the audio (never from its headers)."""
    return {
        "container": f.container,
        "codec": f.codec,
        "sample_rate": f.sample_rate,
        "channels": f.channels,
        "frames": f.frames,
        "duration_ms": round(f.duration_seconds * 1000),
        "plaintext_size": f.size_bytes,
    }


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
        **audio_columns(f),
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


# --- streams ----------------------------------------------------------------------


def call_fingerprint(index_key: bytes, care_unit: str, call_id: str) -> bytes:
    """Keyed, truncated: one recording per (care unit, call id), the id never stored.

    Its domain differs from :func:`content_fingerprint`'s, so the two kinds
    share the fingerprint column without colliding.
    """
    message = b"callvault/call\x00" + care_unit.encode() + b"\x00" + call_id.encode()
    return hmac.new(index_key, message, hashlib.sha256).digest()[:16]


def ingest_stream(
    vault: Vault, principal: Principal, details: CallDetails, audio: Iterable[bytes]
) -> IngestResult:
    """Ingest audio arriving as ``audio`` chunks, for the care unit in ``details``.

    Needs ``recording.ingest`` on that unit (refusals are logged) and a call
    id: the same (unit, call id) again returns the stored recording with
    ``duplicate`` set and reads none of ``audio``.  More than
    ``vault.max_ingest_bytes`` of audio raises ``TooLarge``; anything the
    probe refuses raises ``UnsupportedAudio``; either way, and whatever
    ``audio`` itself raises, nothing stays stored.
    """
    retention_class = validate_retention_class(details.retention_class)
    authorise(vault, principal, Operation.RECORDING_INGEST, UnitTarget(details.care_unit))
    if not details.call_id:
        raise InvalidInput("a call id is required: it makes a repeated upload harmless")
    policy = _policy_for(vault, principal, details.care_unit, retention_class)
    fingerprint = call_fingerprint(vault.keys.index_key(), details.care_unit, details.call_id)
    vault.blobs.discard_incomplete()
    duplicate = _already_stored(vault, principal, fingerprint)
    if duplicate is not None:
        return duplicate

    chunks = _limited(audio, vault.max_ingest_bytes)
    head = _head(chunks)
    media_type, container = _announced_type(head)
    bucket = keyring.current_bucket(vault, call_month(details.started_at), retention_class)
    recording_id = new_recording_id()
    dek, dek_id = hierarchy.new_dek(), hierarchy.new_dek_id()
    ad = cv1.associated_data(recording_id, dek_id, media_type)
    row = _pending_row(
        recording_id,
        fingerprint,
        bucket.id,
        dek_id,
        keyring.wrap_dek(vault, bucket, recording_id, dek_id, dek),
        cv1.key_commitment(dek, ad),
        _Placeholder(media_type, container),
        details,
        seal_details(vault, details, recording_id, dek, b""),
        retention_class,
        vault.now(),
    )
    with vault.store.transaction() as tx:
        tx.insert_recording(row)
        tx.lifecycle.set_keep_until(recording_id, policy.keep_until(details.started_at))
    try:
        cipher_hash = hashlib.sha256()
        encrypted = cv1.encrypt_stream(dek, ad, itertools.chain((head,), chunks))
        size = vault.blobs.put(row.object_name, _hashing(encrypted, cipher_hash))
        facts = _probe_stored(vault, row, dek, ad, size)
        final = _active_row(vault, row, details, dek, facts, size, cipher_hash.digest())
        with vault.store.transaction() as tx:
            if not tx.grants.activate_ingested(final):
                raise Conflict("another upload of the same call took over")
            audit.record(vault, tx, principal, Action.RECORDING_INGEST, recording_id=recording_id)
    except BaseException:
        _reclaim(vault, row)
        raise
    return IngestResult(recording_id, False, facts.duration_seconds)


def _limited(chunks: Iterable[bytes], limit: int) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise TooLarge(f"the audio is larger than the {limit / 1_000_000:g} MB limit")
        if chunk:
            yield chunk


def _head(chunks: Iterator[bytes]) -> bytes:
    """The first ``HEAD_BYTES`` (fewer if the stream is shorter), kept in memory."""
    head = bytearray()
    while len(head) < HEAD_BYTES:
        chunk = next(chunks, None)
        if chunk is None:
            break
        head += chunk
    return bytes(head)


def _announced_type(head: bytes) -> tuple[str, str]:
    """``(media type, container)`` the first bytes announce; the probe has the last word."""
    if not head:
        raise UnsupportedAudio("empty file")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav", "wav"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "audio/mpeg", "mp3"
    raise UnsupportedAudio("not WAV or MP3 audio")


@dataclass(frozen=True)
class _Placeholder:
    """Audio facts of a pending stream: only the announced type is known yet."""

    media_type: str
    container: str
    codec: str = "pending"
    sample_rate: int = 0
    channels: int = 0
    frames: int = 0
    duration_seconds: float = 0.0
    size_bytes: int = 0
    peaks: bytes = b""


class PlaintextFile(io.RawIOBase):
    """A read-only, seekable view of a stored object's plaintext, decrypted on read.

    Every read authenticates the segments it touches, so the decoder only
    ever sees bytes that are exactly what was stored; nothing touches a disk.
    """

    def __init__(self, reader: cv1.CiphertextReader) -> None:
        super().__init__()
        self._reader = reader
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._reader.plaintext_size}
        if whence not in base or base[whence] + offset < 0:
            raise ValueError("invalid seek")
        self._pos = base[whence] + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._reader.read(self._pos, len(view))
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


def _probe_stored(vault: Vault, row: RecordingRow, dek: bytes, ad: bytes, size: int) -> AudioFacts:
    reader = cv1.CiphertextReader(dek, ad, object_reader(vault, row), size)
    with io.BufferedReader(PlaintextFile(reader), buffer_size=cv1.SEGMENT_SIZE) as plain:
        facts = vault.probe(plain, max_bytes=vault.max_ingest_bytes)
    if facts.media_type != row.media_type:
        raise UnsupportedAudio("the content is not the kind of audio its first bytes announce")
    return facts


def _active_row(
    vault: Vault,
    row: RecordingRow,
    details: CallDetails,
    dek: bytes,
    f: AudioFacts,
    size: int,
    sha256: bytes,
) -> RecordingRow:
    peaks = seal_details(vault, details, row.id, dek, f.peaks).enc_peaks
    return dataclasses.replace(
        row,
        state=ACTIVE,
        **audio_columns(f),
        ciphertext_size=size,
        ciphertext_sha256=sha256,
        enc_peaks=peaks,
    )
