"""A caller's copy of their recordings (GDPR Art. 15, R21): a ZIP inside an age file.

For a caller found by phone number or personnummer: every active recording,
decrypted and streamed as stored (WAV or MP3) into a ZIP with a JSON
manifest (call details, sizes, SHA-256 of each file) and a README, the ZIP
streamed into an age v1 file encrypted to a fresh passphrase.  Decrypted
audio exists only in memory, one chunk at a time: nothing reaches disk in
clear.  The passphrase is returned once, for the privacy officer to give
the caller by another channel; it is stored nowhere.

One ``subject:export`` entry per recording commits before the first byte
is written (R15), so the patient's log extract shows the copy too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from callvault.core import format as cv1
from callvault.core.access import Operation, Principal
from callvault.core.agefile import DEFAULT_WORK_FACTOR, AgeWriter
from callvault.core.audit import Action
from callvault.core.errors import InvalidInput, NotFound
from callvault.core.recordings import ACTIVE, RecordingRow
from callvault.services import audit, keyring, subjects
from callvault.services.context import Vault
from callvault.services.details import open_details
from callvault.services.guard import authorise
from callvault.services.recordings import check_ciphertext, object_reader

REASON = "GDPR Art. 15 copy to the data subject"
# scrypt's cost (log2 N) for the passphrase: age's own default, about a second.
WORK_FACTOR = DEFAULT_WORK_FACTOR
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read out over the phone
_EXTENSIONS = {"audio/wav": "wav", "audio/mpeg": "mp3"}
_README = """\
Kopia av dina inspelade samtal / Copy of your recorded calls

recordings/   samtalen som de lagrats (WAV eller MP3) / the calls as stored
manifest.json uppgifter om varje samtal och SHA-256 av varje fil /
              details of each call and the SHA-256 of each file

Tider anges i UTC. / Times are in UTC.
"""


@dataclass(frozen=True)
class SubjectExport:
    """What the privacy officer needs: the passphrase (shown once) and a summary."""

    passphrase: str
    recordings: int
    size: int


def new_passphrase() -> str:
    """Five groups of five from a 31-letter alphabet: about 124 bits, easy to read out."""
    groups = ("".join(secrets.choice(_ALPHABET) for _ in range(5)) for _ in range(5))
    return "-".join(groups)


def export_to_file(
    vault: Vault,
    principal: Principal,
    out: Path,
    *,
    caller: str | None = None,
    personnummer: str | None = None,
    work_factor: int | None = None,
) -> SubjectExport:
    """:func:`export` into a new file ``out`` (never overwritten; removed on failure)."""
    rows = _prepare(vault, principal, caller, personnummer)
    with _exclusive(out) as sink:
        return _write(vault, principal, rows, sink, work_factor)


def export(
    vault: Vault,
    principal: Principal,
    sink: BinaryIO,
    *,
    caller: str | None = None,
    personnummer: str | None = None,
    work_factor: int | None = None,
) -> SubjectExport:
    """Write the caller's encrypted copy to ``sink``; needs ``subject.export``.

    ``NotFound`` for a caller the vault holds nothing of (or only erased
    recordings of); ``IntegrityError`` before anything is written if a
    stored object fails its checks.
    """
    rows = _prepare(vault, principal, caller, personnummer)
    return _write(vault, principal, rows, sink, work_factor)


def _prepare(
    vault: Vault, principal: Principal, caller: str | None, personnummer: str | None
) -> list[RecordingRow]:
    authorise(vault, principal, Operation.SUBJECT_EXPORT, None)
    found = subjects.recordings_of(
        vault, principal, Action.SUBJECT_EXPORT, caller=caller, personnummer=personnummer
    )
    rows = [row for row in found if row.state == ACTIVE]
    if not rows:
        raise NotFound("caller")
    for row in rows:
        check_ciphertext(vault, row)  # R23, before any entry or byte
    return rows


def _write(
    vault: Vault,
    principal: Principal,
    rows: list[RecordingRow],
    sink: BinaryIO,
    work_factor: int | None,
) -> SubjectExport:
    with vault.store.transaction() as tx:
        for row in rows:
            audit.record(
                vault, tx, principal, Action.SUBJECT_EXPORT, recording_id=row.id, reason=REASON
            )
    passphrase = new_passphrase()
    counter = _Counting(sink)
    age = AgeWriter(counter, passphrase, work_factor or WORK_FACTOR)
    manifest: list[dict[str, Any]] = []
    with zipfile.ZipFile(age, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("README.txt", _README)
        for number, row in enumerate(rows, start=1):
            manifest.append(_add_recording(vault, archive, number, row))
        document = {"exported_at": _iso(vault.now()), "recordings": manifest}
        archive.writestr("manifest.json", json.dumps(document, indent=1, ensure_ascii=False))
    age.close()
    return SubjectExport(passphrase, len(rows), counter.count)


def _add_recording(
    vault: Vault, archive: zipfile.ZipFile, number: int, row: RecordingRow
) -> dict[str, Any]:
    dek = keyring.dek_for(vault, row)
    ad = cv1.associated_data(row.id, row.dek_id, row.media_type)
    cv1.check_commitment(dek, ad, row.commitment)
    name = f"recordings/{number:04d}-{row.id}.{_EXTENSIONS.get(row.media_type, 'bin')}"
    digest, size = hashlib.sha256(), 0
    assert row.ciphertext_size is not None
    big = row.plaintext_size >= zipfile.ZIP64_LIMIT
    with archive.open(name, "w", force_zip64=big) as member:
        for chunk in cv1.decrypt_stream(dek, ad, object_reader(vault, row), row.ciphertext_size):
            member.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    opened = open_details(row.id, dek, row.enc_caller, row.enc_pnr, row.enc_call_id)
    return {
        "file": name,
        "sha256": digest.hexdigest(),
        "size": size,
        "recording_id": str(row.id),
        "started_at": _iso(row.started_at),
        "duration_seconds": row.duration_ms / 1000,
        "care_unit": row.care_unit,
        "media_type": row.media_type,
        "codec": row.codec,
        "sample_rate": row.sample_rate,
        "channels": row.channels,
        "caller": opened.caller,
        "personnummer": opened.personnummer,
        "call_id": opened.call_id,
        "retention_class": row.retention_class,
    }


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Counting:
    """Passes writes to ``sink`` and counts the bytes."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink, self.count = sink, 0

    def write(self, data: bytes) -> int:
        self._sink.write(data)
        self.count += len(data)
        return len(data)

    def flush(self) -> None:
        self._sink.flush()


@contextmanager
def _exclusive(out: Path) -> Iterator[BinaryIO]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(out, flags, 0o600)
    except FileExistsError:
        raise InvalidInput("output file exists; choose a new name") from None
    except OSError:
        raise InvalidInput("cannot create the output file") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
    except BaseException:
        out.unlink(missing_ok=True)
        raise
