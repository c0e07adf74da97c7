"""The cv1 object format: round trips, random access, tamper evidence, layout."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import random
import struct
import tracemalloc
import uuid
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from callvault.core import format as cv1
from callvault.core.errors import IntegrityError, InvalidInput

S = cv1.SEGMENT_SIZE
H = cv1.HEADER_SIZE
T = cv1.TAG_SIZE
FIRST = S - T - H  # plaintext bytes in segment 0
FULL = S - T  # plaintext bytes in any later segment

DEK = bytes(range(32))
RID = uuid.UUID("5f0c4f3e-8d1a-4b8e-9a53-2f0f0a3c9e11")
AD = cv1.associated_data(RID, b"dek-0001", "audio/wav")
# Enough plaintext for five segments; tests slice prefixes instead of regenerating.
POOL = random.Random(1177).randbytes(FIRST + 4 * FULL + 777)

BOUNDARY_SIZES = [
    0,
    1,
    FIRST - 1,
    FIRST,
    FIRST + 1,
    FIRST + FULL - 1,
    FIRST + FULL,
    FIRST + FULL + 1,
    FIRST + 3 * FULL + 17,
]


class RecordingReads:
    """A ``read`` callable over bytes that remembers every (offset, length) asked."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.calls: list[tuple[int, int]] = []

    def __call__(self, offset: int, length: int) -> bytes:
        self.calls.append((offset, length))
        return self.data[offset : offset + length]


def seal(plaintext: bytes, *, chunk: int | None = None, dek: bytes = DEK, ad: bytes = AD) -> bytes:
    step = chunk or max(len(plaintext), 1)
    chunks = [plaintext[i : i + step] for i in range(0, len(plaintext), step)]
    return b"".join(cv1.encrypt_stream(dek, ad, chunks))


def open_all(ct: bytes, *, dek: bytes = DEK, ad: bytes = AD, size: int | None = None) -> bytes:
    size = len(ct) if size is None else size
    return b"".join(cv1.decrypt_stream(dek, ad, RecordingReads(ct), size))


def segment_bounds(ct_size: int) -> list[tuple[int, int]]:
    """Ciphertext [lo, hi) of every segment, from the documented layout."""
    count = -(-ct_size // S)
    return [(H if i == 0 else i * S, min((i + 1) * S, ct_size)) for i in range(count)]


def flip(data: bytes, position: int) -> bytes:
    out = bytearray(data)
    out[position] ^= 0x04
    return bytes(out)


# --- round trips -------------------------------------------------------------------


@pytest.mark.parametrize("size", BOUNDARY_SIZES)
def test_round_trip_around_segment_boundaries(size: int) -> None:
    plaintext = POOL[:size]
    ct = seal(plaintext)
    assert len(ct) == cv1.ciphertext_size(size)
    assert cv1.plaintext_size(len(ct)) == size
    assert open_all(ct) == plaintext
    assert cv1.decrypt_range(DEK, AD, RecordingReads(ct), len(ct), 0, size + 5) == plaintext


def test_empty_plaintext_is_header_plus_one_empty_final_segment() -> None:
    ct = seal(b"")
    assert len(ct) == H + T
    assert open_all(ct) == b""


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(0, len(POOL)),
    cuts=st.lists(st.integers(0, len(POOL)), max_size=12),
)
def test_chunk_sizes_do_not_change_the_result(size: int, cuts: list[int]) -> None:
    plaintext = POOL[:size]
    edges = sorted({0, size, *(c for c in cuts if c <= size)})
    chunks = [plaintext[a:b] for a, b in itertools.pairwise(edges)] + [b""]
    ct = b"".join(cv1.encrypt_stream(DEK, AD, chunks))
    assert len(ct) == cv1.ciphertext_size(size)
    assert open_all(ct) == plaintext


def test_reused_input_buffer_is_copied_before_refill() -> None:
    def refilled() -> Iterator[bytearray]:
        buf = bytearray(50_000)
        for start in range(0, 200_000, 50_000):
            buf[:] = POOL[start : start + 50_000]
            yield buf

    ct = b"".join(cv1.encrypt_stream(DEK, AD, refilled()))
    assert open_all(ct) == POOL[:200_000]


