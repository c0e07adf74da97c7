"""Relational schema of the metadata database (SQLite or PostgreSQL).

Personal identifiers never appear in clear here: callers and personnummer
are sealed with a per-recording metadata key (derived from the DEK, so
shredding the DEK shreds them) and found through truncated HMAC blind
indexes whose key lives outside the database.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.engine import Dialect


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC in Python, naive UTC in the column (portable)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC)  # type: ignore[no-any-return]


metadata = MetaData()

bucket_keks = Table(
    "bucket_keks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("month", String(7), nullable=False),
    Column("retention_class", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("root_version", Integer, nullable=False),
    Column("wrapped", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("month", "retention_class", "version", name="uq_bucket_version"),
)

recordings = Table(
    "recordings",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("state", String(12), nullable=False),
    Column("object_name", String(32), nullable=False, unique=True),
    Column("fingerprint", LargeBinary(16), nullable=False, unique=True),
    Column("bucket_kek_id", Integer, ForeignKey("bucket_keks.id"), nullable=False),
    Column("dek_id", LargeBinary(16), nullable=False),
    Column("wrapped_dek", LargeBinary, nullable=False),
    Column("commitment", LargeBinary(32), nullable=False),
    Column("media_type", String(32), nullable=False),
    Column("container", String(8), nullable=False),
    Column("codec", String(24), nullable=False),
    Column("sample_rate", Integer, nullable=False),
    Column("channels", Integer, nullable=False),
    Column("frames", BigInteger, nullable=False),
    Column("duration_ms", BigInteger, nullable=False),
    Column("plaintext_size", BigInteger, nullable=False),
    Column("ciphertext_size", BigInteger),
    Column("ciphertext_sha256", LargeBinary(32)),
    Column("care_unit", String(64), nullable=False),
    Column("agent", String(64)),
    Column("started_at", UTCDateTime, nullable=False),
    Column("retention_class", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("caller_bidx", LargeBinary(16)),
    Column("pnr_bidx", LargeBinary(16)),
    Column("call_id_bidx", LargeBinary(16)),
    Column("enc_caller", LargeBinary),
    Column("enc_pnr", LargeBinary),
    Column("enc_call_id", LargeBinary),
    Column("enc_peaks", LargeBinary),
    # When the recording becomes due for shredding (R20): stamped at ingest
    # from its recording policy.  NULL (rows older than policies) is never due.
    Column("keep_until", UTCDateTime),
    # Each blind index leads its index and carries the care unit and call
    # time, so "identifier + care unit (+ date range)" matches more columns
    # here than in ix_recordings_unit_started.  Without ANALYZE statistics
    # SQLite then picks the selective blind index on cost; with only
    # (bidx, started_at) the two tie and the index created last wins.
    Index("ix_recordings_caller", "caller_bidx", "care_unit", "started_at"),
    Index("ix_recordings_pnr", "pnr_bidx", "care_unit", "started_at"),
    Index("ix_recordings_call_id", "call_id_bidx", "care_unit", "started_at"),
    # Added by 0006: a lookup across every unit, newest first, reads a page of
    # a frequent caller's calls in order instead of all of them (docs/scale.md).
    Index("ix_recordings_caller_started", "caller_bidx", "started_at"),
    Index("ix_recordings_pnr_started", "pnr_bidx", "started_at"),
    Index("ix_recordings_unit_started", "care_unit", "started_at"),
    Index("ix_recordings_started", "started_at"),
    Index("ix_recordings_bucket", "bucket_kek_id"),
    Index("ix_recordings_keep_until", "keep_until"),
)

audit_entries = Table(
    "audit_entries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("body", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("action", String(40), nullable=False),
    Column("recording_id", Uuid),
    Column("time", UTCDateTime, nullable=False),
    Index("ix_audit_recording", "recording_id"),
)

# One row (id = 1): the size of the log and the serialised Merkle frontier,
# so appending and checkpointing never re-read the whole log.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
    Column("frontier", LargeBinary, nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("note", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

vault_info = Table(
    "vault_info",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


# --- people, sessions and grants (the HTTPS service) -----------------------
# Secrets are stored only as SHA-256 hashes (session ids, tokens, enrolment
# links) or sealed (TOTP secrets); passwords as Argon2id hashes.

care_units = Table(
    "care_units",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("role", String(24), nullable=False),
    Column("password_hash", Text),
    Column("totp_secret", LargeBinary),
    Column("totp_last_step", BigInteger),
    Column("recovery_hashes", Text),
    Column("enrol_token_hash", LargeBinary(32), unique=True),
    Column("enrol_expires_at", UTCDateTime),
    Column("disabled_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
)

user_care_units = Table(
    "user_care_units",
    metadata,
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("care_unit", String(64), ForeignKey("care_units.id"), primary_key=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id_hash", LargeBinary(32), primary_key=True),
    Column("public_id", String(16), nullable=False, unique=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_hash", LargeBinary(32), nullable=False),
    Column("second_factor_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
    Index("ix_sessions_user", "user_id"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(64), nullable=False),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("role", String(24), nullable=False),
    Column("care_unit", String(64), ForeignKey("care_units.id"), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
)

# Failed sign-ins per account and per client address, both keyed-hashed (an
# address is personal data; and unknown user names are throttled exactly like
# known ones, so a lockout never tells which accounts exist).
throttles = Table(
    "throttles",
    metadata,
    Column("key_hash", LargeBinary(32), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_start", UTCDateTime, nullable=False),
    Column("blocked_until", UTCDateTime),
)

# Short-lived permission to play or download one recording, opened with a reason.
access_grants = Table(
    "access_grants",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("kind", String(12), nullable=False),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("session_public_id", String(16), nullable=False),
    Column("recording_id", Uuid, nullable=False),
    Column("reason", String(500), nullable=False),
    Column("emergency", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_grants_user_created", "user_id", "created_at"),
    Index("ix_grants_session_recording", "session_public_id", "recording_id"),
)

emergency_grants = Table(
    "emergency_grants",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("care_units", Text, nullable=False),
    Column("reason", String(500), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_emergency_user", "user_id", "expires_at"),
)

review_items = Table(
    "review_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("audit_seq", BigInteger),
    Column("actor", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    Column("resolved_by", String(64)),
    Column("outcome", String(500)),
    # Added by 0004 (R17): the reviewer's comment and the recording concerned.
    Column("comment", String(500)),
    Column("recording_id", Uuid),
    Index("ix_review_open", "resolved_at", "created_at"),
    Index("ix_review_seq", "audit_seq", "kind"),
)

# Which recordings one search showed (R18): the search's audit entry carries the
# Merkle root of these ids (sorted), so a patient's log extract can prove that a
# search listed one of the patient's recordings without naming the others.
audit_search_hits = Table(
    "audit_search_hits",
    metadata,
    Column("recording_id", Uuid, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("position", Integer, nullable=False),
    Index("ix_search_hits_seq", "seq"),
)


# --- lifecycle: recording policies, legal holds, shredding (R19-R21) -----------------

# One policy per care unit and retention class; ``active`` 0 retires it
# (ingest is then refused) without losing what it said.
recording_policies = Table(
    "recording_policies",
    metadata,
    Column("care_unit", String(64), primary_key=True),
    Column("retention_class", String(16), primary_key=True),
    Column("purpose", String(500), nullable=False),
    Column("legal_basis", String(500), nullable=False),
    Column("keep_days", Integer, nullable=False),
    Column("active", Integer, nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("changed_by", String(64), nullable=False),
)

legal_holds = Table(
    "legal_holds",
    metadata,
    Column("recording_id", Uuid, primary_key=True),
    Column("reference", String(64), nullable=False),
    Column("set_by", String(64), nullable=False),
    Column("set_at", UTCDateTime, nullable=False),
)

# Objects whose recording row (and wrapped DEK) is already gone: the sweep
# deletes them and then the entry, so a crash in between is resumed.
shred_queue = Table(
    "shred_queue",
    metadata,
    Column("object_name", String(32), primary_key=True),
    Column("queued_at", UTCDateTime, nullable=False),
)

# --- background jobs (the embedded runner; docs/jobs.md) ------------------------------

_RUNNING = text("state = 'running'")
_QUEUED = text("state = 'queued'")

# One row per job.  ``payload`` and ``cursor`` hold ids and counters only
# (core.jobs.validate_payload); ``last_error`` an error code, never a message.
# The partial unique indexes are the locks: one running job per lock key and
# one queued job per queueing key, enforced by the database for every worker.
jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("state", String(12), nullable=False),
    Column("lock_key", String(64)),
    Column("queueing_key", String(64)),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("run_after", UTCDateTime, nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", UTCDateTime),
    Column("started_at", UTCDateTime),  # when the latest attempt was claimed
    Column("progress_done", BigInteger, nullable=False),
    Column("progress_total", BigInteger),
    Column("cursor", Text),
    Column("last_error", String(48)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_jobs_ready", "state", "run_after"),
    Index(
        "uq_jobs_running_lock",
        "lock_key",
        unique=True,
        sqlite_where=_RUNNING,
        postgresql_where=_RUNNING,
    ),
    Index(
        "uq_jobs_queueing_key",
        "queueing_key",
        unique=True,
        sqlite_where=_QUEUED,
        postgresql_where=_QUEUED,
    ),
)

# The last slot each periodic schedule was queued for: one job per slot.
job_schedules = Table(
    "job_schedules",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("last_slot", BigInteger, nullable=False),
)

# Progress and last error code of jobs run by procrastinate (PostgreSQL),
# whose own job table has no place for them; keyed by its job id.
job_progress = Table(
    "job_progress",
    metadata,
    Column("job_id", BigInteger, primary_key=True, autoincrement=False),
    Column("progress_done", BigInteger, nullable=False),
    Column("progress_total", BigInteger),
    Column("cursor", Text),
    Column("last_error", String(48)),
)
