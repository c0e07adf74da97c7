"""Passphrase-encrypted files in the age v1 format (https://age-encryption.org/v1).

A caller's Art. 15 copy leaves the vault as a ZIP inside an age file, so the
recipient opens it with the standard ``age -d`` (or rage, or any age
implementation) and the passphrase, and nothing of callvault.  Only the
scrypt recipient is written, streaming, in bounded memory::

    age-encryption.org/v1
    -> scrypt <base64(salt 16)> <log2 N>
    <base64(ChaCha20-Poly1305(scrypt key, nonce 0, file key 16))>
    --- <base64(HMAC-SHA-256(HKDF(file key, "", "header"), header up to "---"))>
    nonce(16) ‖ STREAM chunks

The payload key is ``HKDF-SHA-256(file key, salt=nonce, info="payload")``;
chunk ``i`` is ChaCha20-Poly1305 of up to 64 KiB with the nonce
``BE88(i) ‖ last flag``; base64 is RFC 4648 without padding.  The reader
exists for tests and ``callvault privacy export-open``; every failure is one
opaque ``IntegrityError`` (``InvalidInput`` for a wrong passphrase).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Iterator
from typing import BinaryIO, Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from callvault.core.errors import IntegrityError, InvalidInput

INTRO: Final = b"age-encryption.org/v1\n"
CHUNK: Final = 64 * 1024
_TAG = 16
DEFAULT_WORK_FACTOR: Final = 18  # log2 of scrypt's N, age's own default
_MAX_WORK_FACTOR = 22
_SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _unb64(text: bytes) -> bytes:
    if b"=" in text or b"\n" in text:
        raise IntegrityError()
    try:
        return base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise IntegrityError() from None


def _hkdf(key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)


def _scrypt(passphrase: str, salt: bytes, work_factor: int) -> bytes:
    kdf = Scrypt(salt=_SCRYPT_LABEL + salt, length=32, n=1 << work_factor, r=8, p=1)
    return kdf.derive(passphrase.encode("utf-8"))


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


class AgeWriter:
    """A write-only binary stream that encrypts into ``sink`` as age v1 (scrypt).

    Plaintext is held for at most one chunk.  ``close`` writes the final
    chunk (and does not close ``sink``).  No ``tell``/``seek``: ``zipfile``
    then writes a streaming ZIP, which every unzip reads.
    """

    def __init__(self, sink: Sink, passphrase: str, work_factor: int = DEFAULT_WORK_FACTOR) -> None:
        if not passphrase:
            raise InvalidInput("an export passphrase must not be empty")
        if not 1 <= work_factor <= _MAX_WORK_FACTOR:
            raise InvalidInput("scrypt work factor out of range")
        file_key, salt, nonce = os.urandom(16), os.urandom(16), os.urandom(16)
        wrap_key = _scrypt(passphrase, salt, work_factor)
        body = ChaCha20Poly1305(wrap_key).encrypt(bytes(12), file_key, None)
        header = (
            INTRO
            + b"-> scrypt "
            + _b64(salt)
            + b" "
            + str(work_factor).encode()
            + b"\n"
            + _b64(body)
            + b"\n---"
        )
        mac = hmac.new(_hkdf(file_key, b"", b"header"), header, "sha256").digest()
        sink.write(header + b" " + _b64(mac) + b"\n" + nonce)
        self._sink = sink
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._buffer = bytearray()
        self._counter = 0
        self.closed = False

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self.closed:
            raise ValueError("write to a closed age stream")
        self._buffer += data
        # Keep at least one byte back: only the final chunk may be short, and
        # it must carry the last flag, which only close() knows to set.
        while len(self._buffer) > CHUNK:
            self._emit(bytes(self._buffer[:CHUNK]), last=False)
            del self._buffer[:CHUNK]
        return len(data)

    def flush(self) -> None:
        self._sink.flush()

    def close(self) -> None:
        if not self.closed:
            self._emit(bytes(self._buffer), last=True)
            self._buffer.clear()
            self.closed = True
            self._sink.flush()

    def _emit(self, chunk: bytes, *, last: bool) -> None:
        self._sink.write(self._aead.encrypt(_nonce(self._counter, last), chunk, None))
        self._counter += 1


def decrypt(source: BinaryIO, passphrase: str) -> Iterator[bytes]:
    """The plaintext of an age file encrypted to ``passphrase``, chunk by chunk.

    ``InvalidInput`` if the passphrase does not open it; ``IntegrityError``
    for anything malformed, altered or truncated.
    """
    lines = [source.readline(256) for _ in range(4)]
    if (
        lines[0] != INTRO
        or not lines[1].startswith(b"-> scrypt ")
        or not lines[3].startswith(b"--- ")
    ):
        raise IntegrityError()
    args = lines[1][len(b"-> scrypt ") :].rstrip(b"\n").split(b" ")
    if len(args) != 2 or not args[1].isdigit() or not 1 <= int(args[1]) <= _MAX_WORK_FACTOR:
        raise IntegrityError()
    salt, body = _unb64(args[0]), _unb64(lines[2].rstrip(b"\n"))
    try:
        file_key = ChaCha20Poly1305(_scrypt(passphrase, salt, int(args[1]))).decrypt(
            bytes(12), body, None
        )
    except InvalidTag:
        raise InvalidInput("the passphrase does not open this file") from None
    header = b"".join(lines[:3]) + b"---"
    mac = hmac.new(_hkdf(file_key, b"", b"header"), header, "sha256").digest()
    if not hmac.compare_digest(mac, _unb64(lines[3][4:].rstrip(b"\n"))):
        raise IntegrityError()
    nonce = source.read(16)
    if len(nonce) != 16:
        raise IntegrityError()
    return _payload(source, ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload")))


def _payload(source: BinaryIO, aead: ChaCha20Poly1305) -> Iterator[bytes]:
    counter, chunk = 0, source.read(CHUNK + _TAG)
    while True:
        following = source.read(CHUNK + _TAG)
        last = not following
        try:
            yield aead.decrypt(_nonce(counter, last), chunk, None)
        except InvalidTag:
            raise IntegrityError() from None
        if last:
            return
        counter, chunk = counter + 1, following