def test_every_encryption_uses_fresh_salt_and_nonce_prefix() -> None:
    assert seal(b"same")[:H] != seal(b"same")[:H]


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(0, len(POOL)),
    offset=st.integers(0, len(POOL) + 10),
    length=st.integers(0, len(POOL) + 10),
)
def test_random_ranges_return_the_plaintext_slice(size: int, offset: int, length: int) -> None:
    plaintext = POOL[:size]
    ct = seal(plaintext, chunk=30_001)
    want = plaintext[offset : offset + length]
    got = cv1.decrypt_range(DEK, AD, RecordingReads(ct), len(ct), offset, length)
    assert got == want
    streamed = cv1.decrypt_stream(DEK, AD, RecordingReads(ct), len(ct), offset, offset + length)
    assert b"".join(streamed) == want


# --- random access reads only what it needs ------------------------------------------


def covering_span(ct_size: int, offset: int, stop: int) -> tuple[int, int]:
    bounds = segment_bounds(ct_size)
    first, last = (offset + H) // FULL, (stop - 1 + H) // FULL
    return bounds[first][0], bounds[last][1]


@settings(max_examples=60, deadline=None)
@given(offset=st.integers(0, len(POOL) - 1), length=st.integers(1, 3 * S))
def test_decrypt_range_reads_only_header_and_covering_segments(offset: int, length: int) -> None:
    ct = seal(POOL)
    reads = RecordingReads(ct)
    cv1.decrypt_range(DEK, AD, reads, len(ct), offset, length)
    lo, hi = covering_span(len(ct), offset, min(offset + length, len(POOL)))
    assert reads.calls[0] == (0, H)
    # One read for the covering segments; one byte more only at the object's end.
    assert reads.calls[1:] == [(lo, hi - lo + (1 if hi == len(ct) else 0))]


def test_one_kib_inside_a_segment_reads_header_and_that_segment_only() -> None:
    ct = seal(POOL)
    reads = RecordingReads(ct)
    got = cv1.decrypt_range(DEK, AD, reads, len(ct), FIRST + 2 * FULL + 100, 1024)
    assert got == POOL[FIRST + 2 * FULL + 100 :][:1024]
    assert reads.calls == [(0, H), (3 * S, S)]


def test_range_past_the_end_reads_nothing() -> None:
    ct = seal(POOL[:1000])
    reads = RecordingReads(ct)
    assert cv1.decrypt_range(DEK, AD, reads, len(ct), 1000, 10) == b""
    assert cv1.decrypt_range(DEK, AD, reads, len(ct), 5, 0) == b""
    assert reads.calls == []


def test_stream_reads_lazily_in_bounded_batches() -> None:
    big = POOL * 5  # ~1.6 MB: more than one 16-segment batch
    ct = seal(big)
    reads = RecordingReads(ct)
    stream = cv1.decrypt_stream(DEK, AD, reads, len(ct))
    assert next(stream) == big[:FIRST]
    assert reads.calls == [(0, H), (H, 16 * S - H)]
    assert b"".join(stream) == big[FIRST:]
    assert max(length for _, length in reads.calls) <= 16 * S + 1


def test_long_range_is_read_in_bounded_batches() -> None:
    big = POOL * 5
    ct = seal(big)
    reads = RecordingReads(ct)
    assert cv1.decrypt_range(DEK, AD, reads, len(ct), 7, len(big)) == big[7:]
    assert len(reads.calls) == 3  # header + 25 segments in batches of 16
    assert max(length for _, length in reads.calls) <= 16 * S


def test_stream_checks_arguments_before_reading() -> None:
    reads = RecordingReads(seal(b"abc"))
    with pytest.raises(InvalidInput):
        cv1.decrypt_stream(DEK, AD, reads, len(reads.data), -1)
    with pytest.raises(IntegrityError):
        cv1.decrypt_stream(DEK, AD, reads, S + T)  # not a length cv1 ever produces
    assert reads.calls == []


