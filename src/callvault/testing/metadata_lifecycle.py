"""Conformance of the :class:`~callvault.core.ports.LifecycleRepo` port, every backend.

Subclass :class:`LifecycleConformance` with the same two fixtures as
:class:`~callvault.testing.metadata.MetadataStoreConformance`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from callvault.core.ports import MetadataStore
from callvault.core.recordings import PENDING, RecordingRow
from callvault.core.retention import LegalHold, RecordingPolicy
from callvault.testing.metadata_support import HOUR, T0, StoreFixtures, add_bucket, recording

__all__ = ["LifecycleConformance"]

DAY = dt.timedelta(days=1)


def policy(unit: str = "unit-a", klass: str = "quality", days: int = 30) -> RecordingPolicy:
    return RecordingPolicy.new(
        care_unit=unit,
        retention_class=klass,
        purpose="Quality follow-up of advice calls",
        legal_basis="Consent of the caller",
        keep_days=days,
        changed_at=T0,
        changed_by="admin.a",
    )


class LifecycleConformance(StoreFixtures):
    def stamped(
        self, store: MetadataStore, bucket: int, keep_until: dt.datetime | None, **fields: object
    ) -> RecordingRow:
        row = recording(bucket, **fields)
        with store.transaction() as tx:
            tx.insert_recording(row)
            if keep_until is not None:
                tx.lifecycle.set_keep_until(row.id, keep_until)
        return row

    def hold(self, store: MetadataStore, recording_id: uuid.UUID) -> bool:
        with store.transaction() as tx:
            return tx.lifecycle.add_hold(LegalHold(recording_id, "DNR 2026/7", "po.a", T0))

    def test_a_policy_is_stored_replaced_and_listed(self, store: MetadataStore) -> None:
        with store.transaction() as tx:
            tx.lifecycle.put_policy(policy("unit-b", "record", 3653))
            tx.lifecycle.put_policy(policy("unit-a"))
        retired = dataclasses.replace(policy("unit-a", days=14), active=False)
        with store.transaction() as tx:
            tx.lifecycle.put_policy(retired)
        with store.transaction(read_only=True) as tx:
            assert tx.lifecycle.get_policy("unit-a", "quality") == retired
            assert tx.lifecycle.get_policy("unit-a", "record") is None
            listed = tx.lifecycle.policies()
        assert [(p.care_unit, p.retention_class) for p in listed] == [
            ("unit-a", "quality"),
            ("unit-b", "record"),
        ]
        assert listed[1] == policy("unit-b", "record", 3653)

    def test_due_recordings_are_active_unheld_and_soonest_first(
        self, store: MetadataStore, bucket: int
    ) -> None:
        later = self.stamped(store, bucket, T0 + 2 * HOUR)
        sooner = self.stamped(store, bucket, T0 + HOUR)
        self.stamped(store, bucket, T0 + DAY)  # not yet due
        self.stamped(store, bucket, None)  # never stamped: never due
        self.stamped(store, bucket, T0, state=PENDING)
        held = self.stamped(store, bucket, T0, retention_class="quality")
        assert self.hold(store, held.id)
        now = T0 + 3 * HOUR
        with store.transaction(read_only=True) as tx:
            due = tx.lifecycle.due_recordings(now, 10)
            assert [r.id for r in tx.lifecycle.due_recordings(now, 1)] == [sooner.id]
            counts = tx.lifecycle.due_counts(now)
        assert [r.id for r in due] == [sooner.id, later.id]
        assert due[0] == sooner
        assert counts == {("record", False): 2, ("quality", True): 1}

    def test_shred_deletes_the_row_and_queues_its_object_unless_held(
        self, store: MetadataStore, bucket: int
    ) -> None:
        gone = self.stamped(store, bucket, T0)
        held = self.stamped(store, bucket, T0)
        pending = self.stamped(store, bucket, T0, state=PENDING)
        assert self.hold(store, held.id)
        with store.transaction() as tx:
            assert tx.lifecycle.shred([held, gone, pending], T0) == [gone.id]
            assert tx.lifecycle.shred([gone], T0) == []  # already gone
            assert tx.lifecycle.shred([], T0) == []
        with store.transaction() as tx:
            assert tx.get_recording(gone.id) is None
            assert tx.get_recording(held.id) == held
            assert tx.lifecycle.queued_objects(10) == [gone.object_name]
            tx.lifecycle.unqueue([gone.object_name])
        with store.transaction(read_only=True) as tx:
            assert tx.lifecycle.queued_objects(10) == []

    def test_a_bucket_kek_is_destroyed_only_when_no_recording_points_at_it(
        self, store: MetadataStore, bucket: int
    ) -> None:
        with store.transaction() as tx:
            empty = add_bucket(tx, "2019-03", "quality")
        row = self.stamped(store, bucket, T0)
        with store.transaction() as tx:
            assert [b.id for b in tx.lifecycle.empty_bucket_keks()] == [empty]
            assert tx.lifecycle.destroy_bucket_kek(bucket) is False
            assert tx.lifecycle.destroy_bucket_kek(empty) is True
            assert tx.lifecycle.destroy_bucket_kek(empty) is False
            assert tx.lifecycle.shred([row], T0) == [row.id]
            assert tx.lifecycle.destroy_bucket_kek(bucket) is True
            assert tx.bucket_keks() == []

    def test_a_hold_is_set_once_read_and_released(self, store: MetadataStore, bucket: int) -> None:
        row = self.stamped(store, bucket, T0 + DAY)
        assert self.hold(store, row.id) is True
        assert self.hold(store, row.id) is False
        with store.transaction() as tx:
            assert tx.lifecycle.get_hold(row.id) == LegalHold(row.id, "DNR 2026/7", "po.a", T0)
            assert tx.lifecycle.retention_facts([row.id, uuid.uuid4()]) == {
                row.id: (T0 + DAY, "DNR 2026/7")
            }
            assert [h.recording_id for h in tx.lifecycle.holds()] == [row.id]
            assert tx.lifecycle.release_hold(row.id) is True
            assert tx.lifecycle.release_hold(row.id) is False
            assert tx.lifecycle.get_hold(row.id) is None

    def test_matching_finds_active_rows_by_either_blind_index(
        self, store: MetadataStore, bucket: int
    ) -> None:
        phone, pnr = b"p" * 16, b"n" * 16
        by_phone = self.stamped(store, bucket, None, caller_bidx=phone, started_at=T0)
        by_pnr = self.stamped(store, bucket, None, pnr_bidx=pnr, started_at=T0 + HOUR)
        self.stamped(store, bucket, None, caller_bidx=phone, state=PENDING)
        self.stamped(store, bucket, None)
        with store.transaction(read_only=True) as tx:
            assert [r.id for r in tx.lifecycle.matching(phone, pnr, 10)] == [
                by_phone.id,
                by_pnr.id,
            ]
            assert [r.id for r in tx.lifecycle.matching(None, pnr, 10)] == [by_pnr.id]
            assert tx.lifecycle.matching(None, None, 10) == []
