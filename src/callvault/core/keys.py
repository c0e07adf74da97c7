"""The key hierarchy: root KEK -> bucket KEK -> per-recording DEK.

::

    root KEK (KeyProvider; version n; never leaves an HSM)
      └─ bucket KEK  one per (call month × retention class), 32 random bytes,
         │           stored only wrapped by the root: KeyProvider.wrap(kek, bucket_kek_ad(..))
         └─ DEK      one per recording, 32 random bytes, stored only wrapped by its
                     bucket KEK: wrap_dek(..) -> 61 bytes in the metadata database
    hold KEK         same shape as a bucket KEK; DEKs of recordings on legal hold are
                     re-wrapped under it (scope HOLD) before their bucket is destroyed

Destroying a DEK shreds one recording (and, through :func:`metadata_key`, its
personal metadata); destroying a bucket KEK shreds a whole month of one
retention class, including every copy in old backups.

Every wrap is AES-256-GCM with a fresh random 96-bit nonce and associated data
that names exactly what the key is for, so a wrapped key copied to another
row, bucket or version fails to open.  Associated data is built from
length-prefixed fields behind a domain-separation string::

    lp(x) = BE16(len(x)) ‖ x

Any failure to open a wrapped key raises the one opaque ``IntegrityError``.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import struct
import uuid
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from callvault.core.errors import IntegrityError, InvalidInput

KEY_LEN: Final = 32
DEK_ID_LEN: Final = 16
NONCE_LEN: Final = 12
TAG_LEN: Final = 16
WRAP_FORMAT_V1: Final = 0x01
WRAPPED_DEK_LEN: Final = 1 + NONCE_LEN + KEY_LEN + TAG_LEN  # 61
MAX_VERSION: Final = 2**32 - 1

_DEK_WRAP_DOMAIN: Final = b"callvault/dek-wrap/v1\x00"
_BUCKET_KEK_DOMAIN: Final = b"callvault/bucket-kek/v1\x00"
_HOLD_KEK_DOMAIN: Final = b"callvault/hold-kek/v1\x00"
_ROOT_WRAP_DOMAIN: Final = b"callvault/root-wrap/v1\x00"
_METADATA_KEY_DOMAIN: Final = b"callvault/metadata-key/v1\x00"

_MONTH_RE: Final = re.compile(r"\A[0-9]{4}-(0[1-9]|1[0-2])\Z")
_CLASS_RE: Final = re.compile(r"\A[a-z][a-z0-9_-]{0,31}\Z")


@dataclass(frozen=True, slots=True)
class BucketId:
    """A bucket: the calls of one UTC month in one retention class.

    Canonical string: ``"YYYY-MM/<retention_class>"``, e.g. ``"2024-05/record"``.
    The retention class is a short lowercase slug; which classes exist is
    decided by the retention policy, not here.
    """

    month: str
    retention_class: str

    def __post_init__(self) -> None:
        if not isinstance(self.month, str) or not _MONTH_RE.match(self.month):
            raise InvalidInput("bucket month must be YYYY-MM")
        if not isinstance(self.retention_class, str) or not _CLASS_RE.match(self.retention_class):
            raise InvalidInput("bucket retention class must be a short lowercase slug")

    @classmethod
    def for_call(cls, started_at: dt.datetime, retention_class: str) -> BucketId:
        """The bucket of a call that started at ``started_at`` (aware; month taken in UTC)."""
        if started_at.tzinfo is None:
            raise InvalidInput("call start time must be timezone-aware")
        month = started_at.astimezone(dt.UTC).strftime("%Y-%m")
        return cls(month, retention_class)

    @classmethod
    def parse(cls, text: str) -> BucketId:
        """Inverse of :meth:`canonical`; ``InvalidInput`` for anything else."""
        month, sep, retention_class = text.partition("/")
        if not sep:
            raise InvalidInput("bucket id must be YYYY-MM/<retention class>")
        return cls(month, retention_class)

    def canonical(self) -> str:
        return f"{self.month}/{self.retention_class}"

    def __str__(self) -> str:
        return self.canonical()


@dataclass(frozen=True, slots=True)
class HoldKekId:
    """The scope of the legal-hold KEK (there is one, with versions)."""

    def canonical(self) -> str:
        return "hold"

    def __str__(self) -> str:
        return self.canonical()


HOLD: Final = HoldKekId()

KekScope = BucketId | HoldKekId
"""What a DEK is wrapped under: a bucket KEK or the hold KEK."""


def new_dek() -> bytes:
    """A fresh 32-byte data-encryption key for one recording."""
    return secrets.token_bytes(KEY_LEN)


def new_dek_id() -> bytes:
    """A fresh 16-byte random DEK identifier (bound into every wrap and the cv1 AD)."""
    return secrets.token_bytes(DEK_ID_LEN)


def new_bucket_kek() -> bytes:
    """A fresh 32-byte bucket (or hold) key-encryption key."""
    return secrets.token_bytes(KEY_LEN)


def _lp(field: bytes) -> bytes:
    return struct.pack(">H", len(field)) + field


def _be32(version: int) -> bytes:
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidInput("key version must be an integer")
    if not 1 <= version <= MAX_VERSION:
        raise InvalidInput("key version out of range")
    return struct.pack(">I", version)


def _scope_fields(scope: KekScope) -> bytes:
    if isinstance(scope, BucketId):
        return _lp(b"bucket") + _lp(scope.canonical().encode("ascii"))
    if isinstance(scope, HoldKekId):
        return _lp(b"hold") + _lp(scope.canonical().encode("ascii"))
    raise InvalidInput("DEK scope must be a BucketId or HOLD")


def dek_wrap_ad(
    *, recording_id: uuid.UUID, dek_id: bytes, bucket: KekScope, kek_version: int
) -> bytes:
    """Associated data of a wrapped DEK::

    "callvault/dek-wrap/v1\\0"
    ‖ lp(recording uuid, 16 bytes)
    ‖ lp(DEK id, 16 bytes)
    ‖ lp("bucket" | "hold") ‖ lp(scope canonical, ASCII)
    ‖ BE32(KEK version)
    """
    if not isinstance(recording_id, uuid.UUID):
        raise InvalidInput("recording id must be a UUID")
    if not isinstance(dek_id, bytes) or len(dek_id) != DEK_ID_LEN:
        raise InvalidInput("DEK id must be 16 bytes")
    return (
        _DEK_WRAP_DOMAIN
        + _lp(recording_id.bytes)
        + _lp(dek_id)
        + _scope_fields(bucket)
        + _be32(kek_version)
    )


def bucket_kek_ad(bucket: BucketId, version: int) -> bytes:
    """AD for ``KeyProvider.wrap`` of a bucket KEK::

    "callvault/bucket-kek/v1\\0" ‖ lp(bucket canonical, ASCII) ‖ BE32(bucket KEK version)
    """
    if not isinstance(bucket, BucketId):
        raise InvalidInput("bucket must be a BucketId")
    return _BUCKET_KEK_DOMAIN + _lp(bucket.canonical().encode("ascii")) + _be32(version)


def hold_kek_ad(version: int) -> bytes:
    """AD for ``KeyProvider.wrap`` of the hold KEK::

    "callvault/hold-kek/v1\\0" ‖ BE32(hold KEK version)
    """
    return _HOLD_KEK_DOMAIN + _be32(version)


def root_wrap_aad(version: int, ad: bytes) -> bytes:
    """The GCM AAD every KeyProvider uses for its root wraps::

        "callvault/root-wrap/v1\\0" ‖ BE32(root KEK version) ‖ ad

    Binding the version means a blob presented with another version's number
    fails even if that key were somehow identical.
    """
    if not isinstance(ad, bytes):
        raise InvalidInput("associated data must be bytes")
    return _ROOT_WRAP_DOMAIN + _be32(version) + ad


def _require_key(key: bytes, what: str) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_LEN:
        raise InvalidInput(f"{what} must be 32 bytes")


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM with a random nonce: returns ``nonce(12) ‖ ciphertext ‖ tag(16)``."""
    _require_key(key, "key")
    if not isinstance(plaintext, bytes) or not isinstance(aad, bytes):
        raise InvalidInput("plaintext and associated data must be bytes")
    nonce = secrets.token_bytes(NONCE_LEN)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Inverse of :func:`seal`; any malformed or unauthentic input raises ``IntegrityError``."""
    _require_key(key, "key")
    if not isinstance(aad, bytes):
        raise InvalidInput("associated data must be bytes")
    if not isinstance(blob, bytes) or len(blob) < NONCE_LEN + TAG_LEN:
        raise IntegrityError()
    try:
        return AESGCM(key).decrypt(blob[:NONCE_LEN], blob[NONCE_LEN:], aad)
    except InvalidTag:
        raise IntegrityError() from None


def wrap_dek(
    bucket_kek: bytes,
    dek: bytes,
    *,
    recording_id: uuid.UUID,
    dek_id: bytes,
    bucket: KekScope,
    kek_version: int,
) -> bytes:
    """Wrap a recording's DEK under a bucket (or hold) KEK.

    Output, 61 bytes::

        0x01 ‖ nonce(12) ‖ AES-256-GCM(bucket_kek, nonce, dek, AD)(32) ‖ tag(16)

    with AD from :func:`dek_wrap_ad`.  The leading format byte lets a later
    layout coexist; it is implied by the "v1" in the AD domain string.
    """
    _require_key(bucket_kek, "bucket KEK")
    _require_key(dek, "DEK")
    ad = dek_wrap_ad(
        recording_id=recording_id, dek_id=dek_id, bucket=bucket, kek_version=kek_version
    )
    return bytes([WRAP_FORMAT_V1]) + seal(bucket_kek, dek, ad)


def unwrap_dek(
    bucket_kek: bytes,
    wrapped: bytes,
    *,
    recording_id: uuid.UUID,
    dek_id: bytes,
    bucket: KekScope,
    kek_version: int,
) -> bytes:
    """Inverse of :func:`wrap_dek`.

    ``IntegrityError`` if the blob was altered, has the wrong length or format
    byte, or any bound field (recording, DEK id, scope, KEK version) differs.
    """
    _require_key(bucket_kek, "bucket KEK")
    ad = dek_wrap_ad(
        recording_id=recording_id, dek_id=dek_id, bucket=bucket, kek_version=kek_version
    )
    if (
        not isinstance(wrapped, bytes)
        or len(wrapped) != WRAPPED_DEK_LEN
        or wrapped[0] != WRAP_FORMAT_V1
    ):
        raise IntegrityError()
    return unseal(bucket_kek, wrapped[1:], ad)


def metadata_key(dek: bytes, recording_id: uuid.UUID) -> bytes:
    """The 32-byte key for a recording's encrypted personal metadata fields.

    ``HKDF-SHA-256(ikm=DEK, salt=none, info="callvault/metadata-key/v1\\0" ‖ uuid(16))``.
    It is derived, never stored, so shredding the DEK shreds the metadata too.
    The info string is disjoint from the cv1 format's HKDF inputs, so this key
    is independent of the audio segment keys and the key commitment.
    """
    _require_key(dek, "DEK")
    if not isinstance(recording_id, uuid.UUID):
        raise InvalidInput("recording id must be a UUID")
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_LEN,
        salt=None,
        info=_METADATA_KEY_DOMAIN + recording_id.bytes,
    )
    return hkdf.derive(dek)
