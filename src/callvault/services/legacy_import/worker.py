"""One source file through the import: ingest, verify, journal, then the original.

The order is what makes a kill -9 harmless (R26, R28):

1. ingest through ``services.ingest`` (its own crash-safe steps and audit
   entry; a re-run finds the stored recording and reports a duplicate);
2. verify the stored record against the source, byte for byte by hash;
3. journal ``verified`` (fsynced);
4. move or shred the original, then journal ``done``.

A re-run skips ``done`` files and, for ``verified`` ones, only finishes
step 4, so no original is ever touched without a verified record.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from callvault.core.access import Principal
from callvault.core.errors import AlreadyExists, CallvaultError, Conflict
from callvault.services.context import Vault
from callvault.services.details import CallDetails
from callvault.services.ingest import IngestResult, ingest, ingest_stream
from callvault.services.legacy_import import originals, verify
from callvault.services.legacy_import.journal import DONE, REJECTED, VERIFIED, Entry, Journal
from callvault.services.legacy_import.sources import SourceFile, open_url, read_file

INGESTED = "ingested"  # imported or duplicate: decided over the whole journal
REJECTED_OUTCOME = "rejected"
FAILED = "failed"
_CONFLICT_RETRIES = 5


@dataclass(frozen=True)
class Job:
    """What every worker needs besides the vault: picklable, no personal data."""

    journal_path: Path
    originals: str = originals.KEEP
    move_to: Path | None = None


@dataclass(frozen=True)
class Task:
    file: SourceFile
    key: str
    details: CallDetails | None  # None when resuming
    resume: Entry | None = None  # a ``verified`` entry: only the original is left


@dataclass(frozen=True)
class Result:
    index: int
    key: str
    outcome: str
    reason: str
    message: str
    size: int


def process(vault: Vault, principal: Principal, job: Job, journal: Journal, task: Task) -> Result:
    """Take one file as far as it goes; a refusal is journaled, never raised."""
    f = task.file
    try:
        touches_original = not f.is_url and job.originals != originals.KEEP
        if task.resume is None:
            recording_id, size = _ingest_verified(vault, principal, task)
            if touches_original:  # else nothing lies between verified and done
                journal.append(
                    Entry(task.key, VERIFIED, INGESTED, size=size, recording_id=recording_id)
                )
        else:
            recording_id, size = task.resume.recording_id, task.resume.size
        done = _originals(job, f)
        journal.append(
            Entry(task.key, DONE, INGESTED, size=size, recording_id=recording_id, originals=done)
        )
        return Result(f.index, task.key, INGESTED, "", "", size)
    except _Refused as exc:
        outcome, reason, message = exc.outcome, exc.reason, exc.message
    except CallvaultError as exc:
        outcome, reason, message = REJECTED_OUTCOME, exc.code, exc.message
    except OSError:
        outcome, reason = REJECTED_OUTCOME, "unreadable"
        message = "cannot read the file" if not f.is_url else "cannot download the file"
    except Exception:  # one odd file must not stop an archive's import
        # Its text is not shown: a library's message may quote the path.
        outcome, reason, message = FAILED, "internal_error", "unexpected error; see a re-run"
    journal.append(Entry(task.key, REJECTED, outcome, reason=reason, size=f.size or 0))
    return Result(f.index, task.key, outcome, reason, message, f.size or 0)


class _Refused(Exception):
    def __init__(self, outcome: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.outcome, self.reason, self.message = outcome, reason, message


def _ingest_verified(vault: Vault, principal: Principal, task: Task) -> tuple[str, int]:
    """Ingest ``task``'s file and prove the vault holds its bytes: (recording id, size)."""
    f, details = task.file, task.details
    assert details is not None  # only a resumed task has none, and it is not ingested
    if f.is_url:
        result, size, source_hash = _ingest_url(vault, principal, task, details)
    else:
        path = Path(f.location)
        result = _retrying(lambda: ingest(vault, principal, path, details))
        source_hash = verify.sha256_of(read_file(f.location))
        size = f.size or 0
    if not verify.matches(vault, result.recording_id, source_hash):
        raise _Refused(FAILED, "verify_mismatch", "the stored record differs from the source")
    return str(result.recording_id), size


def _ingest_url(
    vault: Vault, principal: Principal, task: Task, details: CallDetails
) -> tuple[IngestResult, int, bytes]:
    """Stream the download straight into the vault, hashing it on the way through."""
    if details.call_id is None:
        # A stream is recognised by its call id; the journal key is stable for
        # this vault and source path, and carries nothing readable.
        details = dataclasses.replace(details, call_id=f"legacy-{task.key}")
    seen = {"size": 0}
    digest = hashlib.sha256()

    def tee() -> Iterator[bytes]:
        for chunk in open_url(task.file.location):
            seen["size"] += len(chunk)
            digest.update(chunk)
            yield chunk

    result = _retrying(lambda: ingest_stream(vault, principal, details, tee()))
    if result.duplicate:  # stored by an interrupted run: read it again to compare
        return result, seen["size"], _url_hash(task.file.location, seen)
    return result, seen["size"], digest.digest()


def _url_hash(url: str, seen: dict[str, int]) -> bytes:
    digest = hashlib.sha256()
    for chunk in open_url(url):
        seen["size"] += len(chunk)
        digest.update(chunk)
    return digest.digest()


def _retrying(attempt: Callable[[], IngestResult]) -> IngestResult:
    """Two workers that meet on the same content both race for one row; the
    loser retries and then finds the winner's record."""
    for n in range(_CONFLICT_RETRIES):
        try:
            return attempt()
        except (Conflict, AlreadyExists):
            if n == _CONFLICT_RETRIES - 1:
                raise
            time.sleep(0.2 * (n + 1))
    raise AssertionError("unreachable")


def _originals(job: Job, f: SourceFile) -> str:
    if f.is_url or job.originals == originals.KEEP:
        return originals.KEEP
    if job.originals == originals.MOVE:
        assert job.move_to is not None
        originals.move(Path(f.location), f.relative, job.move_to)
    else:
        originals.shred(Path(f.location))
    return job.originals
