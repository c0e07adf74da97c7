"""C2SP signed notes and the tlog-checkpoints they carry (Ed25519).

A tree head of the audit log (``callvault.core.merkle``) is published as a
C2SP tlog-checkpoint inside a C2SP signed note, signed with Ed25519 (see
``sign_checkpoint``), so standard note tooling can check it given the
``verifier_key_string``.  Signing and opening raise only ``InvalidInput``
(bad arguments) and ``AuditTampered`` (a note that does not verify).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from callvault.core.errors import AuditTampered, InvalidInput
from callvault.core.merkle import HASH_SIZE

_sha256 = hashlib.sha256

_DASH = "\u2014"  # the em dash that starts every signature line of a note
_ED25519 = b"\x01"  # signature type byte of Ed25519 note keys
_MAX_NOTE = 64 * 1024
_MAX_SIGNATURES = 100
_SIZE_RE = re.compile(r"\A(?:0|[1-9][0-9]{0,18})\Z")


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the log called ``origin`` had ``size`` leaves and this ``root``.

    ``origin`` is printable, non-empty, at most 256 characters; ``root`` is a
    32-byte MTH.  ``InvalidInput`` otherwise.
    """

    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        if not (isinstance(self.origin, str) and 0 < len(self.origin) <= 256):
            raise InvalidInput("checkpoint origin must be 1 to 256 characters")
        if not self.origin.isprintable() or self.origin != self.origin.strip():
            raise InvalidInput("checkpoint origin must be printable")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise InvalidInput("checkpoint size must be an integer")
        if not 0 <= self.size < 1 << 63:
            raise InvalidInput("checkpoint size out of range")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise InvalidInput("checkpoint root must be 32 bytes")

    def body(self) -> str:
        """The note text: ``origin\\nsize\\nbase64(root)\\n``."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def _check_key_name(name: str) -> None:
    # Note key names may contain neither whitespace nor "+" (the vkey separator).
    if not (isinstance(name, str) and 0 < len(name) <= 256 and name.isprintable()):
        raise InvalidInput("key name must be 1 to 256 printable characters")
    if "+" in name or any(ch.isspace() for ch in name):
        raise InvalidInput("key name must not contain spaces or '+'")


def key_hash(key_name: str, public_key: bytes) -> bytes:
    """The note key id: SHA-256(name ‖ "\\n" ‖ 0x01 ‖ public key(32))[:4]."""
    return _sha256(key_name.encode() + b"\n" + _ED25519 + public_key).digest()[:4]


def public_key_from_seed(seed: bytes) -> bytes:
    """The raw 32-byte Ed25519 public key of a 32-byte seed."""
    return _private_key(seed).public_key().public_bytes_raw()


def _private_key(seed: bytes) -> Ed25519PrivateKey:
    if not isinstance(seed, bytes) or len(seed) != 32:
        raise InvalidInput("an Ed25519 seed is 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(seed)


def verifier_key_string(key_name: str, public_key: bytes) -> str:
    """The vkey operators publish: ``name+hex(key hash)+base64(0x01 ‖ public key)``."""
    _check_key_name(key_name)
    if len(public_key) != 32:
        raise InvalidInput("an Ed25519 public key is 32 bytes")
    encoded = base64.b64encode(_ED25519 + public_key).decode()
    return f"{key_name}+{key_hash(key_name, public_key).hex()}+{encoded}"


def parse_verifier_key(vkey: str) -> tuple[str, bytes]:
    """Inverse of ``verifier_key_string``: ``(key name, public key)``; ``InvalidInput``."""
    parts = vkey.strip().split("+", 2)  # the base64 part may itself hold "+"
    if len(parts) != 3:
        raise InvalidInput("malformed verifier key")
    name, hash_hex, encoded = parts
    _check_key_name(name)
    try:
        raw = base64.b64decode(encoded, validate=True)
    except ValueError:
        raise InvalidInput("malformed verifier key") from None
    if len(raw) != 33 or raw[:1] != _ED25519 or key_hash(name, raw[1:]).hex() != hash_hex:
        raise InvalidInput("malformed verifier key")
    return name, raw[1:]


def sign_note(text: str, seed: bytes, key_name: str) -> str:
    """A C2SP signed note of ``text`` with one Ed25519 signature::

        <text, ending in a newline>
        <empty line>
        — <key name> base64(key hash(4) ‖ Ed25519 signature over UTF-8 text(64))

    ``InvalidInput`` for a bad seed or key name, or text that is empty, does
    not end in a newline, or holds control characters other than newline.
    """
    _check_key_name(key_name)
    if not text.endswith("\n") or any(ch < " " and ch != "\n" for ch in text):
        raise InvalidInput("note text must be lines of printable text")
    private = _private_key(seed)
    signature = private.sign(text.encode())
    hashed = key_hash(key_name, private.public_key().public_bytes_raw())
    return f"{text}\n{_DASH} {key_name} {base64.b64encode(hashed + signature).decode()}\n"


def open_note(note: str, public_key: bytes, key_name: str) -> str:
    """The text of a signed note that carries a valid signature by this key.

    Signatures by other keys are ignored (a note may be cosigned); one by
    this key that fails is fatal.  ``AuditTampered`` on any problem.
    """
    if not isinstance(note, str) or len(note) > _MAX_NOTE:
        raise AuditTampered("malformed signed note")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise AuditTampered("malformed signed note")
    text, block = note[: split + 1], note[split + 2 :]
    if any(ch < " " and ch != "\n" for ch in text):
        raise AuditTampered("malformed signed note")
    if not _has_valid_signature(text, block, public_key, key_name):
        raise AuditTampered("note is not signed by the audit key")
    return text


def sign_checkpoint(cp: Checkpoint, seed: bytes, key_name: str) -> str:
    """The signed note of ``cp.body()``: ``origin\\nsize\\nbase64(root)\\n``."""
    return sign_note(cp.body(), seed, key_name)


def parse_and_verify_checkpoint(note: str, public_key: bytes, key_name: str) -> Checkpoint:
    """The checkpoint in a note validly signed by ``key_name``/``public_key``.

    Extension lines are refused: this log never writes them.  Raises
    ``AuditTampered`` on any problem.
    """
    return _parse_body(open_note(note, public_key, key_name))


def _parse_body(text: str) -> Checkpoint:
    lines = text[:-1].split("\n")
    if len(lines) != 3 or not _SIZE_RE.match(lines[1]):
        raise AuditTampered("malformed checkpoint")
    try:
        root = base64.b64decode(lines[2], validate=True)
        checkpoint = Checkpoint(lines[0], int(lines[1]), root)
    except (ValueError, InvalidInput):
        raise AuditTampered("malformed checkpoint") from None
    if checkpoint.body() != text:  # non-canonical base64 and the like
        raise AuditTampered("malformed checkpoint")
    return checkpoint


def _has_valid_signature(text: str, block: str, public_key: bytes, key_name: str) -> bool:
    try:
        _check_key_name(key_name)
        verifier = Ed25519PublicKey.from_public_bytes(public_key)
    except (InvalidInput, ValueError):
        raise AuditTampered("unusable audit verification key") from None
    wanted = key_hash(key_name, public_key)
    lines = block[:-1].split("\n")
    if not block or len(lines) > _MAX_SIGNATURES:
        raise AuditTampered("malformed signed note")
    found = False
    for line in lines:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH:
            raise AuditTampered("malformed signed note")
        try:
            payload = base64.b64decode(parts[2], validate=True)
        except ValueError:
            raise AuditTampered("malformed signed note") from None
        if len(payload) < 5:
            raise AuditTampered("malformed signed note")
        if parts[1] != key_name or payload[:4] != wanted:
            continue
        try:
            verifier.verify(payload[4:], text.encode())
        except InvalidSignature:
            raise AuditTampered("note signature does not verify") from None
        found = True
    return found