def test_streaming_memory_stays_flat_for_large_input() -> None:
    block = POOL[:100_003]

    def chunks() -> Iterator[bytes]:
        for _ in range(320):  # ~32 MB of input, never all in memory
            yield block

    tracemalloc.start()
    try:
        total = sum(len(piece) for piece in cv1.encrypt_stream(DEK, AD, chunks()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == cv1.ciphertext_size(320 * len(block))
    assert peak < 1_000_000


# --- sizes ---------------------------------------------------------------------------


@given(st.integers(0, 1 << 40))
def test_size_functions_are_inverse(size: int) -> None:
    assert cv1.plaintext_size(cv1.ciphertext_size(size)) == size


@pytest.mark.parametrize("ct_size", [0, 1, H + T - 1, S + 1, S + T, 3 * S + T, -1])
def test_impossible_ciphertext_length_raises_integrity_error(ct_size: int) -> None:
    with pytest.raises(IntegrityError):
        cv1.plaintext_size(ct_size)


def test_negative_plaintext_size_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        cv1.ciphertext_size(-1)


# --- tamper evidence -------------------------------------------------------------------


TAMPER_PLAINTEXT = POOL[: FIRST + 2 * FULL + 5000]  # 4 segments, the last one partial
TAMPER_CT = seal(TAMPER_PLAINTEXT)


def sample_positions(ct_size: int) -> list[int]:
    """Header bytes, then first/middle/last body byte and first/last tag byte per segment."""
    positions = [0, 1, 16, 32, 33, 36, H - 1]
    for lo, hi in segment_bounds(ct_size):
        positions += [lo, (lo + hi - T) // 2, hi - T - 1, hi - T, hi - 1]
    return positions


@pytest.mark.parametrize("position", sample_positions(len(TAMPER_CT)))
def test_flipped_bit_anywhere_raises_integrity_error(position: int) -> None:
    with pytest.raises(IntegrityError):
        open_all(flip(TAMPER_CT, position))


@pytest.mark.parametrize("position", [H, S + 7, 2 * S + T, len(TAMPER_CT) - 1])
def test_flipped_bit_fails_random_access_to_that_segment(position: int) -> None:
    tampered = flip(TAMPER_CT, position)
    plain_offset = max(0, (position // S) * FULL - H)
    with pytest.raises(IntegrityError):
        cv1.decrypt_range(DEK, AD, RecordingReads(tampered), len(tampered), plain_offset, 1)


def test_flipped_tag_of_empty_object_raises_integrity_error() -> None:
    with pytest.raises(IntegrityError):
        open_all(flip(seal(b""), H + 3))


def test_two_segments_swapped_raise_integrity_error() -> None:
    ct = TAMPER_CT
    swapped = ct[:S] + ct[2 * S : 3 * S] + ct[S : 2 * S] + ct[3 * S :]
    assert len(swapped) == len(ct) and swapped != ct
    with pytest.raises(IntegrityError):
        open_all(swapped)


def test_dropped_segment_raises_integrity_error() -> None:
    dropped = TAMPER_CT[:S] + TAMPER_CT[2 * S :]
    with pytest.raises(IntegrityError):
        open_all(dropped)


def test_truncation_at_segment_boundary_raises_integrity_error() -> None:
    for cut in (S, 2 * S, 3 * S):
        with pytest.raises(IntegrityError):
            open_all(TAMPER_CT[:cut])


@pytest.mark.parametrize("cut", [H, H + T + 1, S // 2, S + 100, len(TAMPER_CT) - 1])
def test_truncation_mid_segment_raises_integrity_error(cut: int) -> None:
    with pytest.raises(IntegrityError):
        open_all(TAMPER_CT[:cut])


def test_object_shorter_than_expected_length_raises_integrity_error() -> None:
    with pytest.raises(IntegrityError):
        open_all(TAMPER_CT[: 2 * S], size=len(TAMPER_CT))


@pytest.mark.parametrize("extra", [b"\0", b"x" * T, b"y" * (T + 1), b"z" * S])
def test_appended_bytes_raise_integrity_error(extra: bytes) -> None:
    longer = TAMPER_CT + extra
    with pytest.raises(IntegrityError):
        open_all(longer)  # length taken from the tampered object
    with pytest.raises(IntegrityError):
        open_all(longer, size=len(TAMPER_CT))  # length from the metadata row


@pytest.mark.parametrize(
    "other_ad",
    [
        cv1.associated_data(uuid.UUID(int=RID.int ^ 1), b"dek-0001", "audio/wav"),
        cv1.associated_data(RID, b"dek-0002", "audio/wav"),
        cv1.associated_data(RID, b"dek-0001", "audio/mpeg"),
    ],
    ids=["recording-id", "dek-id", "media-type"],
)
def test_wrong_associated_data_raises_integrity_error(other_ad: bytes) -> None:
    with pytest.raises(IntegrityError):
        open_all(TAMPER_CT, ad=other_ad)
    with pytest.raises(IntegrityError):
        cv1.decrypt_range(DEK, other_ad, RecordingReads(TAMPER_CT), len(TAMPER_CT), S, 10)


def test_wrong_dek_raises_integrity_error() -> None:
    with pytest.raises(IntegrityError):
        open_all(TAMPER_CT, dek=bytes(32))


def test_segment_moved_from_another_recording_raises_integrity_error() -> None:
    other_ad = cv1.associated_data(uuid.uuid4(), b"dek-0001", "audio/wav")
    donor = seal(TAMPER_PLAINTEXT, ad=other_ad)
    spliced = TAMPER_CT[:S] + donor[S : 2 * S] + TAMPER_CT[2 * S :]
    with pytest.raises(IntegrityError):
        open_all(spliced)


def test_header_from_another_object_raises_integrity_error() -> None:
    spliced = seal(TAMPER_PLAINTEXT)[:H] + TAMPER_CT[H:]
    with pytest.raises(IntegrityError):
        open_all(spliced)


def test_integrity_error_says_nothing_about_the_cause() -> None:
    messages = set()
    for bad in (flip(TAMPER_CT, 0), flip(TAMPER_CT, S + 5), TAMPER_CT[:-1]):
        with pytest.raises(IntegrityError) as caught:
            open_all(bad)
        messages.add(str(caught.value))
    assert messages == {"integrity check failed"}


# --- key commitment and associated data --------------------------------------------------


def test_commitment_is_hkdf_expand_of_dek_over_label_and_ad() -> None:
    # HKDF-Expand with L = HashLen is one HMAC block: T(1) = HMAC(PRK, info || 0x01).
    want = hmac.new(DEK, b"cv1/commit" + AD + b"\x01", hashlib.sha256).digest()
    assert cv1.key_commitment(DEK, AD) == want
    cv1.check_commitment(DEK, AD, want)


def test_wrong_commitment_raises_integrity_error() -> None:
    good = cv1.key_commitment(DEK, AD)
    for expected in (flip(good, 31), good[:16], b"", cv1.key_commitment(bytes(32), AD)):
        with pytest.raises(IntegrityError):
            cv1.check_commitment(DEK, AD, expected)
    with pytest.raises(IntegrityError):
        cv1.check_commitment(DEK, cv1.associated_data(uuid.uuid4(), b"dek-0001", "audio/wav"), good)


def test_associated_data_is_length_prefixed_fields() -> None:
    want = b"callvault/v1\0" + RID.bytes + b"\x08dek-0001" + b"\x09audio/wav"
    assert want == AD


def test_associated_data_field_boundaries_cannot_shift() -> None:
    assert cv1.associated_data(RID, b"ab", "c/d") != cv1.associated_data(RID, b"a", "bc/d")


@pytest.mark.parametrize(
    ("dek_id", "media_type"),
    [
        (b"", "audio/wav"),
        (b"x" * 256, "audio/wav"),
        (b"k", ""),
        (b"k", "audio/wäv"),
        (b"k", "a\nb"),
    ],
)
def test_malformed_associated_data_fields_are_invalid_input(dek_id: bytes, media_type: str) -> None:
    with pytest.raises(InvalidInput):
        cv1.associated_data(RID, dek_id, media_type)


def test_dek_of_wrong_length_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        list(cv1.encrypt_stream(DEK[:16], AD, [b"x"]))
    with pytest.raises(InvalidInput):
        cv1.key_commitment(DEK + b"\0", AD)


def test_negative_offset_or_length_is_invalid_input() -> None:
    ct = seal(b"abc")
    for offset, length in ((-1, 1), (0, -1)):
        with pytest.raises(InvalidInput):
            cv1.decrypt_range(DEK, AD, RecordingReads(ct), len(ct), offset, length)
    with pytest.raises(InvalidInput):
        cv1.decrypt_stream(DEK, AD, RecordingReads(ct), len(ct), 0, -1)


# --- the layout is exactly the documented construction -------------------------------------


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def test_layout_matches_the_documented_construction() -> None:
    plaintext = POOL[: FIRST + 10]
    ct = seal(plaintext)
    assert ct[0] == 0x28 and len(ct) == S + 10 + T
    salt, prefix = ct[1:33], ct[33:40]
    aes = AESGCM(hkdf_sha256(DEK, salt, AD))
    first = aes.decrypt(prefix + struct.pack(">IB", 0, 0), ct[H:S], None)
    last = aes.decrypt(prefix + struct.pack(">IB", 1, 1), ct[S:], None)
    assert first + last == plaintext
