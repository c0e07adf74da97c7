"""The audit-log half of the MetadataStore conformance suite.

Appends, the stored Merkle head, streaming reads and checkpoints, under
concurrency and failed transactions.  Used through
:class:`callvault.testing.metadata.MetadataStoreConformance`; see that
module for the fixtures a subclass must override.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from callvault.core import merkle
from callvault.core.errors import StorageError
from callvault.core.ports import MetadataStore
from callvault.testing.metadata_support import (
    HOUR,
    T0,
    StoreFactory,
    StoreFixtures,
    audit_row,
    expect_root,
    recording,
)


class AuditLogConformance(StoreFixtures):
    """Behaviour of the audit log every MetadataStore adapter shares."""

    # -- audit log -------------------------------------------------------------------

    def test_empty_log_has_size_zero_and_the_empty_frontier(self, store: MetadataStore) -> None:
        with store.transaction() as tx:
            assert tx.audit_head() == (0, merkle.Frontier().to_bytes())
            assert tx.append_audit([]) == []
            assert tx.audit_head()[0] == 0
        assert list(store.iter_audit()) == []

    def test_append_assigns_consecutive_seqs_and_keeps_the_frontier(
        self, store: MetadataStore
    ) -> None:
        rid = uuid.uuid4()
        batches = [
            [audit_row(0, rid)],
            [audit_row(1), audit_row(2)],
            [audit_row(i) for i in range(3, 8)],
        ]
        seqs = []
        for batch in batches:
            with store.transaction() as tx:
                seqs.append(tx.append_audit(batch))
        assert seqs == [[0], [1, 2], [3, 4, 5, 6, 7]]
        records = list(store.iter_audit())
        flat = [row for batch in batches for row in batch]
        assert [(r.body, r.leaf_hash, r.action, r.recording_id, r.time) for r in records] == flat
        assert records[0].time.utcoffset() == dt.timedelta(0)
        expect_root(store)

    def test_iter_audit_honours_start_and_end(self, store: MetadataStore) -> None:
        with store.transaction() as tx:
            tx.append_audit([audit_row(i) for i in range(10)])

        def seqs(start: int = 0, end: int | None = None) -> list[int]:
            return [r.seq for r in store.iter_audit(start, end)]

        assert seqs() == list(range(10))
        assert seqs(3) == list(range(3, 10))
        assert seqs(3, 7) == [3, 4, 5, 6]
        assert seqs(0, 1) == [0]
        assert seqs(5, 5) == [] and seqs(7, 3) == [] and seqs(10) == [] and seqs(8, 50) == [8, 9]

    def test_iter_audit_streams_a_log_larger_than_one_read_batch(
        self, store: MetadataStore
    ) -> None:
        count = 10_050
        with store.transaction() as tx:
            tx.append_audit([audit_row(i) for i in range(count)])
        assert sum(1 for _ in store.iter_audit()) == count
        assert [r.seq for r in store.iter_audit(9_990, 10_010)] == list(range(9_990, 10_010))
        leaves = [seq for seq, _, _ in store.iter_audit_leaves()]
        assert leaves == list(range(count))
        assert [seq for seq, _, _ in store.iter_audit_leaves(9_990, 10_010)] == leaves[9_990:10_010]
        expect_root(store)

    def test_iter_audit_leaves_gives_seq_body_and_leaf_hash_as_stored(
        self, store: MetadataStore
    ) -> None:
        rows = [audit_row(i, uuid.uuid4() if i % 2 else None) for i in range(6)]
        # The store hands back what it holds; checking a leaf is the verifier's job.
        body, _, action, rid, time = rows[4]
        rows[4] = (body, merkle.leaf_hash(b"something else"), action, rid, time)
        with store.transaction() as tx:
            tx.append_audit(rows)
        leaves = list(store.iter_audit_leaves())
        assert leaves == [(seq, row[0], row[1]) for seq, row in enumerate(rows)]
        assert [tuple(map(type, leaf)) for leaf in leaves] == [(int, bytes, bytes)] * 6
        assert leaves == [(r.seq, r.body, r.leaf_hash) for r in store.iter_audit()]

    def test_append_with_a_naive_time_raises_storage_error_and_writes_nothing(
        self, store: MetadataStore
    ) -> None:
        body, leaf_hash, action, rid, time = audit_row(0)
        with pytest.raises(StorageError), store.transaction() as tx:
            tx.append_audit([(body, leaf_hash, action, rid, time.replace(tzinfo=None))])
        assert list(store.iter_audit()) == []
        with store.transaction() as tx:
            assert tx.append_audit([audit_row(0)]) == [0]

    def test_iter_audit_leaves_honours_start_and_end(self, store: MetadataStore) -> None:
        with store.transaction() as tx:
            tx.append_audit([audit_row(i) for i in range(10)])

        def seqs(start: int = 0, end: int | None = None) -> list[int]:
            return [seq for seq, _, _ in store.iter_audit_leaves(start, end)]

        assert seqs() == list(range(10))
        assert seqs(3) == list(range(3, 10))
        assert seqs(3, 7) == [3, 4, 5, 6]
        assert seqs(5, 5) == [] and seqs(7, 3) == [] and seqs(10) == [] and seqs(8, 50) == [8, 9]

    @pytest.mark.parametrize("handles", ["one shared handle", "a handle per thread"])
    def test_concurrent_appenders_never_duplicate_or_skip_a_seq(
        self, make_store: StoreFactory, store: MetadataStore, handles: str
    ) -> None:
        writers, rounds, per_round = 6, 8, 3
        own = [make_store() if handles.endswith("thread") else store for _ in range(writers)]
        start = threading.Barrier(writers)

        def write(w: int) -> list[tuple[int, bytes]]:
            start.wait()
            got: list[tuple[int, bytes]] = []
            for r in range(rounds):
                batch = [audit_row(1000 * w + 10 * r + i) for i in range(per_round)]
                with own[w].transaction() as tx:
                    seqs = tx.append_audit(batch)
                got += zip(seqs, [row[0] for row in batch], strict=True)
            return got

        with ThreadPoolExecutor(writers) as pool:
            written = [item for part in pool.map(write, range(writers)) for item in part]
        for handle in own:
            if handle is not store:
                handle.close()
        total = writers * rounds * per_round
        assert sorted(seq for seq, _ in written) == list(range(total))
        assert {r.seq: r.body for r in store.iter_audit()} == dict(written)
        expect_root(store)

    def test_failed_transaction_leaves_no_audit_entry_and_no_head_change(
        self, store: MetadataStore, bucket: int
    ) -> None:
        with store.transaction() as tx:
            tx.append_audit([audit_row(0)])
        row = recording(bucket)
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.insert_recording(row)
            tx.append_audit([audit_row(1), audit_row(2)])
            tx.insert_bucket_kek("2019-07", "record", 1, 1, b"w", T0)
            tx.set_info("k", "v")
            tx.add_checkpoint(3, "note\n", T0)
            raise RuntimeError("the caller failed after writing")
        with store.transaction() as tx:
            assert tx.get_recording(row.id) is None
            assert tx.current_bucket_kek("2019-07", "record") is None
            assert tx.get_info("k") is None
        assert [r.seq for r in store.iter_audit()] == [0]
        assert store.checkpoints() == []
        expect_root(store)
        with store.transaction() as tx:
            assert tx.append_audit([audit_row(1)]) == [1]

    def test_uncommitted_entries_are_invisible_to_other_handles(
        self, make_store: StoreFactory, store: MetadataStore
    ) -> None:
        other = make_store()
        try:
            with store.transaction() as tx:
                tx.append_audit([audit_row(0)])
                assert list(other.iter_audit()) == []
            assert [r.seq for r in other.iter_audit()] == [0]
        finally:
            other.close()

    def test_add_checkpoint_is_idempotent_and_listed_by_size(self, store: MetadataStore) -> None:
        with store.transaction() as tx:
            tx.add_checkpoint(5, "five\n", T0)
            tx.add_checkpoint(2, "two\n", T0)
        with store.transaction() as tx:
            tx.add_checkpoint(5, "five again\n", T0 + HOUR)
            assert tx.latest_checkpoint_size() == 5
        assert store.checkpoints() == [(2, "two\n"), (5, "five\n")]

    def test_latest_checkpoint_size_is_none_for_a_log_never_checkpointed(
        self, store: MetadataStore
    ) -> None:
        with store.transaction() as tx:
            tx.append_audit([audit_row(0)])
            assert tx.latest_checkpoint_size() is None
            tx.add_checkpoint(0, "zero\n", T0)
            assert tx.latest_checkpoint_size() == 0
