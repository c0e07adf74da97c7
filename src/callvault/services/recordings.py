"""Showing and exporting recordings, and checking their stored objects (R23).

Every call writes its audit entry; authorisation is asked of
``services.guard``.  Search lives in ``services.search`` and is re-exported
here for the CLI.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from callvault.core import format as cv1
from callvault.core.access import Operation, Principal
from callvault.core.audit import Action
from callvault.core.errors import IntegrityError, InvalidInput, NotFound
from callvault.core.recordings import RecordingRow
from callvault.services import audit, keyring
from callvault.services.context import Vault
from callvault.services.details import OpenedDetails, open_details
from callvault.services.guard import flag, reachable
from callvault.services.search import (
    MAX_RESULTS,
    Page,
    SearchQuery,
    Summary,
    search,
    search_page,
    summary,
)

__all__ = [
    "MAX_RESULTS",
    "Detail",
    "ExportResult",
    "Page",
    "SearchQuery",
    "Summary",
    "check_ciphertext",
    "check_length",
    "export",
    "object_reader",
    "search",
    "search_page",
    "show",
]


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
    row, decision = reachable(
        vault, principal, recording_id, Operation.RECORDING_VIEW, Action.RECORDING_VIEW
    )
    opened = _open(vault, row)
    audit.record_alone(
        vault, principal, Action.RECORDING_VIEW, recording_id=row.id, detail=flag(decision)
    )
    return Detail(
        summary(row),
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


# --- export and integrity ------------------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    recording_id: uuid.UUID
    path: Path
    size: int


def export(
    vault: Vault, principal: Principal, recording_id: uuid.UUID, out: Path, reason: str
) -> ExportResult:
    """Decrypt one recording to a new file on the vault host, for a stated reason.

    The audit entry is committed before the first plaintext byte is written
    (R15).  The output is created exclusively (never overwrites) and removed
    if anything fails on the way, including an integrity failure.
    """
    if not reason or not reason.strip():
        raise InvalidInput("a reason is required to export a recording")
    row, _ = reachable(
        vault, principal, recording_id, Operation.RECORDING_EXPORT, Action.RECORDING_EXPORT, reason
    )
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


def check_length(vault: Vault, row: RecordingRow) -> int:
    """The stored object's length, which must be the row's (R23); its ciphertext size."""
    if row.ciphertext_size is None:
        raise IntegrityError()
    try:
        size = vault.blobs.size(row.object_name)
    except NotFound:
        raise IntegrityError() from None
    if size != row.ciphertext_size or cv1.plaintext_size(size) != row.plaintext_size:
        raise IntegrityError()
    return size


def check_ciphertext(vault: Vault, row: RecordingRow) -> None:
    """Length and SHA-256 of the stored object against the row (R23)."""
    size = check_length(vault, row)
    if row.ciphertext_sha256 is None:
        raise IntegrityError()
    digest = hashlib.sha256()
    step = 4 * 1024 * 1024
    for offset in range(0, size, step):
        digest.update(vault.blobs.read(row.object_name, offset, step))
    if not hmac.compare_digest(digest.digest(), row.ciphertext_sha256):
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
