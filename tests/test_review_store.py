"""The ReviewRepo port on SQLite and PostgreSQL: the same cases on both (R17, R18, R22).

Exercised directly on the store, beside the service tests, so each method's
contract (order, slicing of long id lists, conditional writes) is checked
where it is implemented.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from callvault.adapters.db.store import SqlMetadataStore
from callvault.core.recordings import PENDING
from callvault.testing import postgres
from callvault.testing.metadata_support import HOUR, T0, add_bucket, audit_row, recording


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlMetadataStore]:
    if request.param == "sqlite":
        (tmp_path / "data").mkdir(mode=0o700)
        opened = SqlMetadataStore.open(f"sqlite:///{tmp_path / 'data' / 'vault.db'}")
        try:
            yield opened
        finally:
            opened.close()
    else:
        with postgres.throwaway_database() as url:
            opened = SqlMetadataStore.open(url)
            try:
                yield opened
            finally:
                opened.close()


def test_search_hits_keep_their_order_and_are_found_by_recording(store):
    ids = [uuid.uuid4() for _ in range(3)]
    with store.transaction() as tx:
        tx.review.add_search_hits(7, ids)
        tx.review.add_search_hits(9, ids[1:2])
        tx.review.add_search_hits(11, [])
    with store.transaction(read_only=True) as tx:
        assert tx.review.search_hits_of(7) == ids
        assert tx.review.search_hits_of(11) == []
        assert tx.review.searches_listing([ids[1]], 100) == [(7, ids[1]), (9, ids[1])]
        assert tx.review.searches_listing([ids[1]], 9) == [(7, ids[1])]


def test_recordings_are_found_by_either_blind_index_in_any_state(store):
    phone, pnr = b"p" * 16, b"n" * 16
    with store.transaction() as tx:
        bucket = add_bucket(tx)
        rows = [
            recording(bucket, caller_bidx=phone, pnr_bidx=None, started_at=T0 + HOUR),
            recording(bucket, caller_bidx=None, pnr_bidx=pnr, state=PENDING, started_at=T0),
            recording(bucket),
        ]
        for row in rows:
            tx.insert_recording(row)
    with store.transaction(read_only=True) as tx:
        found = tx.review.recordings_by_index(phone, pnr)
        assert [r.id for r in found] == [rows[1].id, rows[0].id]  # oldest call first
        assert tx.review.recordings_by_index(None, None) == []
        assert {r.id for r in tx.review.recordings_by_id([rows[2].id, uuid.uuid4()])} == {
            rows[2].id
        }


def test_audit_reads_by_recording_time_and_leaf_hashes_span_long_id_lists(store):
    many = [uuid.uuid4() for _ in range(1200)]  # more than one slice of bound parameters
    with store.transaction() as tx:
        tx.append_audit([audit_row(n, many[n * 100]) for n in range(12)])
    with store.transaction(read_only=True) as tx:
        assert [r.seq for r in tx.review.audit_of_recordings(many, 12)] == list(range(12))
        assert [r.seq for r in tx.review.audit_of_recordings(many, 5)] == list(range(5))
        between = tx.review.audit_between(T0 + 2 * HOUR, T0 + 4 * HOUR, ["recording:view"])
        assert [r.seq for r in between] == [2, 3]
        assert tx.review.audit_between(T0, T0 + 4 * HOUR, ["recording:play"]) == []
        hashes = tx.review.leaf_hashes(12)
        assert hashes == [r.leaf_hash for r in store.iter_audit(0, 12)]


def test_review_items_are_unique_per_rule_and_entry_and_resolved_once(store):
    rid = uuid.uuid4()
    with store.transaction() as tx:
        first = tx.review.add_item("after_hours", 5, "boss.a", T0, rid)
        assert first is not None
        assert tx.review.add_item("after_hours", 5, "boss.a", T0, rid) is None
        assert tx.review.add_item("sample", 5, "boss.a", T0 + HOUR, rid) is not None
    with store.transaction() as tx:
        assert tx.review.resolve_item(first, "ok", "fine", "rev", T0 + 2 * HOUR)
        assert not tx.review.resolve_item(first, "incident", None, "rev", T0 + 3 * HOUR)
        assert not tx.review.resolve_item(99999, "ok", None, "rev", T0)
    with store.transaction(read_only=True) as tx:
        everything = tx.review.items(open_only=False, since=None, until=None, limit=10)
        assert [(i.kind, i.outcome, i.comment, i.recording_id) for i in everything] == [
            ("after_hours", "ok", "fine", rid),
            ("sample", None, None, rid),
        ]
        assert [
            i.kind for i in tx.review.items(open_only=True, since=None, until=None, limit=10)
        ] == ["sample"]
        assert tx.review.items(open_only=False, since=T0 + HOUR, until=None, limit=10)[0].kind == (
            "sample"
        )
