"""Key hierarchy use cases: bucket KEKs, DEK wrapping, rotation and status.

Root KEK (KeyProvider) -> bucket KEK per (call month x retention class),
stored wrapped in the metadata DB -> one DEK per recording, wrapped by its
bucket KEK.  Rotation re-wraps; audio is never re-encrypted.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from callvault.core import keys as hierarchy
from callvault.core.access import Operation, Principal
from callvault.core.audit import Action, AuditEvent
from callvault.core.errors import AlreadyExists, KeyUnavailable
from callvault.core.ports import Transaction
from callvault.core.recordings import BucketKekRow, RecordingRow
from callvault.core.rows import AuditFilter
from callvault.services import audit
from callvault.services.context import Vault
from callvault.services.guard import authorise

REWRAP_BATCH = 500


def bucket_kek(vault: Vault, row: BucketKekRow) -> bytes:
    """Unwrap a bucket KEK with the root, caching it for this process."""
    cached = vault._bucket_kek_cache.get(row.id)
    if cached is not None:
        return cached
    bucket = hierarchy.BucketId(row.month, row.retention_class)
    kek = vault.keys.unwrap(
        row.root_version, row.wrapped, hierarchy.bucket_kek_ad(bucket, row.version)
    )
    vault._bucket_kek_cache[row.id] = kek
    return kek


def current_bucket(vault: Vault, month: str, retention_class: str) -> BucketKekRow:
    """The current bucket KEK for a bucket, creating version 1 on first use."""
    with vault.store.transaction() as tx:
        row = tx.current_bucket_kek(month, retention_class)
    if row is not None:
        return row
    try:
        return _new_bucket_version(vault, month, retention_class, 1)
    except AlreadyExists:
        # Another ingest created it at the same moment; use theirs.
        with vault.store.transaction() as tx:
            row = tx.current_bucket_kek(month, retention_class)
        if row is None:
            raise KeyUnavailable("bucket key vanished") from None
        return row


def _new_bucket_version(
    vault: Vault, month: str, retention_class: str, version: int
) -> BucketKekRow:
    bucket = hierarchy.BucketId(month, retention_class)
    kek = hierarchy.new_bucket_kek()
    root_version, wrapped = vault.keys.wrap(kek, hierarchy.bucket_kek_ad(bucket, version))
    with vault.store.transaction() as tx:
        row = tx.insert_bucket_kek(
            month, retention_class, version, root_version, wrapped, vault.now()
        )
    vault._bucket_kek_cache[row.id] = kek
    return row


def wrap_dek(
    vault: Vault, bucket: BucketKekRow, recording_id: uuid.UUID, dek_id: bytes, dek: bytes
) -> bytes:
    return hierarchy.wrap_dek(
        bucket_kek(vault, bucket),
        dek,
        recording_id=recording_id,
        dek_id=dek_id,
        bucket=hierarchy.BucketId(bucket.month, bucket.retention_class),
        kek_version=bucket.version,
    )


def unwrap_dek(vault: Vault, tx: Transaction, row: RecordingRow) -> bytes:
    bucket = tx.get_bucket_kek(row.bucket_kek_id)
    if bucket is None:
        raise KeyUnavailable("the recording's bucket key has been destroyed")
    return hierarchy.unwrap_dek(
        bucket_kek(vault, bucket),
        row.wrapped_dek,
        recording_id=row.id,
        dek_id=row.dek_id,
        bucket=hierarchy.BucketId(bucket.month, bucket.retention_class),
        kek_version=bucket.version,
    )


def dek_for(vault: Vault, row: RecordingRow) -> bytes:
    with vault.store.transaction() as tx:
        return unwrap_dek(vault, tx, row)


@dataclass(frozen=True)
class RotationReport:
    root_version: int
    buckets_rotated: int
    deks_rewrapped: int
    roots_retired: list[int]


def rotate(vault: Vault, principal: Principal) -> RotationReport:
    """New root version and new bucket KEK versions; re-wrap everything under them.

    Safe to interrupt and re-run: each step is a conditional update, and a
    re-run first finishes what an interrupted run left (old-version bucket KEKs
    that still hold DEKs, bucket KEKs still under an old root).  The audit
    entry is written first: no entry, no key change (R15), and a run killed
    half-way is still on record.
    """
    audit.record_alone(
        vault,
        principal,
        Action.KEY_ROTATE,
        detail={"from_root_version": vault.keys.current_version()},
    )
    root_version = vault.keys.rotate()
    with vault.store.transaction() as tx:
        current = _current_versions(tx.bucket_keks())
    fresh = {
        key: _new_bucket_version(vault, key[0], key[1], row.version + 1)
        for key, row in current.items()
    }
    moved = _rewrap_all_deks(vault, fresh)
    _rewrap_bucket_roots(vault, root_version)
    retired = _retire_unused_roots(vault)
    return RotationReport(root_version, len(fresh), moved, retired)


def pending_rewrap(vault: Vault) -> int:
    """DEKs still wrapped by a bucket KEK that is not its bucket's newest version."""
    with vault.store.transaction(read_only=True) as tx:
        rows = tx.bucket_keks()
        counts = tx.dek_counts()
    newest = _current_versions(rows)
    return sum(counts.get(r.id, 0) for r in rows if newest[(r.month, r.retention_class)].id != r.id)


