"""The ``cv1`` encrypted object format: Tink AES-GCM-HKDF streaming, with random access.

Byte layout of one object (S = 65536, H = 40, T = 16)::

    offset 0                                         S                    2S
    +------+-----------+-----------+-----------------+---------------------+----
    | 0x28 | salt (32) | prefix (7)| segment 0       | segment 1           | ...
    |      |           |           | ct(S-H-T) | tag | ct(S-T)       | tag |
    +------+-----------+-----------+-----------------+---------------------+----
    <--------- header H = 40 ------>

    segment i plaintext: i == 0 -> S - T - H = 65480 bytes, else S - T = 65520 bytes;
                         the last segment may be shorter (empty only if the whole
                         plaintext is empty).
    segment key = HKDF-SHA-256(ikm=DEK, salt=salt, info=AD, length=32)
    nonce(i)    = prefix(7) || BE32(i) || last(1)     last = 0x01 on the final segment
    segment     = AES-256-GCM(segment key, nonce(i), plaintext_i, aad=empty)

    AD = "callvault/v1\\0" || recording uuid (16) || u8 len || DEK id || u8 len || media type
    commitment = HKDF-Expand-SHA-256(PRK=DEK, info="cv1/commit" || AD, length=32)

This is byte-for-byte Tink's AES-GCM-HKDF streaming layout (key 32, derived key
32, HKDF SHA256, ciphertext segment 65536), so Tink decrypts what we write and
the other way round.  Tink binds the associated data only through the HKDF info, so
a segment moved from another recording (other AD) fails authentication.

Every authentication failure raises the one opaque ``IntegrityError``; bad
arguments raise ``InvalidInput``.  I/O is injected: ``read(offset, length)``
returns ciphertext bytes with the ``BlobStore.read`` contract (short = ends).
"""

from __future__ import annotations

import hmac
import secrets
import struct
import uuid
from collections.abc import Callable, Iterable, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from callvault.core.errors import IntegrityError, InvalidInput

__all__ = [
    "COMMITMENT_SIZE",
    "HEADER_SIZE",
    "KEY_SIZE",
    "SEGMENT_SIZE",
    "TAG_SIZE",
    "CiphertextReader",
    "associated_data",
    "check_commitment",
    "ciphertext_size",
    "decrypt_range",
    "decrypt_stream",
    "encrypt_stream",
    "key_commitment",
    "plaintext_size",
]

SEGMENT_SIZE = 65536
HEADER_SIZE = 40
TAG_SIZE = 16
KEY_SIZE = 32
COMMITMENT_SIZE = 32

_SALT_SIZE = 32
_PREFIX_SIZE = 7
_PT_SEGMENT = SEGMENT_SIZE - TAG_SIZE  # plaintext bytes in a full segment
_FIRST_PT_SEGMENT = _PT_SEGMENT - HEADER_SIZE  # the header eats into segment 0
_MAX_SEGMENTS = 1 << 32  # the segment index is a 32-bit counter in the nonce
_NONCE_TAIL = struct.Struct(">IB")
_AD_MAGIC = b"callvault/v1\0"
_COMMIT_LABEL = b"cv1/commit"
_MAX_FIELD = 255  # AD fields carry a one-byte length
# Streaming reads fetch this many segments per read() call: one S3 range request
# per 1 MiB instead of per 64 KiB, still constant memory.
_STREAM_BATCH = 16

BytesLike = bytes | bytearray | memoryview
# read(offset, length) -> ciphertext; any bytes-like result, so mmap or memory stores need not copy.
Reader = Callable[[int, int], BytesLike]


def associated_data(recording_id: uuid.UUID, dek_id: bytes, media_type: str) -> bytes:
    """Encode what a ciphertext is bound to; injective, so no two inputs collide.

    ``magic(13) || uuid(16) || u8 len(dek_id) || dek_id || u8 len(mt) || mt``
    where ``mt`` is ``media_type`` in ASCII exactly as stored (no case folding).
    """
    if not isinstance(recording_id, uuid.UUID):
        raise InvalidInput("recording id must be a UUID")
    if not isinstance(dek_id, bytes) or not 1 <= len(dek_id) <= _MAX_FIELD:
        raise InvalidInput("DEK id must be 1-255 bytes")
    if not isinstance(media_type, str) or not media_type.isascii() or not media_type.isprintable():
        raise InvalidInput("media type must be printable ASCII")
    mt = media_type.encode("ascii")
    if not 1 <= len(mt) <= _MAX_FIELD:
        raise InvalidInput("media type must be 1-255 characters")
    return b"".join(
        (_AD_MAGIC, recording_id.bytes, bytes((len(dek_id),)), dek_id, bytes((len(mt),)), mt)
    )


def key_commitment(dek: bytes, ad: bytes) -> bytes:
    """HKDF-Expand-SHA-256(PRK=DEK, info="cv1/commit" || AD, L=32).

    AES-GCM is not key-committing; storing this in the metadata row and
    checking it first means no second key can open the same ciphertext.
    """
    _check_key(dek)
    expand = HKDFExpand(hashes.SHA256(), COMMITMENT_SIZE, _COMMIT_LABEL + bytes(ad))
    return expand.derive(bytes(dek))


