"""Conformance suite that every :class:`~callvault.core.ports.MetadataStore` must pass.

Subclass :class:`MetadataStoreConformance` in a test module and override two
fixtures:

``make_store``
    A zero-argument factory; every call opens a new handle (its own
    connections) onto the *same* database, which starts empty for each test.
``lose_database``
    A zero-argument callable that makes that database unusable for every
    handle already made (dropped, corrupted); afterwards every call must
    raise ``StorageError``.

::

    class TestSqliteStore(MetadataStoreConformance):
        @pytest.fixture
        def make_store(self, tmp_path):
            return lambda: SqlMetadataStore.open(f"sqlite:///{tmp_path}/vault.db")

The suite talks to stores only through the port, so a driver exception that
leaks (anything but a ``CallvaultError``) fails it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from callvault.core.errors import AlreadyExists, Conflict, StorageError
from callvault.core.ports import MetadataStore
from callvault.core.recordings import ACTIVE, PENDING, BucketKekRow, RecordingRow, SearchCriteria
from callvault.testing.metadata_audit import AuditLogConformance
from callvault.testing.metadata_reads import ReadOnlyUnitConformance
from callvault.testing.metadata_support import (
    HOUR,
    T0,
    StoreFactory,
    add_bucket,
    audit_row,
    recording,
)

__all__ = ["MetadataStoreConformance"]


class MetadataStoreConformance(AuditLogConformance, ReadOnlyUnitConformance):
    """Behaviour every MetadataStore adapter shares; see the module docstring.

    Recordings, search, bucket KEKs, vault info and failures are checked
    here; the audit log by :class:`AuditLogConformance`, read-only units by
    :class:`ReadOnlyUnitConformance`.
    """

    # -- recordings ------------------------------------------------------------

    def test_inserted_recording_reads_back_field_for_field(
        self, store: MetadataStore, bucket: int
    ) -> None:
        full = recording(bucket, call_id_bidx=secrets.token_bytes(16), enc_call_id=b"\x00\xff")
        sparse = recording(bucket, state=PENDING, agent=None, caller_bidx=None, enc_peaks=None)
        self.insert(store, full, sparse)
        with store.transaction() as tx:
            assert tx.get_recording(full.id) == full
            assert tx.get_recording(sparse.id) == sparse
            assert tx.find_by_fingerprint(full.fingerprint) == full
            assert tx.get_recording(uuid.uuid4()) is None
            assert tx.find_by_fingerprint(secrets.token_bytes(16)) is None

    def test_datetimes_round_trip_as_aware_utc(self, store: MetadataStore, bucket: int) -> None:
        stockholm = dt.timezone(dt.timedelta(hours=1))
        local = dt.datetime(2019, 2, 18, 10, 22, 5, 999_999, tzinfo=stockholm)
        row = recording(bucket, started_at=local)
        self.insert(store, row)
        with store.transaction() as tx:
            got = tx.get_recording(row.id)
            kek = tx.get_bucket_kek(bucket)
        assert got is not None and kek is not None
        for value in (got.started_at, got.created_at, kek.created_at):
            assert value.utcoffset() == dt.timedelta(0)
        assert got.started_at == local
        assert got.started_at.hour == 9 and got.started_at.microsecond == 999_999

    @pytest.mark.parametrize("column", ["id", "object_name", "fingerprint"])
    def test_unique_violation_raises_already_exists_and_rolls_back_the_transaction(
        self, store: MetadataStore, bucket: int, column: str
    ) -> None:
        first = recording(bucket)
        self.insert(store, first)
        bystander = recording(bucket)
        clash = recording(bucket, **{column: getattr(first, column)})
        raised_at_call = False
        with pytest.raises(AlreadyExists), store.transaction() as tx:
            tx.insert_recording(bystander)
            tx.set_info("touched", "yes")
            tx.append_audit([audit_row(0)])
            try:
                tx.insert_recording(clash)
            except AlreadyExists:
                raised_at_call = True  # the caller sees it at the call, not only at commit
                raise
        assert raised_at_call
        with store.transaction() as tx:
            assert tx.get_recording(bystander.id) is None
            assert tx.get_info("touched") is None
            assert tx.audit_head()[0] == 0
            assert tx.get_recording(first.id) == first
        assert list(store.iter_audit()) == []

    def test_swallowed_failure_still_dooms_the_transaction(
        self, store: MetadataStore, bucket: int
    ) -> None:
        first, bystander = recording(bucket), recording(bucket)
        self.insert(store, first)
        with pytest.raises(StorageError), store.transaction() as tx:
            tx.insert_recording(bystander)
            with contextlib.suppress(AlreadyExists):  # a careless caller carries on
                tx.insert_recording(first)
        with store.transaction() as tx:
            assert tx.get_recording(bystander.id) is None

    def test_row_naming_a_missing_bucket_kek_raises_conflict(self, store: MetadataStore) -> None:
        with pytest.raises(Conflict), store.transaction() as tx:
            tx.insert_recording(recording(9_999))

    def test_activate_turns_pending_active_exactly_once(
        self, store: MetadataStore, bucket: int
    ) -> None:
        pending, active = recording(bucket, state=PENDING), recording(bucket)
        self.insert(store, pending, active)
        digest = secrets.token_bytes(32)
        with store.transaction() as tx:
            assert tx.activate_recording(pending.id, 4242, digest) is True
            assert tx.activate_recording(pending.id, 1, b"\x00" * 32) is False
            assert tx.activate_recording(active.id, 1, b"\x00" * 32) is False
            assert tx.activate_recording(uuid.uuid4(), 1, b"\x00" * 32) is False
            got = tx.get_recording(pending.id)
        assert got is not None
        assert (got.state, got.ciphertext_size, got.ciphertext_sha256) == (ACTIVE, 4242, digest)
        assert got == replace(pending, state=ACTIVE, ciphertext_size=4242, ciphertext_sha256=digest)

    def test_concurrent_activations_let_exactly_one_win(
        self, make_store: StoreFactory, store: MetadataStore, bucket: int
    ) -> None:
        row = recording(bucket, state=PENDING)
        self.insert(store, row)
        contenders = 4
        handles = [make_store() for _ in range(contenders)]
        start = threading.Barrier(contenders)

        def activate(handle: MetadataStore) -> bool:
            start.wait()
            with handle.transaction() as tx:
                return tx.activate_recording(row.id, 1, secrets.token_bytes(32))

        with ThreadPoolExecutor(contenders) as pool:
            results = list(pool.map(activate, handles))
        for handle in handles:
            handle.close()
        assert sorted(results) == [False] * (contenders - 1) + [True]

    def test_delete_recording_removes_only_that_row(
        self, store: MetadataStore, bucket: int
    ) -> None:
        doomed, kept = recording(bucket), recording(bucket)
        self.insert(store, doomed, kept)
        with store.transaction() as tx:
            tx.delete_recording(doomed.id)
            tx.delete_recording(uuid.uuid4())  # unknown: not an error
        with store.transaction() as tx:
            assert tx.get_recording(doomed.id) is None
            assert tx.find_by_fingerprint(doomed.fingerprint) is None
            assert tx.get_recording(kept.id) == kept

    def test_rewrap_dek_only_replaces_a_dek_still_under_the_old_kek(
        self, store: MetadataStore, bucket: int
    ) -> None:
        row = recording(bucket)
        self.insert(store, row)
        with store.transaction() as tx:
            newer = add_bucket(tx, version=2)
            assert tx.rewrap_dek(row.id, newer, bucket, b"wrong") is False
            assert tx.rewrap_dek(row.id, bucket, newer, b"rewrapped") is True
            assert tx.rewrap_dek(row.id, bucket, newer, b"again") is False
            got = tx.get_recording(row.id)
        assert got is not None
        assert (got.bucket_kek_id, got.wrapped_dek) == (newer, b"rewrapped")

    def test_iter_recordings_yields_every_row_in_id_order_across_batches(
        self, store: MetadataStore, bucket: int
    ) -> None:
        rows = [recording(bucket, state=PENDING if i % 3 else ACTIVE) for i in range(7)]
        self.insert(store, *rows)
        expected = sorted(rows, key=lambda r: r.id)
        for batch in (1, 2, 3, 7, 1000):
            assert list(store.iter_recordings(batch=batch)) == expected
        assert list(store.iter_recordings()) == expected

    # -- search ------------------------------------------------------------------

    def test_search_matches_every_criterion_alone_and_combined(
        self, store: MetadataStore, bucket: int
    ) -> None:
        caller, pnr, call = (secrets.token_bytes(16) for _ in range(3))
        a = recording(bucket, caller_bidx=caller, pnr_bidx=pnr, call_id_bidx=call)
        b = recording(bucket, caller_bidx=caller, care_unit="unit-b", agent="nurse.b")
        c = recording(bucket, pnr_bidx=pnr, care_unit="unit-b", started_at=T0 + HOUR)
        self.insert(store, a, b, c, recording(bucket))
        cases: list[tuple[SearchCriteria, list[RecordingRow]]] = [
            (SearchCriteria(caller_bidx=caller), [a, b]),
            (SearchCriteria(pnr_bidx=pnr), [c, a]),
            (SearchCriteria(call_id_bidx=call), [a]),
            (SearchCriteria(care_unit="unit-b"), [c, b]),
            (SearchCriteria(agent="nurse.b"), [b]),
            (SearchCriteria(caller_bidx=caller, care_unit="unit-b"), [b]),
            (SearchCriteria(pnr_bidx=pnr, care_unit="unit-b"), [c]),
            (SearchCriteria(caller_bidx=caller, pnr_bidx=pnr, agent="nurse.a"), [a]),
            (SearchCriteria(caller_bidx=caller, agent="nurse.x"), []),
            (SearchCriteria(caller_bidx=secrets.token_bytes(16)), []),
        ]
        with store.transaction() as tx:
            for criteria, expected in cases:
                found = tx.search(criteria)
                # a and b share started_at; ties come back in some stable order.
                assert sorted(r.id for r in found) == sorted(r.id for r in expected), criteria
                assert [r.started_at for r in found] == [r.started_at for r in expected]
            assert tx.search(SearchCriteria(agent="nurse.b")) == [b]

    def test_search_range_includes_from_and_excludes_to(
        self, store: MetadataStore, bucket: int
    ) -> None:
        tick = dt.timedelta(microseconds=1)
        edge = [recording(bucket, started_at=T0 + d) for d in (-tick, 0 * tick, HOUR - tick, HOUR)]
        self.insert(store, *edge)
        with store.transaction() as tx:
            found = tx.search(SearchCriteria(started_from=T0, started_to=T0 + HOUR))
            assert [r.id for r in found] == [edge[2].id, edge[1].id]
            assert len(tx.search(SearchCriteria(started_from=T0))) == 3
            assert len(tx.search(SearchCriteria(started_to=T0))) == 1
            local = dt.timezone(dt.timedelta(hours=1))
            shifted = SearchCriteria(started_from=T0.astimezone(local))
            assert len(tx.search(shifted)) == 3

    def test_search_never_returns_pending_rows(self, store: MetadataStore, bucket: int) -> None:
        caller = secrets.token_bytes(16)
        pending = recording(bucket, state=PENDING, caller_bidx=caller)
        self.insert(store, pending)
        with store.transaction() as tx:
            assert tx.search(SearchCriteria(caller_bidx=caller)) == []
            assert tx.search(SearchCriteria(care_unit="unit-a")) == []
            tx.activate_recording(pending.id, 1, secrets.token_bytes(32))
            assert [r.id for r in tx.search(SearchCriteria(caller_bidx=caller))] == [pending.id]

    def test_search_orders_newest_call_first_and_honours_limit(
        self, store: MetadataStore, bucket: int
    ) -> None:
        rows = [recording(bucket, started_at=T0 + (i * 7 % 10) * HOUR) for i in range(10)]
        self.insert(store, *rows)
        newest = sorted(rows, key=lambda r: r.started_at, reverse=True)
        with store.transaction() as tx:
            assert tx.search(SearchCriteria(care_unit="unit-a")) == newest
            assert tx.search(SearchCriteria(care_unit="unit-a", limit=3)) == newest[:3]
            assert tx.search(SearchCriteria(care_unit="unit-a", limit=1)) == newest[:1]

    # -- bucket KEKs ---------------------------------------------------------------

    def test_bucket_keks_insert_read_and_report_the_current_version(
        self, store: MetadataStore
    ) -> None:
        with store.transaction() as tx:
            assert tx.current_bucket_kek("2019-02", "record") is None
            v1 = tx.insert_bucket_kek("2019-02", "record", 1, 3, b"w1", T0)
            v2 = tx.insert_bucket_kek("2019-02", "record", 2, 4, b"w2", T0 + HOUR)
            other = tx.insert_bucket_kek("2019-02", "quality", 1, 4, b"wq", T0)
            march = tx.insert_bucket_kek("2019-03", "record", 1, 4, b"wm", T0)
        assert v1 == BucketKekRow(v1.id, "2019-02", "record", 1, 3, b"w1", T0)
        assert len({v1.id, v2.id, other.id, march.id}) == 4
        with store.transaction() as tx:
            assert tx.current_bucket_kek("2019-02", "record") == v2
            assert tx.current_bucket_kek("2019-02", "quality") == other
            assert tx.current_bucket_kek("2019-03", "record") == march
            assert tx.current_bucket_kek("2019-04", "record") is None
            assert tx.get_bucket_kek(v1.id) == v1
            assert tx.get_bucket_kek(10_000) is None
            assert tx.bucket_keks() == sorted([v1, v2, other, march], key=lambda r: r.id)

    def test_duplicate_bucket_kek_version_raises_already_exists(self, store: MetadataStore) -> None:
        with store.transaction() as tx:
            add_bucket(tx)
        with pytest.raises(AlreadyExists), store.transaction() as tx:
            add_bucket(tx, month="2019-05")
            add_bucket(tx)
        with store.transaction() as tx:
            assert [(r.month, r.version) for r in tx.bucket_keks()] == [("2019-02", 1)]

    def test_bucket_kek_update_and_delete(self, store: MetadataStore, bucket: int) -> None:
        with store.transaction() as tx:
            spare = add_bucket(tx, month="2019-06")
            tx.update_bucket_kek_wrap(bucket, 7, b"rewrapped")
            tx.delete_bucket_kek(spare)
        with store.transaction() as tx:
            got = tx.get_bucket_kek(bucket)
            assert got is not None and (got.root_version, got.wrapped) == (7, b"rewrapped")
            assert tx.get_bucket_kek(spare) is None

    def test_bucket_kek_still_holding_deks_cannot_be_deleted(
        self, store: MetadataStore, bucket: int
    ) -> None:
        self.insert(store, recording(bucket))
        with pytest.raises(Conflict), store.transaction() as tx:
            tx.delete_bucket_kek(bucket)
        with store.transaction() as tx:
            assert tx.get_bucket_kek(bucket) is not None

    def test_dek_counts_and_recording_ids_under_cover_every_state(
        self, store: MetadataStore, bucket: int
    ) -> None:
        with store.transaction() as tx:
            other, empty = add_bucket(tx, version=2), add_bucket(tx, version=3)
        under = [recording(bucket, state=PENDING), recording(bucket), recording(bucket)]
        self.insert(store, *under, recording(other))
        with store.transaction() as tx:
            assert tx.dek_counts() == {bucket: 3, other: 1}
            assert set(tx.recording_ids_under(bucket, 10)) == {r.id for r in under}
            limited = tx.recording_ids_under(bucket, 2)
            assert len(limited) == 2 and set(limited) <= {r.id for r in under}
            assert tx.recording_ids_under(empty, 10) == []

    # -- vault info and sharing ---------------------------------------------------------

    def test_info_is_absent_then_set_then_overwritten(self, store: MetadataStore) -> None:
        with store.transaction() as tx:
            assert tx.get_info("vault_id") is None
            tx.set_info("vault_id", "first")
            tx.set_info("other", "x")
            assert tx.get_info("vault_id") == "first"
        with store.transaction() as tx:
            tx.set_info("vault_id", "second")
        with store.transaction() as tx:
            assert (tx.get_info("vault_id"), tx.get_info("other")) == ("second", "x")

    def test_second_handle_sees_what_the_first_committed(
        self, make_store: StoreFactory, store: MetadataStore, bucket: int
    ) -> None:
        row = recording(bucket)
        self.insert(store, row)
        with store.transaction() as tx:
            tx.append_audit([audit_row(0)])
            tx.set_info("vault_id", "v")
        other = make_store()
        try:
            with other.transaction() as tx:
                assert tx.get_recording(row.id) == row
                assert tx.get_info("vault_id") == "v"
            assert [r.seq for r in other.iter_audit()] == [0]
            assert list(other.iter_recordings()) == [row]
        finally:
            other.close()

    # -- failures surface as callvault errors ----------------------------------------------

    def test_lost_database_raises_storage_error_everywhere(
        self, store: MetadataStore, bucket: int, lose_database: Callable[[], None]
    ) -> None:
        self.insert(store, recording(bucket))
        with store.transaction() as tx:
            tx.append_audit([audit_row(0)])
        lose_database()
        calls: list[Callable[[], object]] = [
            lambda: list(store.iter_recordings()),
            lambda: list(store.iter_audit()),
            lambda: list(store.iter_audit_leaves()),
            store.checkpoints,
        ]
        for call in calls:
            with pytest.raises(StorageError):
                call()
        for write in (True, False):
            with pytest.raises(StorageError), store.transaction() as tx:
                tx.append_audit([audit_row(1)]) if write else tx.get_info("vault_id")