def finish_rotation(vault: Vault) -> int:
    """What an interrupted rotation left: DEKs under old bucket KEK versions, bucket
    KEKs under old roots, roots nothing uses.  Idempotent; the DEKs moved."""
    moved = _rewrap_all_deks(vault, {})
    _rewrap_bucket_roots(vault, vault.keys.current_version())
    _retire_unused_roots(vault)
    return moved


def _current_versions(rows: list[BucketKekRow]) -> dict[tuple[str, str], BucketKekRow]:
    current: dict[tuple[str, str], BucketKekRow] = {}
    for row in rows:
        key = (row.month, row.retention_class)
        if key not in current or row.version > current[key].version:
            current[key] = row
    return current


def _rewrap_all_deks(vault: Vault, targets: dict[tuple[str, str], BucketKekRow]) -> int:
    with vault.store.transaction() as tx:
        rows = tx.bucket_keks()
        counts = tx.dek_counts()
    newest = _current_versions(rows)
    targets = {**newest, **targets}
    moved = 0
    for old in rows:
        target = targets[(old.month, old.retention_class)]
        if old.id == target.id:
            continue
        moved += _move_deks(vault, old, target, counts.get(old.id, 0))
        with vault.store.transaction() as tx:
            if tx.recording_ids_under(old.id, 1):
                continue  # new recordings arrived under it meanwhile; next run moves them
            tx.delete_bucket_kek(old.id)
        vault._bucket_kek_cache.pop(old.id, None)
    return moved


def _move_deks(vault: Vault, old: BucketKekRow, new: BucketKekRow, expected: int) -> int:
    moved = 0
    while True:
        with vault.store.transaction() as tx:
            ids = tx.recording_ids_under(old.id, REWRAP_BATCH)
            for recording_id in ids:
                row = tx.get_recording(recording_id)
                if row is None:
                    continue
                dek = unwrap_dek(vault, tx, row)
                wrapped = wrap_dek(vault, new, row.id, row.dek_id, dek)
                moved += tx.rewrap_dek(row.id, old.id, new.id, wrapped)
        if len(ids) < REWRAP_BATCH:
            return moved


def _rewrap_bucket_roots(vault: Vault, root_version: int) -> None:
    with vault.store.transaction() as tx:
        rows = [r for r in tx.bucket_keks() if r.root_version != root_version]
    for row in rows:
        kek = bucket_kek(vault, row)
        ad = hierarchy.bucket_kek_ad(
            hierarchy.BucketId(row.month, row.retention_class), row.version
        )
        version, wrapped = vault.keys.wrap(kek, ad)
        with vault.store.transaction() as tx:
            tx.update_bucket_kek_wrap(row.id, version, wrapped)


def _retire_unused_roots(vault: Vault) -> list[int]:
    with vault.store.transaction() as tx:
        in_use = {r.root_version for r in tx.bucket_keks()}
    current = vault.keys.current_version()
    retired = [v for v in vault.keys.versions() if v != current and v not in in_use]
    for version in retired:
        vault.keys.retire(version)
    return retired


@dataclass(frozen=True)
class KeyStatus:
    root_current: int
    root_versions: list[int]
    buckets: list[tuple[str, str, int, int, int]]  # month, class, version, root version, DEKs
    last_rotation: dt.datetime | None = None  # when the newest `keys rotate` began


def status(vault: Vault, principal: Principal) -> KeyStatus:
    """Root key versions, bucket keys with their recording counts, and the last
    rotation (from the log); needs ``key.status``."""
    authorise(vault, principal, Operation.KEY_STATUS, None)
    with vault.store.transaction() as tx:
        rows = tx.bucket_keks()
        counts = tx.dek_counts()
        rotations = tx.grants.audit_page(AuditFilter(action=Action.KEY_ROTATE.value), None, 1)
        audit.record(vault, tx, principal, Action.KEY_STATUS)
    buckets = [
        (r.month, r.retention_class, r.version, r.root_version, counts.get(r.id, 0)) for r in rows
    ]
    last = AuditEvent.from_canonical(rotations[0].body).time if rotations else None
    return KeyStatus(vault.keys.current_version(), vault.keys.versions(), buckets, last)