def check_commitment(dek: bytes, ad: bytes, expected: bytes) -> None:
    """Raise ``IntegrityError`` unless ``expected`` is the commitment (constant time)."""
    if not hmac.compare_digest(key_commitment(dek, ad), bytes(expected)):
        raise IntegrityError()


def ciphertext_size(plaintext_size: int) -> int:
    """Exact object length for a plaintext of ``plaintext_size`` bytes."""
    if plaintext_size < 0:
        raise InvalidInput("negative plaintext size")
    segments = max(1, -(-(plaintext_size + HEADER_SIZE) // _PT_SEGMENT))
    if segments > _MAX_SEGMENTS:
        raise InvalidInput("plaintext too large for cv1")
    return plaintext_size + HEADER_SIZE + segments * TAG_SIZE


def plaintext_size(ciphertext_size: int) -> int:
    """Inverse of :func:`ciphertext_size`; ``IntegrityError`` for a length it never gives."""
    return _segment_count(ciphertext_size)[1]


def _segment_count(ct_size: int) -> tuple[int, int]:
    """``(segments, plaintext size)`` of a well-formed object of ``ct_size`` bytes.

    Only canonical lengths pass: a final segment that is empty (tag only) exists
    only when the whole plaintext is empty, as both we and Tink write it.
    """
    if ct_size < HEADER_SIZE + TAG_SIZE:
        raise IntegrityError()
    segments = -(-ct_size // SEGMENT_SIZE)
    last = ct_size - (segments - 1) * SEGMENT_SIZE
    if segments > _MAX_SEGMENTS or (segments > 1 and last <= TAG_SIZE):
        raise IntegrityError()
    return segments, ct_size - HEADER_SIZE - segments * TAG_SIZE


def _check_key(dek: bytes) -> None:
    if not isinstance(dek, bytes | bytearray) or len(dek) != KEY_SIZE:
        raise InvalidInput("a DEK is 32 bytes")


def _segment_cipher(dek: bytes, ad: bytes, salt: bytes) -> AESGCM:
    """HKDF-SHA-256(ikm=DEK, salt=salt, info=AD, L=32), as Tink derives the segment key."""
    hkdf = HKDF(hashes.SHA256(), KEY_SIZE, salt=salt, info=ad)
    return AESGCM(hkdf.derive(dek))


def encrypt_stream(dek: bytes, ad: bytes, chunks: Iterable[BytesLike]) -> Iterator[bytes]:
    """Encrypt ``chunks`` (any sizes) into a cv1 object; yields the header then segments.

    Memory stays at one segment plus the caller's chunk whatever the input size.
    Large chunks are sealed straight from a memoryview; only the tail that does
    not fill a segment is buffered.  A full segment is held back until more
    input arrives, because whether it is the last one decides its nonce.
    """
    _check_key(dek)
    salt, prefix = secrets.token_bytes(_SALT_SIZE), secrets.token_bytes(_PREFIX_SIZE)
    aes = _segment_cipher(bytes(dek), bytes(ad), salt)
    yield bytes((HEADER_SIZE,)) + salt + prefix
    index, cap, pending = 0, _FIRST_PT_SEGMENT, bytearray()
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        pos, size = 0, len(view)
        if pending or size <= cap:
            pos = min(cap - len(pending), size)
            pending += view[:pos]
            if pos == size:
                continue  # pending might be the last segment: wait for more input
            yield _seal(aes, prefix, index, pending, last=False)
            index, cap = index + 1, _PT_SEGMENT
            pending.clear()
        while size - pos > cap:
            yield _seal(aes, prefix, index, view[pos : pos + cap], last=False)
            index, pos, cap = index + 1, pos + cap, _PT_SEGMENT
        pending += view[pos:]
    yield _seal(aes, prefix, index, pending, last=True)


def _seal(aes: AESGCM, prefix: bytes, index: int, data: BytesLike, *, last: bool) -> bytes:
    if index >= _MAX_SEGMENTS:
        raise InvalidInput("plaintext too large for cv1")
    return aes.encrypt(prefix + _NONCE_TAIL.pack(index, last), data, None)


class CiphertextReader:
    """Random access into one cv1 object; reads the header once, then whole segments.

    ``ciphertext_size`` is the length the caller expects (from the metadata row);
    a non-canonical length, a short read, or bytes past that length (seen when
    the final segment is read) raise ``IntegrityError``.  Check the key
    commitment with :func:`check_commitment` before constructing one.  One
    reader may serve many ranges: the header and segment key are kept.
    """

    def __init__(self, dek: bytes, ad: bytes, read: Reader, ciphertext_size: int) -> None:
        _check_key(dek)
        self._segments, self.plaintext_size = _segment_count(ciphertext_size)
        self._dek, self._ad, self._read = bytes(dek), bytes(ad), read
        self._ct_size = ciphertext_size
        self._aes: AESGCM | None = None
        self._prefix = b""

    def read(self, offset: int, length: int) -> bytes:
        """Plaintext ``[offset, offset + length)`` clipped to the end; ``b""`` past it."""
        if offset < 0 or length < 0:
            raise InvalidInput("negative offset or length")
        stop = min(offset + length, self.plaintext_size)
        if offset >= stop:
            return b""
        first, end = self._covering(offset, stop)
        if end - first <= _STREAM_BATCH:  # the usual seek: one read, no generator
            pieces = self._decrypt_batch(first, end, offset, stop)
        else:
            pieces = list(self._decrypt(offset, stop))
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def stream(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Iterate plaintext ``[start, end)`` segment by segment (``end=None``: to the end).

        Arguments are checked now; reading starts with the first ``next()``.
        ``start=0, end=None`` authenticates every segment, including the lone
        empty segment of an empty plaintext.
        """
        if start < 0 or (end is not None and end < 0):
            raise InvalidInput("negative start or end")
        stop = self.plaintext_size if end is None else min(end, self.plaintext_size)
        return self._stream(start, stop, whole=start == 0 and end is None)

    def _stream(self, start: int, stop: int, *, whole: bool) -> Iterator[bytes]:
        if start < stop:
            yield from self._decrypt(start, stop)
        elif whole and self.plaintext_size == 0:
            for _ in self._decrypt(0, 0):
                pass  # nothing to return, but prove the final segment is intact

    def _decrypt(self, start: int, stop: int) -> Iterator[bytes]:
        """Authenticated plaintext of ``[start, stop)``, one piece per segment.

        Segments are fetched ``_STREAM_BATCH`` at a time, one ``read`` each, so
        memory stays bounded however long the range.
        """
        first, end = self._covering(start, stop)
        for batch in range(first, end, _STREAM_BATCH):
            yield from self._decrypt_batch(batch, min(batch + _STREAM_BATCH, end), start, stop)

    @staticmethod
    def _covering(start: int, stop: int) -> tuple[int, int]:
        """Segments ``[first, end)`` holding plaintext ``[start, stop)`` (at least one)."""
        first = (start + HEADER_SIZE) // _PT_SEGMENT
        return first, max(first + 1, (stop - 1 + HEADER_SIZE) // _PT_SEGMENT + 1)

    def _decrypt_batch(self, first: int, end: int, start: int, stop: int) -> list[bytes]:
        """Read segments ``[first, end)`` in one call, open each, cut to ``[start, stop)``."""
        aes = self._cipher()
        base = first * SEGMENT_SIZE or HEADER_SIZE
        view = memoryview(self._read_exact(base, end))
        pieces = []
        for seg in range(first, end):
            lo = seg * SEGMENT_SIZE or HEADER_SIZE
            plain = self._open(aes, seg, view[lo - base : (seg + 1) * SEGMENT_SIZE - base])
            skip = start - (seg * _PT_SEGMENT - HEADER_SIZE if seg else 0)
            keep = stop - start + min(skip, 0)
            if skip <= 0 and keep >= len(plain):
                pieces.append(plain)  # the whole segment: no copy
            else:
                pieces.append(plain[max(skip, 0) : max(skip, 0) + keep])
        return pieces

    def _open(self, aes: AESGCM, seg: int, body: memoryview) -> bytes:
        nonce = self._prefix + _NONCE_TAIL.pack(seg, seg == self._segments - 1)
        try:
            return aes.decrypt(nonce, body, None)
        except InvalidTag:
            raise IntegrityError() from None

    def _read_exact(self, offset: int, upto: int) -> BytesLike:
        """Read from ``offset`` to the end of segment ``upto - 1``; a short read fails.

        When that segment is the last one, one byte more is asked for: getting
        it means the object is longer than expected, which is tampering too.
        """
        hi = min(upto * SEGMENT_SIZE, self._ct_size)
        extra = 1 if upto == self._segments else 0
        data = self._read(offset, hi - offset + extra)
        if len(data) != hi - offset:
            raise IntegrityError()
        return data

    def _cipher(self) -> AESGCM:
        if self._aes is None:
            header = bytes(self._read(0, HEADER_SIZE))
            if len(header) != HEADER_SIZE or header[0] != HEADER_SIZE:
                raise IntegrityError()
            self._prefix = header[1 + _SALT_SIZE :]
            self._aes = _segment_cipher(self._dek, self._ad, header[1 : 1 + _SALT_SIZE])
        return self._aes


def decrypt_range(
    dek: bytes, ad: bytes, read: Reader, ciphertext_size: int, offset: int, length: int
) -> bytes:
    """Plaintext ``[offset, offset + length)`` clipped to the end, reading only the
    header and the segments that cover the range."""
    return CiphertextReader(dek, ad, read, ciphertext_size).read(offset, length)


def decrypt_stream(
    dek: bytes,
    ad: bytes,
    read: Reader,
    ciphertext_size: int,
    start: int = 0,
    end: int | None = None,
) -> Iterator[bytes]:
    """Iterate plaintext ``[start, end)`` segment by segment; see :meth:`CiphertextReader.stream`.

    The expected length and the arguments are checked at the call, before any read.
    """
    return CiphertextReader(dek, ad, read, ciphertext_size).stream(start, end)
