"""Retention (R20): legal holds, and the sweep that crypto-shreds what is due.

Shredding one recording is one conditional delete of its row, which holds
its wrapped DEK and its sealed caller number and personnummer: without the
DEK the object is random bytes, in the store and in every backup.  The same
transaction queues the object for deletion and appends the receipt
(``recording:shred``: id, class, reason, due date; nothing personal).  The
object is deleted afterwards and its queue entry last, so a sweep killed
anywhere leaves either a live recording or a queued object that the next
run deletes (R28).  Once no recording points at a bucket KEK of a month
that is over, the KEK itself is destroyed (``key:destroy``): copies of that
bucket's DEKs in database backups then open nothing.

A held recording is never selected and the delete itself re-checks the
hold, so a hold set while a sweep runs still wins.  ``sweep`` is
idempotent: run twice, the second run finds nothing due.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from dataclasses import dataclass, field

from callvault.core.access import Operation, Principal
from callvault.core.audit import Action, AuditEvent
from callvault.core.errors import Conflict, InvalidInput, NotFound
from callvault.core.ports import Transaction
from callvault.core.recordings import RecordingRow
from callvault.core.retention import LegalHold, month_over, validate_reference
from callvault.services import audit, keyring
from callvault.services.context import Vault
from callvault.services.guard import authorise, reachable, refuse_role_level

SHRED_BATCH = 500  # recordings per transaction: one commit (one fsync) per batch
OBJECT_BATCH = 500

EXPIRED = "retention_expired"


@dataclass(frozen=True)
class SweepReport:
    dry_run: bool
    due: dict[str, int]  # class -> unheld recordings due when the sweep began
    held: int  # due but on legal hold: untouched
    shredded: dict[str, int] = field(default_factory=dict)
    objects_deleted: int = 0
    buckets_destroyed: list[str] = field(default_factory=list)
    complete: bool = True  # False if ``limit`` stopped the run before the end
    roots_retired: list[int] = field(default_factory=list)  # with ``rotate``


def sweep(
    vault: Vault,
    principal: Principal,
    *,
    dry_run: bool = False,
    limit: int | None = None,
    rotate: bool = False,
) -> SweepReport:
    """Shred every unheld recording whose retention has passed, at most ``limit``.

    ``dry_run`` counts and logs, and changes nothing.  Safe to run again, or
    after a crash: a re-run finishes what an interrupted one began.  With
    ``rotate``, a sweep that destroyed a bucket KEK then rotates the root
    keys (``keyring.rotate``), which retires the root versions that wrapped
    it: the copies of that bucket KEK in older database backups then open
    with nothing the vault still holds.
    """
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise InvalidInput("limit must be a positive number of recordings")
    authorise(vault, principal, Operation.RETENTION_SWEEP, None)
    now = vault.now()
    with vault.store.transaction(read_only=True) as tx:
        counts = tx.lifecycle.due_counts(now)
    due = {klass: n for (klass, held), n in sorted(counts.items()) if not held}
    held = sum(n for (_, is_held), n in counts.items() if is_held)
    total = sum(due.values())
    start = {"dry_run": dry_run, "due": total, "held": held}
    if dry_run:
        audit.record_alone(vault, principal, Action.RETENTION_SWEEP, detail=start)
        return SweepReport(True, due, held, complete=total == 0)
    # Logged before anything is destroyed: no entry, no shredding (R15).
    audit.record_alone(vault, principal, Action.RETENTION_SWEEP, detail={**start, "step": "start"})
    objects = drain_shred_queue(vault)
    shredded: Counter[str] = Counter()
    complete = True
    while True:
        room = SHRED_BATCH if limit is None else min(SHRED_BATCH, limit - shredded.total())
        if room <= 0:
            complete = False
            break
        with vault.store.transaction() as tx:
            rows = tx.lifecycle.due_recordings(now, room)
            done = shred_rows(vault, tx, principal, rows, now, EXPIRED)
        shredded.update(r.retention_class for r in done)
        objects += drain_shred_queue(vault)
        if len(rows) < room:
            break
    buckets = destroy_empty_buckets(vault, principal, now)
    retired = keyring.rotate(vault, principal).roots_retired if rotate and buckets else []
    return SweepReport(False, due, held, dict(shredded), objects, buckets, complete, retired)


def shred_rows(
    vault: Vault,
    tx: Transaction,
    principal: Principal,
    rows: list[RecordingRow],
    now: dt.datetime,
    reason: str,
    decision: str | None = None,
) -> list[RecordingRow]:
    """Shred ``rows`` inside ``tx`` with one receipt each; the rows shredded.

    A row that is held, or already gone, by now is skipped: the delete is
    conditional.  The objects are left queued for :func:`drain_shred_queue`.
    """
    gone = set(tx.lifecycle.shred(rows, now))
    done = [row for row in rows if row.id in gone]
    events: list[AuditEvent] = []
    for row in done:
        detail: dict[str, str | int | bool | None] = {
            "retention_class": row.retention_class,
            "reason": reason,
        }
        if decision is not None:
            detail["decision"] = decision
        events.append(
            audit.make_event(
                vault, principal, Action.RECORDING_SHRED, recording_id=row.id, detail=detail
            )
        )
    if events:
        audit.append(tx, events)
    return done


def drain_shred_queue(vault: Vault) -> int:
    """Delete the objects of shredded recordings, then their queue entries."""
    deleted = 0
    while True:
        with vault.store.transaction(read_only=True) as tx:
            names = tx.lifecycle.queued_objects(OBJECT_BATCH)
        for name in names:
            vault.blobs.delete(name)  # idempotent: a re-run after a crash is harmless
        if names:
            with vault.store.transaction() as tx:
                tx.lifecycle.unqueue(names)
        deleted += len(names)
        if len(names) < OBJECT_BATCH:
            return deleted


def destroy_empty_buckets(vault: Vault, principal: Principal, now: dt.datetime) -> list[str]:
    """Destroy every bucket KEK of a past month that no recording points at."""
    with vault.store.transaction(read_only=True) as tx:
        empty = tx.lifecycle.empty_bucket_keks()
    destroyed = []
    for row in empty:
        # An ingest that created this bucket a moment ago and has not yet
        # stored its row loses the race cleanly: its insert is refused (the
        # bucket is gone) and a retry makes a new bucket KEK.
        if not month_over(row.month, now):
            continue
        bucket = f"{row.month}/{row.retention_class}"
        with vault.store.transaction() as tx:
            if not tx.lifecycle.destroy_bucket_kek(row.id):
                continue  # a recording arrived under it meanwhile
            audit.record(
                vault,
                tx,
                principal,
                Action.KEY_DESTROY,
                detail={"bucket": bucket, "version": row.version, "reason": "bucket_empty"},
            )
        vault._bucket_kek_cache.pop(row.id, None)
        destroyed.append(f"{bucket} v{row.version}")
    return destroyed


# --- legal holds --------------------------------------------------------------------


def list_holds(vault: Vault, principal: Principal) -> list[LegalHold]:
    """Every legal hold in force, oldest first (logged as ``hold:list``)."""
    authorise(vault, principal, Operation.HOLD_LIST, None)
    with vault.store.transaction() as tx:
        found = tx.lifecycle.holds()
        audit.record(vault, tx, principal, Action.HOLD_LIST, detail={"results": len(found)})
    return found


def hold(vault: Vault, principal: Principal, recording_id: uuid.UUID, reference: str) -> LegalHold:
    """Put a recording on legal hold: no sweep or erasure touches it until released."""
    refuse_role_level(vault, principal, recording_id, Operation.RECORDING_HOLD)
    ref = validate_reference(reference)
    reachable(vault, principal, recording_id, Operation.RECORDING_HOLD, Action.RECORDING_HOLD, ref)
    entry = LegalHold(recording_id, ref, principal.name, vault.now())
    with vault.store.transaction() as tx:
        if tx.get_recording(recording_id) is None:
            raise NotFound("recording")
        if not tx.lifecycle.add_hold(entry):
            raise Conflict("the recording is already on legal hold")
        audit.record(
            vault, tx, principal, Action.RECORDING_HOLD, recording_id=recording_id, reason=ref
        )
    return entry


def release(
    vault: Vault, principal: Principal, recording_id: uuid.UUID, reference: str
) -> LegalHold:
    """Lift a legal hold; the recording's ordinary retention applies again."""
    refuse_role_level(vault, principal, recording_id, Operation.RECORDING_HOLD)
    ref = validate_reference(reference)
    reachable(
        vault, principal, recording_id, Operation.RECORDING_HOLD, Action.RECORDING_RELEASE, ref
    )
    with vault.store.transaction() as tx:
        before = tx.lifecycle.get_hold(recording_id)
        if before is None or not tx.lifecycle.release_hold(recording_id):
            raise Conflict("the recording is not on legal hold")
        audit.record(
            vault,
            tx,
            principal,
            Action.RECORDING_RELEASE,
            recording_id=recording_id,
            reason=ref,
            detail={"held_since": before.set_at.date().isoformat(), "hold": before.reference},
        )
    return before
