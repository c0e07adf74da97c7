"""Rows, times and fixtures shared by the MetadataStore conformance suite.

The suite itself is :class:`callvault.testing.metadata.MetadataStoreConformance`;
its audit-log half lives in :mod:`callvault.testing.metadata_audit`.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from callvault.core import merkle
from callvault.core.ports import MetadataStore, Transaction
from callvault.core.recordings import ACTIVE, PENDING, RecordingRow, new_object_name

StoreFactory = Callable[[], MetadataStore]
AuditRow = tuple[bytes, bytes, str, uuid.UUID | None, dt.datetime]

T0 = dt.datetime(2019, 2, 18, 9, 22, 0, 123456, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def recording(bucket_kek_id: int, **fields: Any) -> RecordingRow:
    """A plausible row with random identity; ``fields`` override any column."""
    state = fields.get("state", ACTIVE)
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "state": state,
        "object_name": new_object_name(),
        "fingerprint": secrets.token_bytes(16),
        "bucket_kek_id": bucket_kek_id,
        "dek_id": secrets.token_bytes(16),
        "wrapped_dek": secrets.token_bytes(61),
        "commitment": secrets.token_bytes(32),
        "media_type": "audio/wav",
        "container": "wav",
        "codec": "pcm_s16le",
        "sample_rate": 8000,
        "channels": 1,
        "frames": 80_000,
        "duration_ms": 10_000,
        "plaintext_size": 160_044,
        "ciphertext_size": None if state == PENDING else 160_300,
        "ciphertext_sha256": None if state == PENDING else secrets.token_bytes(32),
        "care_unit": "unit-a",
        "agent": "nurse.a",
        "started_at": T0,
        "retention_class": "record",
        "created_at": T0 + HOUR,
        "caller_bidx": secrets.token_bytes(16),
        "pnr_bidx": secrets.token_bytes(16),
        "call_id_bidx": None,
        "enc_caller": secrets.token_bytes(40),
        "enc_pnr": secrets.token_bytes(40),
        "enc_call_id": None,
        "enc_peaks": secrets.token_bytes(100),
    }
    values.update(fields)
    return RecordingRow(**values)


def audit_row(n: int, recording_id: uuid.UUID | None = None) -> AuditRow:
    body = f'{{"n":{n},"nonce":"{secrets.token_hex(8)}"}}'.encode()
    return (body, merkle.leaf_hash(body), "recording:view", recording_id, T0 + n * HOUR)


def add_bucket(
    tx: Transaction, month: str = "2019-02", cls: str = "record", version: int = 1
) -> int:
    return tx.insert_bucket_kek(month, cls, version, 1, secrets.token_bytes(60), T0).id


def expect_root(store: MetadataStore) -> None:
    """The stored head must be the Merkle root over every stored leaf, in seq order."""
    records = list(store.iter_audit())
    assert [r.seq for r in records] == list(range(len(records)))
    with store.transaction() as tx:
        size, frontier = tx.audit_head()
    assert size == len(records)
    stored = merkle.Frontier.from_bytes(frontier)
    assert stored.size == size
    assert stored.root() == merkle.root_from_leaf_hashes([r.leaf_hash for r in records])


class StoreFixtures:
    """The fixtures every part of the suite shares; subclasses override the first two."""

    @pytest.fixture
    def make_store(self) -> StoreFactory:
        pytest.fail("a MetadataStoreConformance subclass must override make_store")

    @pytest.fixture
    def lose_database(self) -> Callable[[], None]:
        pytest.fail("a MetadataStoreConformance subclass must override lose_database")

    @pytest.fixture
    def store(self, make_store: StoreFactory) -> Iterator[MetadataStore]:
        handle = make_store()
        yield handle
        handle.close()

    @pytest.fixture
    def bucket(self, store: MetadataStore) -> int:
        with store.transaction() as tx:
            return add_bucket(tx)

    def insert(self, store: MetadataStore, *rows: RecordingRow) -> None:
        with store.transaction() as tx:
            for row in rows:
                tx.insert_recording(row)
