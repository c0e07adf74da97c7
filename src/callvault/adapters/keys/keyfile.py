"""KeyProvider backed by a passphrase-sealed key file (the embedded default).

The file is a small JSON envelope::

    {"format": "callvault-keyfile-1",
     "kdf":    {"name": "argon2id", "t": 6, "m_kib": 65536, "p": 1, "salt": b64(16)},
     "check":  b64(16),
     "nonce":  b64(12),
     "sealed": b64(AES-256-GCM ciphertext ‖ tag)}

Key derivation::

    master   = Argon2id(passphrase, salt, t, m_kib, p, len=32)
    seal_key = HKDF-SHA-256(master, info="callvault-keyfile-1/seal",  len=32)
    check    = HKDF-SHA-256(master, info="callvault-keyfile-1/check", len=16)

``check`` tells a wrong passphrase (``WrongPassphrase``) apart from a file that
was altered after sealing (``KeyUnavailable``); it is no cheaper to attack than
the sealed payload itself.  The AEAD AD is the canonical JSON (sorted keys, no
spaces) of ``format``, ``kdf`` and ``check``: changing any header field breaks
the seal.  The sealed payload is::

    "CVK1" ‖ BE32(current version) ‖ index_key(32) ‖ audit_seed(32)
    ‖ n × (BE32(version) ‖ root_kek(32))       n ≥ 1, versions strictly ascending

Root wraps are ``nonce(12) ‖ ciphertext ‖ tag(16)`` under the root KEK with
AAD :func:`callvault.core.keys.root_wrap_aad`.  Root KEKs live in process
memory while the provider is open: this is the price of having no HSM.

One process writes the file at a time (rotation is an administrative
command); writes are atomic, so readers see the old or the new file.  A
retired key may survive in freed disk blocks of the replaced file: shredding
guarantees rest on destroying bucket KEKs, which never touch this file.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from callvault.adapters.keys.securefile import (
    check_key_directory,
    read_key_file,
    write_key_file,
)
from callvault.core.errors import (
    AlreadyExists,
    Conflict,
    IntegrityError,
    InvalidInput,
    KeyUnavailable,
    NotFound,
    WrongPassphrase,
)
from callvault.core.keys import KEY_LEN, NONCE_LEN, root_wrap_aad, seal, unseal

FORMAT = "callvault-keyfile-1"
_SALT_LEN = 16
_CHECK_LEN = 16
_PAYLOAD_MAGIC = b"CVK1"
_HEAD_LEN = 4 + 4 + 2 * KEY_LEN  # magic, current version, index key, audit seed


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id cost.  The default takes about 0.4 s and 64 MiB on a 2-core VM.

    Memory is kept at 64 MiB (above OWASP's 46 MiB floor) with more passes
    instead, because every command opens the key file and a vault process
    must stay within 150 MB even while ingesting a multi-gigabyte file.
    """

    time_cost: int = 6
    memory_kib: int = 65_536
    parallelism: int = 1

    def is_valid(self) -> bool:
        values = (self.time_cost, self.memory_kib, self.parallelism)
        if any(isinstance(v, bool) or not isinstance(v, int) for v in values):
            return False
        return (
            1 <= self.time_cost <= 64
            and 1 <= self.parallelism <= 16
            and 8 * self.parallelism <= self.memory_kib <= 4 * 1024 * 1024
        )


DEFAULT_KDF = KdfParams()


@dataclass(frozen=True, slots=True)
class _Secrets:
    roots: Mapping[int, bytes]
    current: int
    index_key: bytes
    audit_seed: bytes

    @classmethod
    def generate(cls) -> _Secrets:
        draw = secrets.token_bytes  # independent draws: no secret derives from another
        return cls({1: draw(KEY_LEN)}, 1, draw(KEY_LEN), draw(KEY_LEN))

    def encode(self) -> bytes:
        entries = (v.to_bytes(4, "big") + self.roots[v] for v in sorted(self.roots))
        head = _PAYLOAD_MAGIC + self.current.to_bytes(4, "big") + self.index_key + self.audit_seed
        return head + b"".join(entries)

    @classmethod
    def decode(cls, data: bytes) -> _Secrets:
        """Strict inverse of :meth:`encode`; ``KeyUnavailable`` for anything else."""
        rest, width = data[_HEAD_LEN:], 4 + KEY_LEN
        entries = [rest[i : i + width] for i in range(0, len(rest), width)]
        roots = {int.from_bytes(e[:4], "big"): e[4:] for e in entries}
        current = int.from_bytes(data[4:8], "big")
        well_formed = (
            data.startswith(_PAYLOAD_MAGIC)
            and len(data) >= _HEAD_LEN
            and len(rest) % width == 0
            and list(roots) == sorted(set(roots)) == [int.from_bytes(e[:4], "big") for e in entries]
            and current in roots
        )
        if not well_formed:
            raise KeyUnavailable("key file payload is malformed")
        return cls(roots, current, data[8 : 8 + KEY_LEN], data[8 + KEY_LEN : _HEAD_LEN])


