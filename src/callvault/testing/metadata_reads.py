"""Read-only units of work: the part of the MetadataStore conformance suite for
``transaction(read_only=True)``.

Mixed into :class:`callvault.testing.metadata.MetadataStoreConformance`; see that
module for the fixtures a subclass must override.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from callvault.core.errors import StorageError
from callvault.core.ports import MetadataStore
from callvault.testing.metadata_support import StoreFactory, StoreFixtures, audit_row, recording

__all__ = ["ReadOnlyUnitConformance"]

# Far below SQLite's 30 s busy timeout: a read-only unit that queued behind
# the writer would miss it.
_NO_WAIT_SECONDS = 5.0


class ReadOnlyUnitConformance(StoreFixtures):
    """A read-only unit reads what was committed, never writes, and never
    waits for a writer."""

    def test_read_only_unit_reads_what_was_committed(
        self, store: MetadataStore, bucket: int
    ) -> None:
        row = recording(bucket)
        self.insert(store, row)
        with store.transaction() as tx:
            tx.set_info("vault_id", "v")
        with store.transaction(read_only=True) as tx:
            assert tx.get_recording(row.id) == row
            assert tx.get_info("vault_id") == "v"
            assert tx.get_bucket_kek(bucket) is not None

    @pytest.mark.parametrize("write", ["set_info", "insert_recording", "append_audit"])
    def test_write_in_read_only_unit_raises_storage_error_and_changes_nothing(
        self, store: MetadataStore, bucket: int, write: str
    ) -> None:
        row = recording(bucket)
        with pytest.raises(StorageError), store.transaction(read_only=True) as tx:
            if write == "set_info":
                tx.set_info("touched", "yes")
            elif write == "insert_recording":
                tx.insert_recording(row)
            else:
                tx.append_audit([audit_row(0)])
        with store.transaction() as tx:
            assert tx.get_info("touched") is None
            assert tx.get_recording(row.id) is None
            assert tx.audit_head()[0] == 0

    def test_swallowed_write_failure_still_dooms_the_read_only_unit(
        self, store: MetadataStore
    ) -> None:
        with pytest.raises(StorageError), store.transaction(read_only=True) as tx:
            assert tx.get_info("touched") is None
            with contextlib.suppress(StorageError):  # a careless caller carries on
                tx.set_info("touched", "yes")
        with store.transaction() as tx:
            assert tx.get_info("touched") is None

    def test_writing_unit_after_a_read_only_one_on_the_same_handle_still_writes(
        self, store: MetadataStore
    ) -> None:
        for n in range(3):  # the pooled connection goes back and forth
            with store.transaction(read_only=True) as tx:
                tx.get_info("counter")
            with store.transaction() as tx:
                tx.set_info("counter", str(n))
        with store.transaction(read_only=True) as tx:
            assert tx.get_info("counter") == "2"

    def test_read_only_unit_runs_beside_an_open_writer_and_sees_its_snapshot(
        self, make_store: StoreFactory, store: MetadataStore
    ) -> None:
        with store.transaction() as tx:
            tx.set_info("vault_id", "before")
        reader = make_store()

        def read() -> str | None:
            with reader.transaction(read_only=True) as rtx:
                return rtx.get_info("vault_id")

        try:
            with ThreadPoolExecutor(1) as pool, store.transaction() as tx:
                tx.set_info("vault_id", "uncommitted")
                # The writer holds its lock until this block ends.
                seen = pool.submit(read).result(timeout=_NO_WAIT_SECONDS)
            assert seen == "before"
        finally:
            reader.close()
