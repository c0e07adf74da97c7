"""Ports: the small contracts adapters implement.

Each method's docstring is the contract.  Adapters translate their driver's
exceptions into ``callvault.core.errors``; nothing above an adapter sees
OSError, botocore or SQLAlchemy exceptions.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from callvault.core.recordings import BucketKekRow, RecordingRow, SearchCriteria


@runtime_checkable
class BlobStore(Protocol):
    """Stores opaque ciphertext objects under generated names.

    Names are produced by :func:`callvault.core.recordings.new_object_name`
    (32 lowercase hex characters) and validated by every adapter before any I/O;
    anything else raises ``InvalidInput``.  Names never come from users.
    """

    def put(self, name: str, chunks: Iterable[bytes]) -> int:
        """Store the concatenated chunks as one object, atomically.

        The object is visible under ``name`` only once every byte is durable;
        a crash part-way leaves no object under ``name``.  Raises
        ``AlreadyExists`` if ``name`` is taken (objects are never overwritten).
        If ``chunks`` raises, nothing is stored and the exception propagates.
        Returns the number of bytes stored.
        """
        ...

    def read(self, name: str, offset: int, length: int) -> bytes:
        """Return up to ``length`` bytes from ``offset``.

        A short result means the object ends before ``offset + length``;
        an ``offset`` at or past the end returns ``b""``.  Raises ``NotFound``
        if there is no object ``name``; ``InvalidInput`` for a negative
        offset or length.
        """
        ...

    def size(self, name: str) -> int:
        """Length of the object in bytes; ``NotFound`` if missing."""
        ...

    def delete(self, name: str) -> None:
        """Remove the object.  Idempotent: a missing object is not an error."""
        ...

    def names(self) -> Iterator[str]:
        """Every complete object's name, in no particular order."""
        ...

    def discard_incomplete(self) -> int:
        """Remove leftovers of interrupted ``put`` calls; return how many."""
        ...


class KeyProvider(Protocol):
    """Holds the root key-encryption keys and the two non-database secrets.

    Root KEKs have integer versions; exactly one is current.  ``wrap`` always
    uses the current version.  Where the provider allows it (PKCS#11), root
    keys never leave the provider.  The blind-index key and the audit signing
    seed are separate secrets from separate roots: they are never derived from
    a root KEK and never stored in the metadata database.
    """

    def current_version(self) -> int:
        """Version number of the root KEK that ``wrap`` uses."""
        ...

    def versions(self) -> list[int]:
        """Every root KEK version still held, ascending."""
        ...

    def wrap(self, plaintext: bytes, ad: bytes) -> tuple[int, bytes]:
        """AEAD-encrypt ``plaintext`` bound to ``ad`` under the current root KEK.

        Returns ``(version, blob)``.  Raises ``KeyUnavailable`` if the provider
        cannot be reached or is sealed.
        """
        ...

    def unwrap(self, version: int, blob: bytes, ad: bytes) -> bytes:
        """Reverse of ``wrap``.

        Raises ``IntegrityError`` if ``blob`` or ``ad`` was altered and
        ``KeyUnavailable`` if ``version`` is not held (destroyed or unknown).
        """
        ...

    def rotate(self) -> int:
        """Create a new root KEK version, make it current, return its number.

        Older versions stay usable for ``unwrap`` until ``retire``.
        """
        ...

    def retire(self, version: int) -> None:
        """Destroy a non-current root KEK version.  ``Conflict`` if current."""
        ...

    def index_key(self) -> bytes:
        """The 32-byte HMAC key for blind indexes of personal identifiers."""
        ...

    def audit_signing_seed(self) -> bytes:
        """The 32-byte Ed25519 seed that signs audit checkpoints."""
        ...


class Clock(Protocol):
    """Injected time source; always timezone-aware UTC."""

    def now(self) -> dt.datetime: ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class AuditRecord:
    """An audit entry as stored: canonical bytes plus columns derived from them."""

    seq: int
    body: bytes
    leaf_hash: bytes
    action: str
    recording_id: uuid.UUID | None
    time: dt.datetime


