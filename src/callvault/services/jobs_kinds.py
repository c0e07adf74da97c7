"""What each kind of background job does; every one idempotent and resumable.

* ``scrub`` splits the recording id space into ranges and queues a
  ``scrub_range`` per range; ``scrub_range`` re-verifies every object in its
  range (R23) in batches, saving a cursor after each, so a retry resumes
  where the killed attempt stopped.  A problem is logged once per recording
  (``recording:verify``, failed); the range's counts in one ``vault:verify``.
* ``peaks`` queues a ``peaks_recording`` for each active recording without
  waveform peaks; that job derives the peaks from the decrypted audio (in
  memory only) and seals them under the recording's key, only if still none.
* ``retention_sweep`` is the retention sweep (R20); ``key_rewrap`` finishes a
  key rotation: DEKs onto the newest bucket KEKs, bucket KEKs onto the
  current root, unused roots retired.  Both are idempotent by design.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Mapping

from callvault.core import format as cv1
from callvault.core import keys as hierarchy
from callvault.core.access import Principal
from callvault.core.audit import Action, Outcome
from callvault.core.errors import ConfigError, TooLarge
from callvault.core.jobs import (
    JobInterrupted,
    JobKind,
    id_ranges,
    recording_lock,
    validate_payload,
)
from callvault.core.ports import JobContext, JobDataRepo, JobQueue
from callvault.core.recordings import ACTIVE
from callvault.services import audit, keyring, retention, verify
from callvault.services.context import Vault
from callvault.services.details import peaks_ad
from callvault.services.recordings import object_reader

KindFn = Callable[[Vault, Principal, JobContext], None]
StopFn = Callable[[], bool]

SCRUB_PARTS = 16
SCRUB_BATCH = 50
PLAN_BATCH = 500
# Peaks are derived in memory (never a plaintext temp file); larger
# recordings keep their missing peaks and the job says so.
PEAKS_MAX_BYTES = 512 * 1024**2


# Vault-wide kinds take a lock of their own name: never two at once.
_KIND_LOCKS = {
    JobKind.SCRUB: "scrub",
    JobKind.RETENTION_SWEEP: "retention",
    JobKind.KEY_REWRAP: "keys",
    JobKind.PEAKS: "peaks",
}


def queue_of(vault: Vault) -> JobQueue:
    if vault.jobs is None:
        raise ConfigError("no job queue is configured for this vault")
    return vault.jobs


def submit(vault: Vault, kind: JobKind, payload: Mapping[str, str | int]) -> int | None:
    """Queue a job with the locks its kind takes (no authorisation: for jobs and ticks)."""
    clean = validate_payload(payload)
    lock = _KIND_LOCKS.get(kind)
    queueing = lock
    if kind is JobKind.PEAKS_RECORDING or kind is JobKind.SCRUB_RANGE:
        lock, queueing = locks_for(kind, clean)
    return queue_of(vault).enqueue(kind.value, clean, lock=lock, queueing_lock=queueing)


def locks_for(kind: JobKind, payload: dict[str, str | int]) -> tuple[str | None, str | None]:
    """(lock, queueing lock) of the per-recording and per-range kinds."""
    if kind is JobKind.PEAKS_RECORDING:
        rid = uuid.UUID(str(payload["recording_id"]))
        return recording_lock(rid), f"peaks:{rid}"
    lo = uuid.UUID(str(payload["lo"]))
    return f"scrub:{lo}", f"scrub:{lo}"


def _data(vault: Vault) -> JobDataRepo:
    if vault.job_data is None:
        raise ConfigError("no job data repository is configured for this vault")
    return vault.job_data


def _uuid(value: str | int | None) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(str(value))


def _int(value: str | int | None) -> int:
    return int(value) if value is not None else 0


# --- integrity scrub (R23) ----------------------------------------------------------


def scrub(vault: Vault, principal: Principal, ctx: JobContext) -> None:
    ranges = id_ranges(_int(ctx.job.payload.get("parts")) or SCRUB_PARTS)
    for n, (lo, hi) in enumerate(ranges, 1):
        submit(vault, JobKind.SCRUB_RANGE, {"lo": str(lo), "hi": str(hi)})
        ctx.progress(n, len(ranges))


def scrub_range(vault: Vault, principal: Principal, ctx: JobContext) -> None:
    data = _data(vault)
    lo = uuid.UUID(str(ctx.job.payload["lo"]))
    hi = uuid.UUID(str(ctx.job.payload["hi"]))
    cursor = ctx.job.cursor
    after = _uuid(cursor.get("after"))
    checked, problems, seen = (_int(cursor.get(k)) for k in ("checked", "problems", "done"))
    total = data.count_recordings(lo, hi)
    while True:
        if ctx.stopping():
            raise JobInterrupted()
        ids = data.recording_ids(lo, hi, after, SCRUB_BATCH)
        if not ids:
            break
        with vault.store.transaction(read_only=True) as tx:
            rows = sorted(tx.review.recordings_by_id(ids), key=lambda r: r.id)
        for row in rows:
            if row.state != ACTIVE:
                continue  # an interrupted ingest: re-running it completes it
            checked += 1
            problem = verify.check_recording(vault, row)
            if problem is not None:
                problems += 1
                audit.record_alone(
                    vault,
                    principal,
                    Action.RECORDING_VERIFY,
                    outcome=Outcome.FAILED,
                    recording_id=row.id,
                    detail={"problem": problem, "job": ctx.job.id},
                )
        seen += len(ids)
        after = ids[-1]
        state: dict[str, str | int] = {
            "after": str(after), "checked": checked, "problems": problems, "done": seen,
        }  # fmt: skip
        ctx.progress(seen, max(total, seen), state)
    audit.record_alone(
        vault,
        principal,
        Action.VAULT_VERIFY,
        outcome=Outcome.FAILED if problems else Outcome.SUCCESS,
        detail={"scope": "range", "job": ctx.job.id, "checked": checked, "problems": problems},
    )


# --- waveform peaks -----------------------------------------------------------------


def peaks(vault: Vault, principal: Principal, ctx: JobContext) -> None:
    data = _data(vault)
    after = _uuid(ctx.job.cursor.get("after"))
    queued = _int(ctx.job.cursor.get("done"))
    while True:
        ids = data.missing_peaks(after, PLAN_BATCH)
        for rid in ids:
            queued += submit(vault, JobKind.PEAKS_RECORDING, {"recording_id": str(rid)}) is not None
        if not ids:
            return
        after = ids[-1]
        ctx.progress(queued, None, {"after": str(after), "done": queued})


def peaks_recording(vault: Vault, principal: Principal, ctx: JobContext) -> None:
    rid = uuid.UUID(str(ctx.job.payload["recording_id"]))
    with vault.store.transaction(read_only=True) as tx:
        row = tx.get_recording(rid)
    if row is None or row.state != ACTIVE or row.enc_peaks:
        ctx.progress(1, 1)
        return  # gone, not yet active, or done already: nothing to do
    if row.plaintext_size > PEAKS_MAX_BYTES or row.ciphertext_size is None:
        raise TooLarge("the recording is too large to derive peaks in memory")
    dek = keyring.dek_for(vault, row)
    ad = cv1.associated_data(row.id, row.dek_id, row.media_type)
    cv1.check_commitment(dek, ad, row.commitment)
    plain = io.BytesIO()
    for chunk in cv1.decrypt_stream(dek, ad, object_reader(vault, row), row.ciphertext_size):
        plain.write(chunk)
    plain.seek(0)
    facts = vault.probe(plain, max_bytes=max(row.plaintext_size, 1))
    key = hierarchy.metadata_key(dek, row.id)
    sealed = hierarchy.seal(key, facts.peaks, peaks_ad(row.id))
    # The audio was decrypted and read: logged before the derived data is kept.
    audit.record_alone(
        vault, principal, Action.RECORDING_VERIFY, recording_id=row.id,
        detail={"part": "peaks", "job": ctx.job.id},
    )  # fmt: skip
    _data(vault).set_peaks_if_missing(row.id, sealed)
    ctx.progress(1, 1)


# --- retention sweep and key re-wrap ------------------------------------------------


def retention_sweep(vault: Vault, principal: Principal, ctx: JobContext) -> None:
    report = retention.sweep(vault, principal)
    due = sum(report.due.values())
    ctx.progress(sum(report.shredded.values()), due)


def key_rewrap(vault: Vault, principal: Principal, ctx: JobContext) -> None:
    pending = keyring.pending_rewrap(vault)
    audit.record_alone(
        vault, principal, Action.KEY_ROTATE, detail={"step": "rewrap", "pending": pending}
    )
    ctx.progress(0, pending)
    ctx.progress(keyring.finish_rotation(vault), pending)


KINDS: dict[JobKind, KindFn] = {
    JobKind.SCRUB: scrub,
    JobKind.SCRUB_RANGE: scrub_range,
    JobKind.PEAKS: peaks,
    JobKind.PEAKS_RECORDING: peaks_recording,
    JobKind.RETENTION_SWEEP: retention_sweep,
    JobKind.KEY_REWRAP: key_rewrap,
}