@dataclass(frozen=True, slots=True)
class _Sealer:
    """The passphrase-derived keys and the header fields they depend on."""

    params: KdfParams
    salt: bytes
    seal_key: bytes
    check: bytes

    @classmethod
    def derive(cls, passphrase: bytes, params: KdfParams, salt: bytes) -> _Sealer:
        master = hash_secret_raw(
            secret=passphrase,
            salt=salt,
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            hash_len=32,
            type=Type.ID,
        )
        return cls(
            params, salt, _hkdf(master, b"seal", KEY_LEN), _hkdf(master, b"check", _CHECK_LEN)
        )

    def header(self) -> dict[str, Any]:
        kdf = {
            "name": "argon2id",
            "t": self.params.time_cost,
            "m_kib": self.params.memory_kib,
            "p": self.params.parallelism,
            "salt": _b64(self.salt),
        }
        return {"format": FORMAT, "kdf": kdf, "check": _b64(self.check)}

    def aad(self) -> bytes:
        return json.dumps(self.header(), sort_keys=True, separators=(",", ":")).encode()

    def seal_file(self, state: _Secrets) -> bytes:
        blob = seal(self.seal_key, state.encode(), self.aad())
        envelope = {
            **self.header(),
            "nonce": _b64(blob[:NONCE_LEN]),
            "sealed": _b64(blob[NONCE_LEN:]),
        }
        return json.dumps(envelope, indent=1, sort_keys=True).encode() + b"\n"


