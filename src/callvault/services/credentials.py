"""Secrets of people and services, and how each is kept at rest.

=====================  ============================  ===============================
secret                 given to                      stored as
=====================  ============================  ===============================
password               the person (chosen)           Argon2id hash (argon2-cffi)
session id             browser cookie                SHA-256
CSRF token             the signed-in page            SHA-256
enrolment link token   URL fragment (printed once)   SHA-256
API token ``cvt_...``  the service (shown once)      SHA-256
recovery code          the person (shown once)       SHA-256
TOTP secret            authenticator app (QR)        AES-256-GCM sealed, see below
client address         (not a secret: personal data) HMAC-SHA-256, throttles only
=====================  ============================  ===============================

Every random secret holds at least 80 bits (recovery codes) and mostly 256,
so a plain SHA-256 is enough: nobody can guess one, and a stolen database
gives nothing to replay.  Only passwords, chosen by people, need a slow hash.

TOTP secrets must be readable again to check a code, so they are sealed
rather than hashed, under a key that is not in the database: HKDF-SHA-256
of the key provider's blind-index key with the label
``callvault/totp-seal/v1``.  The label separates it from every other use of
that key (a blind index and a seal can never be confused), and a database
dump alone opens nothing::

    +------+-----------+-----------------------------------+
    | 0x01 | nonce(12) | AES-256-GCM(base32 secret) || tag |
    +------+-----------+-----------------------------------+
    associated data: b"callvault/totp/v1\\0" || user id (16 bytes)

Binding the user id means a sealed secret copied onto another user's row
fails to open (``IntegrityError``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import threading
import uuid
from datetime import datetime
from typing import Final

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from callvault.core.errors import IntegrityError
from callvault.core.passwords import normalise
from callvault.services.context import Vault

SEAL_LABEL: Final = b"callvault/totp-seal/v1"
THROTTLE_LABEL: Final = b"callvault/throttle/v1"
_SEAL_VERSION: Final = b"\x01"
_SEAL_AD: Final = b"callvault/totp/v1\x00"
TOTP_PERIOD: Final = 30
TOTP_DIGITS: Final = 6
TOTP_ISSUER: Final = "callvault"
RECOVERY_CODES: Final = 10
_RECOVERY_ALPHABET: Final = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
_RECOVERY_LENGTH: Final = 16  # 16 symbols of 31: 79 bits
MAX_PASSWORD_INPUT: Final = 1024  # longer input is refused unhashed (CPU and memory)


def new_secret() -> str:
    """256 random bits, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def same_digest(secret: str | None, stored: bytes) -> bool:
    """Constant-time check of ``secret`` against its stored SHA-256."""
    return secret is not None and hmac.compare_digest(digest(secret), stored)


# --- passwords -----------------------------------------------------------------

# argon2-cffi's defaults are RFC 9106's second recommended profile: Argon2id,
# t=3, 64 MiB, 4 lanes (about 0.2 s here).  At most four hashes run at once so
# a burst of sign-ins cannot make the service allocate gigabytes.
PASSWORD_HASHER = PasswordHasher()
_HASHING = threading.BoundedSemaphore(4)


@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """Argon2id hash of the NFKC-normalised password."""
    with _HASHING:
        return PASSWORD_HASHER.hash(normalise(password))


def verify_password(stored: str | None, password: str) -> bool:
    """True iff ``password`` matches ``stored``.

    Takes about as long when there is no hash (unknown user, not enrolled)
    or the input is absurdly long: a dummy hash is checked instead, so timing
    does not tell whether an account exists.
    """
    hasher = PASSWORD_HASHER
    usable = stored is not None and len(password) <= MAX_PASSWORD_INPUT
    target = stored if usable and stored is not None else _dummy_hash(hasher)
    candidate = normalise(password) if usable else ""
    with _HASHING:
        try:
            return hasher.verify(target, candidate) and usable
        except (VerificationError, InvalidHashError):
            return False


def needs_rehash(stored: str) -> bool:
    return PASSWORD_HASHER.check_needs_rehash(stored)


# --- keyed hashes (throttles, audit tags) ----------------------------------------


def _derive(vault: Vault, label: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label)
    return hkdf.derive(vault.keys.index_key())


def throttle_key(vault: Vault, kind: str, value: str) -> bytes:
    """HMAC of ``kind`` and ``value`` (a user name or a client address)."""
    message = kind.encode("ascii") + b"\x00" + value.encode("utf-8")
    return hmac.new(_derive(vault, THROTTLE_LABEL), message, hashlib.sha256).digest()


_LETTERS = "abcdefghijklmnop"


def client_tag(vault: Vault, client: str | None) -> str:
    """A 16-letter pseudonym of a client address for the audit log.

    Lets a log reviewer see that failures came from one place without the
    log holding the address.  Letters only, so the audit screen for long
    digit runs never trips on it.
    """
    raw = throttle_key(vault, "audit-client", client or "-")[:8]
    return "".join(_LETTERS[b >> 4] + _LETTERS[b & 15] for b in raw)


# --- TOTP ---------------------------------------------------------------------------


def new_totp_secret() -> str:
    """160 random bits in base32, as authenticator apps expect (RFC 4226 minimum 128)."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii")


def _seal_ad(user_id: uuid.UUID) -> bytes:
    return _SEAL_AD + user_id.bytes


def seal_totp(vault: Vault, user_id: uuid.UUID, secret: str) -> bytes:
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_derive(vault, SEAL_LABEL)).encrypt(
        nonce, secret.encode("ascii"), _seal_ad(user_id)
    )
    return _SEAL_VERSION + nonce + sealed


def open_totp(vault: Vault, user_id: uuid.UUID, blob: bytes) -> str:
    """Reverse of :func:`seal_totp`; ``IntegrityError`` for anything altered or moved."""
    if len(blob) < 1 + 12 + 16 or blob[:1] != _SEAL_VERSION:
        raise IntegrityError()
    try:
        plain = AESGCM(_derive(vault, SEAL_LABEL)).decrypt(blob[1:13], blob[13:], _seal_ad(user_id))
    except InvalidTag:
        raise IntegrityError() from None
    return plain.decode("ascii")


def totp_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD).provisioning_uri(
        name=username, issuer_name=TOTP_ISSUER
    )


def qr_svg(uri: str) -> str:
    """The otpauth URI as an inline SVG QR code: no script, no external reference."""
    return str(segno.make(uri, error="m").svg_inline(scale=4, omitsize=True))


def totp_step(moment: datetime) -> int:
    return int(moment.timestamp()) // TOTP_PERIOD


def match_totp(secret: str, code: str, moment: datetime) -> int | None:
    """The time step (now, one back or one ahead) whose code ``code`` is, else None.

    The caller refuses a step at or before the last one used (replay).
    """
    code = code.strip().replace(" ", "")
    if len(code) != TOTP_DIGITS or not code.isascii() or not code.isdigit():
        return None
    otp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD)
    now = totp_step(moment)
    found = None
    for step in (now - 1, now, now + 1):
        if hmac.compare_digest(otp.generate_otp(step), code):
            found = step
    return found


# --- recovery codes -------------------------------------------------------------------


def new_recovery_codes() -> list[str]:
    """Ten codes such as ``k7vq-2mxr-9pzt-e4wa``, each usable once."""
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
        codes.append("-".join(raw[i : i + 4] for i in range(0, _RECOVERY_LENGTH, 4)))
    return codes


def recovery_digest(code: str) -> bytes:
    """SHA-256 of the code as typed, ignoring case, dashes and spaces."""
    return digest("".join(c for c in code.casefold() if c not in "- "))
