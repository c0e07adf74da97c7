"""Ports: the small contracts adapters implement.

Each method's docstring is the contract; the rows they pass are defined in
``callvault.core.rows`` and ``callvault.core.recordings``.  Adapters
translate their driver's exceptions into ``callvault.core.errors``; nothing
above an adapter sees OSError, botocore or SQLAlchemy exceptions.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from callvault.core.jobs import ClaimedJob, JobInfo, JobState
from callvault.core.recordings import BucketKekRow, RecordingRow, SearchCriteria
from callvault.core.retention import LegalHold, RecordingPolicy
from callvault.core.rows import (
    AccessGrantRow,
    ApiTokenRow,
    AuditFilter,
    AuditRecord,
    CareUnitRow,
    EmergencyGrantRow,
    RecordingFilter,
    ReviewItemRow,
    SessionRow,
    ThrottleRow,
    UserRow,
)


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

    # people, sessions and API tokens (the HTTPS service)
    @property
    def accounts(self) -> AccountsRepo: ...

    # playback and download grants, emergency grants, review items, paged reads
    @property
    def grants(self) -> GrantsRepo: ...

    # recording policies, legal holds and shredding (R19-R21)
    @property
    def lifecycle(self) -> LifecycleRepo: ...

    # log review, search hits, patient log extracts, breach reports
    @property
    def review(self) -> ReviewRepo: ...


class MetadataStore(Protocol):
    """The metadata database (SQLite by default, PostgreSQL for scale-out)."""

    def transaction(self, read_only: bool = False) -> AbstractContextManager[Transaction]:
        """A unit of work; commits on normal exit, rolls back on an exception.

        ``read_only=True`` is for pure reads: it takes no write lock (it runs
        beside writers, not behind them) and every write inside it raises
        ``StorageError`` and dooms it.  Its reads see one consistent snapshot.

        Raises ``StorageError`` if the database cannot be reached or the commit fails.
        """
        ...

    def iter_recordings(self, batch: int = 1000) -> Iterator[RecordingRow]:
        """Every row, any state, in id order, read in batches (for scrubs)."""
        ...

    def iter_audit(self, start: int = 0, end: int | None = None) -> Iterator[AuditRecord]:
        """Audit records with start <= seq < end in seq order."""
        ...

    def iter_audit_leaves(
        self, start: int = 0, end: int | None = None
    ) -> Iterator[tuple[int, bytes, bytes]]:
        """``(seq, body, leaf_hash)`` of the entries with start <= seq < end, in seq order.

        Exactly what a verifier needs, as stored: no other column is read or
        decoded, so a whole-log check is not paying for ids and timestamps.
        """
        ...

    def checkpoints(self) -> list[tuple[int, str]]:
        """(size, note) of every stored checkpoint, ascending by size."""
        ...

    def close(self) -> None: ...


# --- people, sessions and API tokens --------------------------------------------


class AccountsRepo(Protocol):
    """Users, care units, sessions, API tokens and sign-in throttles.

    Lives inside one :class:`Transaction`: everything commits with it.
    Methods returning ``bool`` are conditional writes: False means the row
    was not in the expected state (used by a concurrent request, ended,
    revoked) and nothing changed.
    """

    # care units
    def insert_care_unit(self, row: CareUnitRow) -> None:
        """``AlreadyExists`` if the id is taken."""
        ...

    def get_care_unit(self, unit_id: str) -> CareUnitRow | None: ...

    def care_units(self) -> list[CareUnitRow]:
        """Every care unit, by id."""
        ...

    # users
    def insert_user(self, row: UserRow) -> None:
        """Insert with its care units; ``AlreadyExists`` if the user name is
        taken, ``Conflict`` if a care unit does not exist."""
        ...

    def get_user(self, user_id: uuid.UUID) -> UserRow | None: ...

    def user_by_name(self, username: str) -> UserRow | None: ...

    def user_by_enrolment(self, token_hash: bytes) -> UserRow | None:
        """The user whose enrolment link hashes to ``token_hash`` (expired or not)."""
        ...

    def users(self) -> list[UserRow]:
        """Every user, by user name."""
        ...

    def set_pending_totp(self, user_id: uuid.UUID, token_hash: bytes, sealed: bytes) -> bool:
        """Store a not yet confirmed TOTP secret, if the enrolment link still stands."""
        ...

    def finish_enrolment(
        self,
        user_id: uuid.UUID,
        token_hash: bytes,
        totp_secret: bytes,
        password_hash: str,
        totp_step: int,
        recovery_hashes: tuple[bytes, ...],
    ) -> bool:
        """Set the password, confirm TOTP and retire the link, if the link still
        stands and the pending TOTP secret is still ``totp_secret``."""
        ...

    def reset_enrolment(
        self, user_id: uuid.UUID, token_hash: bytes, expires_at: dt.datetime
    ) -> None:
        """Clear password, TOTP and recovery codes; issue a new enrolment link."""
        ...

    def disable_user(self, user_id: uuid.UUID, at: dt.datetime) -> None: ...

    def set_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None: ...

    def use_totp_step(self, user_id: uuid.UUID, step: int) -> bool:
        """Record ``step`` as used, only if it is later than the last used one."""
        ...

    def replace_recovery_hashes(
        self, user_id: uuid.UUID, old: tuple[bytes, ...], new: tuple[bytes, ...]
    ) -> bool:
        """Swap the stored recovery digests, only if they are still ``old``."""
        ...

    # sessions
    def insert_session(self, row: SessionRow) -> None: ...

    def session_by_hash(self, id_hash: bytes) -> SessionRow | None: ...

    def complete_session(
        self, id_hash: bytes, new_id_hash: bytes, csrf_hash: bytes, at: dt.datetime
    ) -> bool:
        """Second factor done: give a pending, live session a new id and CSRF
        token (the old id stops working)."""
        ...

    def touch_session(self, id_hash: bytes, at: dt.datetime) -> None: ...

    def end_session(self, id_hash: bytes, at: dt.datetime) -> bool:
        """End a live session; False if it had ended already or does not exist."""
        ...

    def end_user_sessions(self, user_id: uuid.UUID, at: dt.datetime) -> int: ...

    def purge_sessions(self, created_before: dt.datetime, ended_before: dt.datetime) -> int:
        """Delete sessions created before the first time or ended before the second."""
        ...

    # API tokens
    def insert_token(self, row: ApiTokenRow) -> None:
        """``Conflict`` if the care unit does not exist."""
        ...

    def token_by_hash(self, token_hash: bytes) -> ApiTokenRow | None: ...

    def get_token(self, token_id: uuid.UUID) -> ApiTokenRow | None: ...

    def tokens(self) -> list[ApiTokenRow]:
        """Every token, revoked ones too, oldest first."""
        ...

    def revoke_token(self, token_id: uuid.UUID, at: dt.datetime) -> bool: ...

    def touch_token(self, token_id: uuid.UUID, at: dt.datetime) -> None: ...

    # sign-in throttles
    def throttle(self, key_hash: bytes) -> ThrottleRow | None:
        """The row, locked for the rest of the transaction where the database can."""
        ...

    def put_throttle(self, row: ThrottleRow) -> None:
        """Insert or replace."""
        ...

    def clear_throttle(self, key_hash: bytes) -> None: ...

    # emergency grants (opened by the playback service; only read here)
    def active_emergency_grant(
        self, user_id: uuid.UUID, at: dt.datetime
    ) -> EmergencyGrantRow | None:
        """The grant valid at ``at`` that expires last, or None."""
        ...


# --- grants, review items and the paged reads of the HTTPS service -----------------


class GrantsRepo(Protocol):
    """Access grants, emergency grants, review items and the service's paged reads.

    Lives inside one :class:`Transaction`, so a grant, its audit entry and
    its review item commit together.
    """

    def insert_grant(self, row: AccessGrantRow) -> None:
        """``Conflict`` if the user does not exist."""
        ...

    def open_grant(
        self,
        kind: str,
        user_id: uuid.UUID,
        session_public_id: str,
        recording_id: uuid.UUID,
        at: dt.datetime,
    ) -> AccessGrantRow | None:
        """The grant of ``kind`` for exactly this user, session and recording that
        is valid at ``at`` and expires last; None if there is none."""
        ...

    def consume_grant(self, grant_id: uuid.UUID, at: dt.datetime) -> bool:
        """End a grant at ``at`` (single use); False if it was no longer valid."""
        ...

    def count_grants(self, user_id: uuid.UUID, kind: str, since: dt.datetime) -> int:
        """How many grants of ``kind`` the user opened at or after ``since``."""
        ...

    def insert_emergency_grant(
        self, grant_id: uuid.UUID, user_id: uuid.UUID, grant: EmergencyGrantRow
    ) -> None:
        """Store an opened emergency grant (read back by ``AccountsRepo``)."""
        ...

    def add_review_item(
        self, kind: str, audit_seq: int | None, actor: str, created_at: dt.datetime
    ) -> int:
        """Queue an open review item; returns its id."""
        ...

    def open_review_items(
        self,
        kind: str | None = None,
        actor: str | None = None,
        since: dt.datetime | None = None,
        limit: int = 100,
    ) -> list[ReviewItemRow]:
        """Unresolved items matching every given argument, oldest first."""
        ...

    def search_page(
        self,
        where: RecordingFilter,
        after: tuple[dt.datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[RecordingRow]:
        """Up to ``limit`` active recordings matching ``where``, newest call first
        (ties by id), strictly after the ``(started_at, id)`` position ``after``."""
        ...

    def audit_page(self, where: AuditFilter, before: int | None, limit: int) -> list[AuditRecord]:
        """Up to ``limit`` audit records matching ``where`` with seq below
        ``before`` (None: from the newest), newest first."""
        ...

    def activate_ingested(self, row: RecordingRow) -> bool:
        """Turn the pending row ``row.id`` active with the facts learned after
        storing its object (``row``'s audio facts, sizes, hash and peaks);
        False if it is no longer pending."""
        ...


# --- log review, patient log extracts and breach reports (R17, R18, R22) -----------


class ReviewRepo(Protocol):
    """What the privacy officer's and log reviewer's use cases read and write.

    Lives inside one :class:`Transaction`, so a search's hits commit with its
    audit entry and a review item with the run that found it.
    """

    def add_search_hits(self, seq: int, recording_ids: list[uuid.UUID]) -> None:
        """Record that the search entry ``seq`` listed these recordings, in this
        order (their position is their index in the list)."""
        ...

    def search_hits_of(self, seq: int) -> list[uuid.UUID]:
        """The recordings search entry ``seq`` listed, in position order."""
        ...

    def searches_listing(
        self, recording_ids: list[uuid.UUID], below_seq: int
    ) -> list[tuple[int, uuid.UUID]]:
        """``(seq, recording id)`` of every search below ``below_seq`` that listed
        one of ``recording_ids``, by seq."""
        ...

    def recordings_by_index(
        self, caller_bidx: bytes | None, pnr_bidx: bytes | None
    ) -> list[RecordingRow]:
        """Recordings in any state whose caller or personnummer blind index is one
        of those given (None matches nothing), oldest call first."""
        ...

    def recordings_by_id(self, recording_ids: list[uuid.UUID]) -> list[RecordingRow]:
        """The rows of those ids that still exist, any state."""
        ...

    def audit_of_recordings(
        self, recording_ids: list[uuid.UUID], below_seq: int
    ) -> list[AuditRecord]:
        """Audit records below ``below_seq`` naming one of ``recording_ids``, by seq."""
        ...

    def audit_between(
        self, time_from: dt.datetime, time_to: dt.datetime, actions: list[str] | None
    ) -> list[AuditRecord]:
        """Audit records with ``time_from <= time < time_to`` (and one of
        ``actions``, if given), by seq."""
        ...

    def leaf_hashes(self, end: int) -> list[bytes]:
        """The stored leaf hashes of seq ``0 .. end-1``, in order."""
        ...

    def add_item(
        self,
        kind: str,
        audit_seq: int | None,
        actor: str,
        created_at: dt.datetime,
        recording_id: uuid.UUID | None,
    ) -> int | None:
        """Queue a review item; None (nothing written) if one of ``kind`` for
        ``audit_seq`` exists already, so a review run can be repeated."""
        ...

    def items(
        self,
        *,
        open_only: bool,
        since: dt.datetime | None,
        until: dt.datetime | None,
        limit: int,
    ) -> list[ReviewItemRow]:
        """Items created in ``[since, until)`` (open ones only if asked), oldest first."""
        ...

    def resolve_item(
        self, item_id: int, outcome: str, comment: str | None, by: str, at: dt.datetime
    ) -> bool:
        """Record an open item's outcome; False if no such open item."""
        ...


# --- recording policies, legal holds and shredding (R19-R21) ------------------------


class LifecycleRepo(Protocol):
    """Recording policies, keep-until stamps, legal holds and crypto-shredding.

    Lives inside one :class:`Transaction`, so a shred, the object it queues
    for deletion and its audit receipt commit together.  The destroying
    writes are conditional and return False when the row was not in the
    expected state (held, already gone, not empty): nothing changed then.
    """

    def put_policy(self, policy: RecordingPolicy) -> None:
        """Insert or replace the policy of ``(care_unit, retention_class)``."""
        ...

    def get_policy(self, care_unit: str, retention_class: str) -> RecordingPolicy | None: ...

    def policies(self) -> list[RecordingPolicy]:
        """Every policy, active or not, by care unit and class."""
        ...

    def set_keep_until(self, recording_id: uuid.UUID, keep_until: dt.datetime) -> None: ...

    def retention_facts(
        self, ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[dt.datetime | None, str | None]]:
        """``id -> (keep_until, hold reference or None)`` for the ids that exist."""
        ...

    def due_recordings(self, now: dt.datetime, limit: int) -> list[RecordingRow]:
        """Up to ``limit`` active, unheld recordings with ``keep_until <= now``,
        soonest due first."""
        ...

    def due_counts(self, now: dt.datetime) -> dict[tuple[str, bool], int]:
        """``(retention class, held) -> count`` of active recordings due at ``now``."""
        ...

    def matching(
        self, caller_bidx: bytes | None, pnr_bidx: bytes | None, limit: int
    ) -> list[RecordingRow]:
        """Active recordings whose caller or personnummer index equals a given
        one (either matches), oldest call first; ``[]`` if both are None."""
        ...

    def shred(self, rows: list[RecordingRow], at: dt.datetime) -> list[uuid.UUID]:
        """Delete each recording's row (its wrapped DEK and sealed fields) and
        queue its object for deletion, only if it is still active and not held;
        returns the ids of the rows deleted, in the order given."""
        ...

    def queued_objects(self, limit: int) -> list[str]:
        """Object names of shredded recordings whose objects may still exist."""
        ...

    def unqueue(self, names: list[str]) -> None: ...

    def empty_bucket_keks(self) -> list[BucketKekRow]:
        """Bucket KEKs no recording points at, by month, class and version."""
        ...

    def destroy_bucket_kek(self, bucket_kek_id: int) -> bool:
        """Delete the bucket KEK only if still no recording points at it."""
        ...

    def add_hold(self, hold: LegalHold) -> bool:
        """False (and nothing changed) if the recording is already held."""
        ...

    def get_hold(self, recording_id: uuid.UUID) -> LegalHold | None: ...

    def release_hold(self, recording_id: uuid.UUID) -> bool:
        """False if the recording was not held."""
        ...

    def holds(self) -> list[LegalHold]:
        """Every hold, oldest first."""
        ...


# --- background jobs -------------------------------------------------------------------


class JobContext(Protocol):
    """What a running job's handler sees: its job, and how to report progress."""

    @property
    def job(self) -> ClaimedJob: ...

    def progress(
        self, done: int, total: int | None = None, cursor: Mapping[str, str | int] | None = None
    ) -> None:
        """Record ``done`` of ``total`` and the ``cursor`` a retry resumes from.

        Also renews the worker's lease.  Raises ``Conflict`` if the lease was
        lost (the job was recovered and given to another worker): the handler
        must then stop without writing anything more.
        """
        ...

    def stopping(self) -> bool:
        """True once the worker was asked to stop: finish the current step and return."""
        ...


JobHandler = Callable[[JobContext], None]


class JobQueue(Protocol):
    """A durable queue of background jobs with leases, retries and locks.

    Payloads are validated by :func:`callvault.core.jobs.validate_payload`
    (ids and counters only).  A job with a ``lock`` never runs beside another
    running job with the same lock; a ``queueing_lock`` keeps at most one
    queued (not yet running) job per key.  A handler that raises is retried
    with backoff until ``max_attempts``; a ``CallvaultError``'s code is kept
    as the job's last error, any other exception as ``internal_error``.
    """

    def init_schema(self) -> None:
        """Create what the backend needs beyond the vault's own schema (idempotent)."""
        ...

    def enqueue(
        self,
        kind: str,
        payload: Mapping[str, str | int],
        *,
        lock: str | None = None,
        queueing_lock: str | None = None,
        run_after: dt.datetime | None = None,
    ) -> int | None:
        """Queue a job; its id, or None if ``queueing_lock`` already has a queued job."""
        ...

    def jobs(self, *, state: JobState | None = None, limit: int = 100) -> list[JobInfo]:
        """Jobs, newest first, optionally of one state."""
        ...

    def job(self, job_id: int) -> JobInfo | None: ...

    def mark_slot(self, name: str, slot: int) -> bool:
        """Claim periodic slot ``slot`` of schedule ``name``: True exactly once per slot
        (and only for a slot later than the last claimed), whatever the number of workers."""
        ...

    def recover_stalled(self) -> int:
        """Give jobs whose worker stopped renewing its lease back to the queue
        (or fail them if their attempts are used up); return how many."""
        ...

    def run(
        self,
        handlers: Mapping[str, JobHandler],
        *,
        concurrency: int = 1,
        until_idle: bool = False,
        tick: Callable[[], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> int:
        """Work on jobs of the ``handlers``' kinds with ``concurrency`` threads.

        ``tick`` runs periodically (stalled-job recovery, schedules).  Returns
        the number of jobs run, once ``stop()`` is true (running jobs are
        finished or released) or, with ``until_idle``, once no job is ready.
        """
        ...

    def close(self) -> None: ...


class JobDataRepo(Protocol):
    """The reads and the one write the job kinds need beside the metadata store's."""

    def recording_ids(
        self, lo: uuid.UUID, hi: uuid.UUID, after: uuid.UUID | None, limit: int
    ) -> list[uuid.UUID]:
        """Ids of recordings (any state) with ``lo <= id <= hi`` and above ``after``, ascending."""
        ...

    def count_recordings(self, lo: uuid.UUID, hi: uuid.UUID) -> int: ...

    def missing_peaks(self, after: uuid.UUID | None, limit: int) -> list[uuid.UUID]:
        """Ids of active recordings that have no sealed peaks, ascending, above ``after``."""
        ...

    def set_peaks_if_missing(self, recording_id: uuid.UUID, enc_peaks: bytes) -> bool:
        """Store sealed peaks only if the active recording still has none."""
        ...