class Transaction(Protocol):
    """One unit of work on the metadata database.

    Everything done through one transaction commits together or not at all;
    that is how an audit entry and the change it records stay inseparable.
    """

    # recordings
    def insert_recording(self, row: RecordingRow) -> None:
        """Insert; ``AlreadyExists`` if the id, object name or fingerprint is taken."""
        ...

    def get_recording(self, recording_id: uuid.UUID) -> RecordingRow | None: ...

    def find_by_fingerprint(self, fingerprint: bytes) -> RecordingRow | None: ...

    def activate_recording(
        self, recording_id: uuid.UUID, ciphertext_size: int, ciphertext_sha256: bytes
    ) -> bool:
        """Turn a pending row active; False if it is no longer pending (claimed by another)."""
        ...

    def delete_recording(self, recording_id: uuid.UUID) -> None: ...

    def search(self, criteria: SearchCriteria) -> list[RecordingRow]:
        """Active recordings matching every given criterion, newest call first."""
        ...

    def rewrap_dek(
        self,
        recording_id: uuid.UUID,
        old_bucket_kek_id: int,
        new_bucket_kek_id: int,
        wrapped: bytes,
    ) -> bool:
        """Replace a wrapped DEK only if it is still under ``old_bucket_kek_id``."""
        ...

    # bucket KEKs
    def current_bucket_kek(self, month: str, retention_class: str) -> BucketKekRow | None:
        """The highest version for this bucket, or None."""
        ...

    def insert_bucket_kek(
        self,
        month: str,
        retention_class: str,
        version: int,
        root_version: int,
        wrapped: bytes,
        created_at: dt.datetime,
    ) -> BucketKekRow:
        """``AlreadyExists`` if that (month, class, version) exists."""
        ...

    def get_bucket_kek(self, bucket_kek_id: int) -> BucketKekRow | None: ...

    def bucket_keks(self) -> list[BucketKekRow]: ...

    def update_bucket_kek_wrap(
        self, bucket_kek_id: int, root_version: int, wrapped: bytes
    ) -> None: ...

    def delete_bucket_kek(self, bucket_kek_id: int) -> None: ...

    def dek_counts(self) -> dict[int, int]:
        """Number of recordings (any state) per bucket KEK id."""
        ...

    def recording_ids_under(self, bucket_kek_id: int, limit: int) -> list[uuid.UUID]: ...

    # audit log
    def append_audit(
        self, entries: list[tuple[bytes, bytes, str, uuid.UUID | None, dt.datetime]]
    ) -> list[int]:
        """Append (body, leaf_hash, action, recording_id, time) entries; return their seqs.

        Serialised against concurrent appenders; updates the stored Merkle frontier.
        """
        ...

    def audit_head(self) -> tuple[int, bytes]:
        """(size, serialised frontier) of the log."""
        ...

    def add_checkpoint(self, size: int, note: str, created_at: dt.datetime) -> None: ...

    def latest_checkpoint_size(self) -> int | None:
        """Tree size of the newest stored checkpoint, None if there is none."""
        ...

    # vault-wide settings (non-secret)
    def get_info(self, key: str) -> str | None: ...

    def set_info(self, key: str, value: str) -> None: ...


class MetadataStore(Protocol):
    """The metadata database (SQLite by default, PostgreSQL for scale-out)."""

    def transaction(self) -> AbstractContextManager[Transaction]:
        """A unit of work; commits on normal exit, rolls back on an exception.

        Raises ``StorageError`` if the database cannot be reached or the commit fails.
        """
        ...

    def iter_recordings(self, batch: int = 1000) -> Iterator[RecordingRow]:
        """Every row, any state, in id order, read in batches (for scrubs)."""
        ...

    def iter_audit(self, start: int = 0, end: int | None = None) -> Iterator[AuditRecord]:
        """Audit records with start <= seq < end in seq order."""
        ...

    def checkpoints(self) -> list[tuple[int, str]]:
        """(size, note) of every stored checkpoint, ascending by size."""
        ...

    def close(self) -> None: ...