def _hkdf(master: bytes, label: bytes, length: int) -> bytes:
    info = FORMAT.encode() + b"/" + label
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(master)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, length: int | None) -> bytes:
    if not isinstance(value, str):
        raise KeyUnavailable("key file header is invalid")
    try:
        data = binascii.a2b_base64(value.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise KeyUnavailable("key file header is invalid") from None
    if length is not None and len(data) != length:
        raise KeyUnavailable("key file header is invalid")
    return data


def _parse_envelope(raw: bytes) -> tuple[KdfParams, bytes, bytes, bytes]:
    """Return (kdf params, salt, check, nonce ‖ sealed); ``KeyUnavailable`` if malformed."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise KeyUnavailable("key file is not a callvault key file") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeyUnavailable("key file is not a callvault key file (format callvault-keyfile-1)")
    kdf = doc.get("kdf")
    if set(doc) != {"format", "kdf", "check", "nonce", "sealed"} or not isinstance(kdf, dict):
        raise KeyUnavailable("key file header is invalid")
    if set(kdf) != {"name", "t", "m_kib", "p", "salt"} or kdf["name"] != "argon2id":
        raise KeyUnavailable("key file header is invalid")
    params = KdfParams(kdf["t"], kdf["m_kib"], kdf["p"])
    if not params.is_valid():
        raise KeyUnavailable("key file header is invalid")
    salt = _unb64(kdf["salt"], _SALT_LEN)
    check = _unb64(doc["check"], _CHECK_LEN)
    blob = _unb64(doc["nonce"], NONCE_LEN) + _unb64(doc["sealed"], None)
    return params, salt, check, blob


def _require_passphrase(passphrase: bytes) -> None:
    if not isinstance(passphrase, bytes):
        raise InvalidInput("passphrase must be bytes")
    if not passphrase:
        raise InvalidInput("empty passphrase refused")


class KeyfileProvider:
    """Root KEKs, blind-index key and audit seed in one passphrase-sealed file."""

    def __init__(self, path: Path, sealer: _Sealer, state: _Secrets) -> None:
        """Use :meth:`create` or :meth:`open`."""
        self._path = path
        self._sealer = sealer
        self._state = state
        self._lock = threading.Lock()
        self._identity = _file_identity(path)

    @classmethod
    def create(
        cls, path: str | os.PathLike[str], passphrase: bytes, *, kdf_params: KdfParams | None = None
    ) -> KeyfileProvider:
        """Write a new key file with fresh secrets.  ``AlreadyExists`` if ``path`` exists."""
        _require_passphrase(passphrase)
        params = DEFAULT_KDF if kdf_params is None else kdf_params
        if not params.is_valid():
            raise InvalidInput("Argon2 parameters out of range")
        target = Path(os.path.abspath(path))
        check_key_directory(target)
        if os.path.lexists(target):
            raise AlreadyExists("key file", str(target))
        sealer = _Sealer.derive(passphrase, params, secrets.token_bytes(_SALT_LEN))
        state = _Secrets.generate()
        write_key_file(target, sealer.seal_file(state), replace=False)
        return cls(target, sealer, state)

    @classmethod
    def open(cls, path: str | os.PathLike[str], passphrase: bytes) -> KeyfileProvider:
        """Open an existing key file.

        ``InsecureKeyFile`` for a symlink, non-regular file, group/other
        permissions or a directory others can write; ``WrongPassphrase`` for a
        bad passphrase; ``KeyUnavailable`` for a missing, malformed or altered file.
        """
        _require_passphrase(passphrase)
        target = Path(os.path.abspath(path))
        params, salt, check, blob = _parse_envelope(read_key_file(target))
        sealer = _Sealer.derive(passphrase, params, salt)
        if not hmac.compare_digest(sealer.check, check):
            raise WrongPassphrase()
        try:
            payload = unseal(sealer.seal_key, blob, sealer.aad())
        except IntegrityError:
            raise KeyUnavailable(
                f"key file {target} failed authentication: it was altered or damaged"
            ) from None
        return cls(target, sealer, _Secrets.decode(payload))

    @property
    def path(self) -> Path:
        return self._path

    @property
    def kdf_params(self) -> KdfParams:
        return self._sealer.params

    def current_version(self) -> int:
        return self._fresh().current

    def versions(self) -> list[int]:
        return sorted(self._fresh().roots)

    def wrap(self, plaintext: bytes, ad: bytes) -> tuple[int, bytes]:
        # Another process may have rotated since we opened the file: wrapping
        # under a root it is about to retire would make this key unreadable.
        state = self._fresh()
        aad = root_wrap_aad(state.current, ad)
        return state.current, seal(state.roots[state.current], plaintext, aad)

    def unwrap(self, version: int, blob: bytes, ad: bytes) -> bytes:
        aad = root_wrap_aad(version, ad)
        key = self._fresh().roots.get(version)
        if key is None:
            raise KeyUnavailable(f"root KEK version {version} is not held")
        return unseal(key, blob, aad)

    def rotate(self) -> int:
        with self._lock:
            state = self._fresh()
            version = max(state.roots) + 1
            roots = {**state.roots, version: secrets.token_bytes(KEY_LEN)}
            self._commit(_Secrets(roots, version, state.index_key, state.audit_seed))
            return version

    def retire(self, version: int) -> None:
        with self._lock:
            state = self._fresh()
            if version == state.current:
                raise Conflict(f"root KEK version {version} is current; rotate first")
            if version not in state.roots:
                raise NotFound("root KEK version")
            roots = {v: k for v, k in state.roots.items() if v != version}
            self._commit(_Secrets(roots, state.current, state.index_key, state.audit_seed))

    def index_key(self) -> bytes:
        return self._state.index_key

    def audit_signing_seed(self) -> bytes:
        return self._state.audit_seed

    def change_passphrase(self, passphrase: bytes, *, kdf_params: KdfParams | None = None) -> None:
        """Reseal under a new passphrase and fresh salt (and optionally new Argon2 costs)."""
        _require_passphrase(passphrase)
        params = self._sealer.params if kdf_params is None else kdf_params
        if not params.is_valid():
            raise InvalidInput("Argon2 parameters out of range")
        with self._lock:
            sealer = _Sealer.derive(passphrase, params, secrets.token_bytes(_SALT_LEN))
            write_key_file(self._path, sealer.seal_file(self._state), replace=True)
            self._sealer = sealer

    def close(self) -> None:
        """Nothing to release; present so both providers can be closed alike."""

    def _commit(self, state: _Secrets) -> None:
        # The file is written first: memory never runs ahead of what survives a crash.
        check_key_directory(self._path)
        write_key_file(self._path, self._sealer.seal_file(state), replace=True)
        self._state = state
        self._identity = _file_identity(self._path)

    def _fresh(self) -> _Secrets:
        """The secrets as the file holds them now, re-read if another process changed it."""
        identity = _file_identity(self._path)
        if identity == self._identity:
            return self._state
        _params, salt, check, blob = _parse_envelope(read_key_file(self._path))
        if salt != self._sealer.salt or not hmac.compare_digest(self._sealer.check, check):
            raise KeyUnavailable("the key file was resealed by another process; start again")
        try:
            payload = unseal(self._sealer.seal_key, blob, self._sealer.aad())
        except IntegrityError:
            raise KeyUnavailable(
                f"key file {self._path} failed authentication: it was altered or damaged"
            ) from None
        self._state = _Secrets.decode(payload)
        self._identity = identity
        return self._state


def _file_identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)
