"""cv1 is Tink's AES-GCM-HKDF streaming format: Tink is the oracle in both directions."""

from __future__ import annotations

import io
import random
import uuid

import pytest
import tink
from tink import secret_key_access, streaming_aead
from tink.proto import aes_gcm_hkdf_streaming_pb2, common_pb2, tink_pb2

from callvault.core import format as cv1
from callvault.core.errors import IntegrityError

FIRST = cv1.SEGMENT_SIZE - cv1.TAG_SIZE - cv1.HEADER_SIZE
FULL = cv1.SEGMENT_SIZE - cv1.TAG_SIZE
SIZES = [0, 1, 1000, FIRST - 1, FIRST, FIRST + 1, FIRST + FULL, FIRST + 4 * FULL + 4321]
TYPE_URL = "type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey"

DEK = random.Random(33).randbytes(32)
AD = cv1.associated_data(uuid.UUID(int=1177), b"dek-interop", "audio/wav")


def tink_streaming_aead(dek: bytes) -> streaming_aead.StreamingAead:
    """A Tink primitive over our raw DEK: AES-GCM-HKDF, HKDF-SHA256, 32-byte keys, 64 KiB."""
    streaming_aead.register()
    params = aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingParams(
        ciphertext_segment_size=cv1.SEGMENT_SIZE,
        derived_key_size=32,
        hkdf_hash_type=common_pb2.SHA256,
    )
    key = aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingKey(version=0, params=params, key_value=dek)
    keyset = tink_pb2.Keyset(
        primary_key_id=1,
        key=[
            tink_pb2.Keyset.Key(
                key_data=tink_pb2.KeyData(
                    type_url=TYPE_URL,
                    value=key.SerializeToString(),
                    key_material_type=tink_pb2.KeyData.SYMMETRIC,
                ),
                status=tink_pb2.ENABLED,
                key_id=1,
                output_prefix_type=tink_pb2.RAW,
            )
        ],
    )
    handle = tink.proto_keyset_format.parse(keyset.SerializeToString(), secret_key_access.TOKEN)
    return handle.primitive(streaming_aead.StreamingAead)


@pytest.fixture(scope="module")
def tink_aead() -> streaming_aead.StreamingAead:
    return tink_streaming_aead(DEK)


class _Sink(io.BytesIO):
    """Keeps its bytes after Tink closes it."""

    written = b""

    def close(self) -> None:
        self.written = self.getvalue()
        super().close()


def tink_encrypt(aead: streaming_aead.StreamingAead, plaintext: bytes, ad: bytes = AD) -> bytes:
    sink = _Sink()
    with aead.new_encrypting_stream(sink, ad) as stream:
        for i in range(0, len(plaintext), 10_007):  # uneven writes, as a real producer
            stream.write(plaintext[i : i + 10_007])
    return sink.written


def tink_decrypt(aead: streaming_aead.StreamingAead, ciphertext: bytes, ad: bytes = AD) -> bytes:
    with aead.new_decrypting_stream(io.BytesIO(ciphertext), ad) as stream:
        plaintext: bytes = stream.read()
    return plaintext


@pytest.mark.parametrize("size", SIZES)
def test_tink_ciphertext_decrypts_at_random_ranges(
    tink_aead: streaming_aead.StreamingAead, size: int
) -> None:
    rng = random.Random(size)
    plaintext = rng.randbytes(size)
    ct = tink_encrypt(tink_aead, plaintext)
    assert len(ct) == cv1.ciphertext_size(size)

    def read(offset: int, length: int) -> bytes:
        return ct[offset : offset + length]

    assert b"".join(cv1.decrypt_stream(DEK, AD, read, len(ct))) == plaintext
    for _ in range(40):
        offset, length = rng.randrange(size + 2), rng.randrange(3 * cv1.SEGMENT_SIZE)
        got = cv1.decrypt_range(DEK, AD, read, len(ct), offset, length)
        assert got == plaintext[offset : offset + length]


@pytest.mark.parametrize("size", SIZES)
def test_our_ciphertext_decrypts_with_tink(
    tink_aead: streaming_aead.StreamingAead, size: int
) -> None:
    plaintext = random.Random(size + 1).randbytes(size)
    chunks = [plaintext[i : i + 30_000] for i in range(0, size, 30_000)]
    ct = b"".join(cv1.encrypt_stream(DEK, AD, chunks))
    assert tink_decrypt(tink_aead, ct) == plaintext


def test_tink_refuses_our_ciphertext_under_other_associated_data(
    tink_aead: streaming_aead.StreamingAead,
) -> None:
    ct = b"".join(cv1.encrypt_stream(DEK, AD, [b"a call"]))
    other = cv1.associated_data(uuid.UUID(int=1178), b"dek-interop", "audio/wav")
    with pytest.raises(tink.TinkError):
        tink_decrypt(tink_aead, ct, other)


def test_we_refuse_tink_ciphertext_under_other_associated_data(
    tink_aead: streaming_aead.StreamingAead,
) -> None:
    ct = tink_encrypt(tink_aead, b"a call")
    other = cv1.associated_data(uuid.UUID(int=1178), b"dek-interop", "audio/wav")
    with pytest.raises(IntegrityError):
        cv1.decrypt_range(DEK, other, lambda o, n: ct[o : o + n], len(ct), 0, 6)
