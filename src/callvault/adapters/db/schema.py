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
    # Each blind index leads its index and carries the care unit and call
    # time, so "identifier + care unit (+ date range)" matches more columns
    # here than in ix_recordings_unit_started.  Without ANALYZE statistics
    # SQLite then picks the selective blind index on cost; with only
    # (bidx, started_at) the two tie and the index created last wins.
    Index("ix_recordings_caller", "caller_bidx", "care_unit", "started_at"),
    Index("ix_recordings_pnr", "pnr_bidx", "care_unit", "started_at"),
    Index("ix_recordings_call_id", "call_id_bidx", "care_unit", "started_at"),
    Index("ix_recordings_unit_started", "care_unit", "started_at"),
    Index("ix_recordings_started", "started_at"),
    Index("ix_recordings_bucket", "bucket_kek_id"),
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
    Index("ix_review_open", "resolved_at", "created_at"),
)
