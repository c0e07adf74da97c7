"""Swedish personal identifiers and caller phone numbers; blind indexes; sealed fields.

Normal forms
    Phone numbers are E.164 (``+46701234567``).  Personnummer and
    samordningsnummer are 12 digits ``YYYYMMDDNNNC`` (a samordningsnummer keeps
    its day + 60, so ``701063-2391`` becomes ``197010632391``).

What the phone normaliser accepts (spaces, hyphens, dots, slashes ignored)
    ``070-123 45 67``, ``0701234567``, ``08-123 456 78``, ``031-12 34 56``,
    ``(08) 123 456 78``, ``+46 70 123 45 67``, ``+46 (0)70-123 45 67``,
    ``0046701234567``, and ``+46 070…`` (the stray trunk 0 is dropped: a Swedish
    national significant number never starts with 0).  A Swedish number has 7–9
    digits after the country code, exactly 9 in the mobile series 070, 072,
    073, 076 and 079.
    Decision: ``46701234567`` (digits only, starting with 46) is read as
    international without the plus.  Recorder logs write caller ids that way,
    and a Swedish national number always starts with the trunk 0, so the
    reading is unambiguous.  Other digit strings without a 0, 00 or + prefix
    are refused.  ``+`` or ``00`` followed by another country code is accepted
    as E.164 when it has 8–15 digits; foreign numbering plans are not checked.

What the personnummer normaliser accepts
    ``850312-1231``, ``850312+1231``, ``8503121231``, ``850312 1231``,
    ``19850312-1231``, ``19850312 1231``, ``198503121231``.  The date must
    exist (day − 60 for a samordningsnummer) and not lie after ``today``; the
    Luhn digit is checked over the 10-digit form.  For a 10-digit form the
    century is the one giving the latest birth date not after ``today``; a
    ``+`` separator means the holder is 100 or older, so one century earlier.
    Samordningsnummer with an unknown birth day or month are refused.

Errors are ``InvalidIdentifier`` whose detail is a fixed phrase: no message
ever contains any part of the input, and no exception is chained to one that
might.  Value objects mask themselves in ``repr``/``str``; ``.value`` gives
the full normal form, so writing it anywhere is a visible, deliberate act.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import hmac
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeAlias

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from callvault.core.errors import IntegrityError, InvalidIdentifier, InvalidInput, KeyUnavailable

IdentifierKind: TypeAlias = Literal["phone", "pnr"]

_PHONE = "phone number"
_PNR = "personnummer"
_MAX_TYPED = 64  # longer input is refused before any pattern runs

# ----------------------------------------------------------------- phone numbers

_PHONE_SEPARATORS = re.compile(r"[ \t\u00a0\u2009\u202f.\-\u2010\u2011\u2013/]")
_INTERNATIONAL_TRUNK = re.compile(r"(\+|00)([0-9]{1,3})\(0\)([0-9]+)", re.ASCII)
_NATIONAL_PARENS = re.compile(r"\((0[0-9]{1,3})\)([0-9]+)", re.ASCII)
_PHONE_COMPACT = re.compile(r"\+?[0-9]+", re.ASCII)
# Mobile series 070, 072, 073, 076, 079 always have 9 digits after +46.
_MOBILE_SERIES = frozenset({"70", "72", "73", "76", "79"})


def _phone_error(detail: str) -> InvalidIdentifier:
    return InvalidIdentifier(detail, kind=_PHONE)


def _compact_phone(text: str) -> str:
    """Drop separators and the ``(0)`` / ``(08)`` conventions; digits and a leading + remain."""
    if len(text) > _MAX_TYPED:
        raise _phone_error("too long")
    compact = _PHONE_SEPARATORS.sub("", text)
    if not compact:
        raise _phone_error("empty")
    if m := _INTERNATIONAL_TRUNK.fullmatch(compact):
        compact = m[1] + m[2] + m[3]
    elif m := _NATIONAL_PARENS.fullmatch(compact):
        compact = m[1] + m[2]
    if not _PHONE_COMPACT.fullmatch(compact):
        raise _phone_error("unexpected characters")
    return compact


def _swedish(nsn: str) -> str:
    """E.164 for a Swedish national significant number (the digits after +46)."""
    if nsn.startswith("0"):
        nsn = nsn[1:]  # "+46 070…": a stray trunk prefix, never part of the number
    if not nsn or nsn.startswith("0"):
        raise _phone_error("no area code")
    if len(nsn) < 7:
        raise _phone_error("too few digits")
    if len(nsn) > 9:
        raise _phone_error("too many digits")
    if nsn[:2] in _MOBILE_SERIES and len(nsn) != 9:
        raise _phone_error("wrong length for a mobile number")
    return "+46" + nsn


def normalise_phone(text: str) -> str:
    """Return the E.164 form of a typed phone number or raise ``InvalidIdentifier``."""
    compact = _compact_phone(text)
    if compact.startswith("+"):
        digits = compact[1:]
    elif compact.startswith("00"):
        digits = compact[2:]
    elif compact.startswith("0"):
        return _swedish(compact[1:])
    elif compact.startswith("46"):
        return _swedish(compact[2:])
    else:
        raise _phone_error("no area code or country code")
    if digits.startswith("46"):
        return _swedish(digits[2:])
    if digits.startswith("0"):
        raise _phone_error("no such country code")
    if len(digits) < 8:
        raise _phone_error("too few digits")
    if len(digits) > 15:
        raise _phone_error("too many digits")
    return "+" + digits


# ------------------------------------------------------------------ personnummer

_PNR_CHARS = re.compile(r"[0-9+\- ]*", re.ASCII)
_PNR_SHAPE = re.compile(
    r"(?P<century>1[89]|20)?(?P<yymmdd>[0-9]{6})(?P<sep>[-+ ]?)(?P<serial>[0-9]{4})", re.ASCII
)
_PNR_NORMAL = re.compile(r"(?:18|19|20)[0-9]{10}", re.ASCII)


def _pnr_error(detail: str) -> InvalidIdentifier:
    return InvalidIdentifier(detail, kind=_PNR)


def _luhn_ok(digits: str) -> bool:
    """Luhn over the 10-digit form: weights 2,1,2,… from the left, check digit last."""
    total = 0
    for position, char in enumerate(digits):
        n = int(char) * (2 - position % 2)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _birth_date(year: int, month: int, day_field: int) -> dt.date:
    """The birth date, or ``InvalidIdentifier``; no exception from ``date`` leaks its input."""
    day = day_field - 60 if day_field > 60 else day_field
    if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(year, month)[1]:
        raise _pnr_error("impossible date")
    return dt.date(year, month, day)


def _century_year(yy: int, month: int, day: int, plus: bool, today: dt.date) -> int:
    """Year of a 10-digit form: latest birth date not after ``today``; ``+`` adds a century."""
    year = today.year - (today.year - yy) % 100
    if (year, month, day) > (today.year, today.month, today.day):
        year -= 100
    return year - 100 if plus else year


def normalise_personnummer(text: str, *, today: dt.date) -> str:
    """Return the 12-digit form of a typed personnummer/samordningsnummer.

    ``today`` is the reference date for the century of a 10-digit form and the
    check that the birth date is not in the future.
    """
    if len(text) > _MAX_TYPED:
        raise _pnr_error("too long")
    typed = text.strip()
    if not typed:
        raise _pnr_error("empty")
    if not _PNR_CHARS.fullmatch(typed):
        raise _pnr_error("unexpected characters")
    count = sum(c.isdigit() for c in typed)
    if count < 10:
        raise _pnr_error("too few digits")
    if count > 12:
        raise _pnr_error("too many digits")
    m = _PNR_SHAPE.fullmatch(typed)
    if m is None or (m["century"] and m["sep"] == "+"):
        raise _pnr_error("wrong layout")
    ten = m["yymmdd"] + m["serial"]
    if not _luhn_ok(ten):
        raise _pnr_error("wrong checksum")
    yy, month, day_field = int(ten[0:2]), int(ten[2:4]), int(ten[4:6])
    if m["century"]:
        year = int(m["century"]) * 100 + yy
    else:
        day = day_field - 60 if day_field > 60 else day_field
        year = _century_year(yy, month, day, m["sep"] == "+", today)
    if _birth_date(year, month, day_field) > today:
        raise _pnr_error("date in the future")
    return f"{year:04d}{ten[2:]}"


# ----------------------------------------------------------------- value objects


@dataclass(frozen=True, repr=False)
class PhoneNumber:
    """A caller's phone number in E.164.  ``repr``/``str`` mask the middle digits."""

    e164: str

    def __post_init__(self) -> None:
        # A stored value must be its own normal form; anything else was not made by parse.
        if not isinstance(self.e164, str) or normalise_phone(self.e164) != self.e164:
            raise _phone_error("not in normal form")

    @classmethod
    def parse(cls, text: str) -> PhoneNumber:
        return cls(normalise_phone(text))

    @property
    def value(self) -> str:
        """The full E.164 string; use only where the number is meant to go (sealing, indexing)."""
        return self.e164

    def __str__(self) -> str:
        # Keeps the country code and 2 digits, and the last 2: enough to tell calls apart on a
        # screen, too little to dial.  At least 4 digits are always hidden.
        digits = self.e164[1:]
        return "+" + digits[:4] + "*" * (len(digits) - 6) + digits[-2:]

    def __repr__(self) -> str:
        return f"PhoneNumber({self})"


@dataclass(frozen=True, repr=False)
class PersonalNumber:
    """A personnummer or samordningsnummer as 12 digits.  ``repr``/``str`` hide the last four."""

    digits: str

    def __post_init__(self) -> None:
        ok = isinstance(self.digits, str) and _PNR_NORMAL.fullmatch(self.digits)
        if not ok or not _luhn_ok(self.digits[2:]):
            raise _pnr_error("not in normal form")
        _birth_date(int(self.digits[0:4]), int(self.digits[4:6]), int(self.digits[6:8]))

    @classmethod
    def parse(cls, text: str, *, today: dt.date) -> PersonalNumber:
        return cls(normalise_personnummer(text, today=today))

    @property
    def value(self) -> str:
        """The full 12 digits; use only where the number is meant to go (sealing, indexing)."""
        return self.digits

    @property
    def is_coordination_number(self) -> bool:
        return int(self.digits[6:8]) > 60

    @property
    def birth_date(self) -> dt.date:
        d = self.digits
        return _birth_date(int(d[0:4]), int(d[4:6]), int(d[6:8]))

    def __str__(self) -> str:
        return f"{self.digits[:8]}-****"

    def __repr__(self) -> str:
        return f"PersonalNumber({self})"


def looks_like_personnummer(text: str, *, today: dt.date) -> bool:
    """True if the whole of ``text`` is a valid personnummer/samordningsnummer in a typed form."""
    try:
        normalise_personnummer(text, today=today)
    except InvalidIdentifier:
        return False
    return True


# ------------------------------------------------------------------------ finder

_FIND_PHONE = re.compile(
    r"""
    (?<![0-9+])
    (?:
        (?:\+|00)46[ -]?(?:\(0\)[ -]?|0)?[1-9](?:[ -]?[0-9]){6,8}   # +46 / 0046
      | 467[0-9]{8}                                                  # 46 + mobile, no plus
      | 07[0-9](?:[ -]?[0-9]){7}                                     # mobile 07x
      | 0(?:8|[1-69][0-9]{1,2})[ -]?[0-9]{2,3}(?:[ ]?[0-9]{2,3}){1,2}  # landline area-subscriber
      | \+[1-9](?:[ -]?[0-9]){7,14}                                  # other countries
    )
    (?![0-9])
    """,
    re.ASCII | re.VERBOSE,
)
_FIND_PNR = re.compile(r"(?<![0-9])(?:1[89]|20)?[0-9]{6}[-+ ]?[0-9]{4}(?![0-9])", re.ASCII)
# UUIDs and long hex strings (hashes, object names) are full of digit runs that are not PII.
_HEX_TOKEN = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|(?<![0-9a-f])(?=[0-9]*[a-f])[0-9a-f]{16,}(?![0-9a-f])",
    re.ASCII | re.IGNORECASE,
)


@dataclass(frozen=True)
class IdentifierMatch:
    """One identifier found in text: ``text[start:end]`` is how it was written."""

    kind: IdentifierKind
    start: int
    end: int
    identifier: PhoneNumber | PersonalNumber


def _free_of(taken: list[IdentifierMatch], length: int) -> Callable[[IdentifierMatch], bool]:
    """A test for "overlaps none of ``taken``", linear in the text length."""
    mask = bytearray(length)
    for t in taken:
        mask[t.start : t.end] = b"\x01" * (t.end - t.start)
    return lambda f: not any(mask[f.start : f.end])


def _parse_match(kind: IdentifierKind, m: re.Match[str], today: dt.date) -> IdentifierMatch | None:
    try:
        if kind == "phone":
            return IdentifierMatch(kind, m.start(), m.end(), PhoneNumber.parse(m[0]))
        return IdentifierMatch(kind, m.start(), m.end(), PersonalNumber.parse(m[0], today=today))
    except InvalidIdentifier:
        return None


def find_identifiers(text: str, *, today: dt.date) -> list[IdentifierMatch]:
    """Phone numbers and personnummer written anywhere in ``text``, in order of position.

    Personnummer must pass the date and Luhn checks; phone numbers must follow a
    Swedish prefix pattern (0, 07x, 46 7…, +46, 0046) or be ``+`` and 8–15 digits.
    Digit runs inside UUIDs and long hex strings are ignored.  Where one span
    reads as both, a bare 10-digit run (``0701234569``) counts as a phone number,
    a run with a separator or century (``070123-4569``) as a personnummer.
    """
    hidden = bytearray(len(text))
    for h in _HEX_TOKEN.finditer(text):
        hidden[h.start() : h.end()] = b"\x01" * (h.end() - h.start())

    def found(kind: IdentifierKind, pattern: re.Pattern[str]) -> list[IdentifierMatch]:
        return [
            f
            for m in pattern.finditer(text)
            if not all(hidden[m.start() : m.end()])
            and (f := _parse_match(kind, m, today)) is not None
        ]

    phones, pnrs = found("phone", _FIND_PHONE), found("pnr", _FIND_PNR)
    strong = [p for p in pnrs if p.end - p.start != 10]
    phones = list(filter(_free_of(strong, len(text)), phones))
    free_of_phones = _free_of(phones, len(text))
    pnrs = [p for p in pnrs if p.end - p.start != 10 or free_of_phones(p)]
    return sorted(phones + pnrs, key=lambda found: found.start)


def contains_identifier(text: str, *, today: dt.date) -> bool:
    return bool(find_identifiers(text, today=today))


# ---------------------------------------------------------------- blind indexes

BLIND_INDEX_SIZE = 16
_BLIND_DOMAIN = b"callvault/blind-index/v1\x00"


def blind_index(index_key: bytes, kind: str, normalised: str) -> bytes:
    """Truncated HMAC-SHA-256 of a normalised identifier, for exact-match search.

    Message (every part length-prefixed or fixed, so no two inputs share one)::

        "callvault/blind-index/v1" 0x00 | len(kind): u8 | kind | len(value): u16 BE | value
        kind  = b"phone" | b"pnr"
        value = the ASCII normal form (E.164 or 12 digits); anything else is refused,
                since an index of an un-normalised value would silently never match

    Output: the first 16 bytes of the HMAC.  Search is exact match only, and
    128 bits keep the chance of any collision among 10^9 rows near 10^-21.
    Truncation costs no secrecy: the inputs are few enough (about 10^10) to be
    enumerated by anyone holding ``index_key``, so the key, which comes from its
    own root and never sits in the database, is what protects them.  Equal
    values give equal indexes; that is the point, and it is all they reveal.
    """
    if len(index_key) < 32:
        raise KeyUnavailable("blind-index key shorter than 32 bytes")
    if kind == "phone":
        PhoneNumber(normalised)
    elif kind == "pnr":
        PersonalNumber(normalised)
    else:
        raise InvalidInput("unknown identifier kind")
    kind_bytes, value = kind.encode("ascii"), normalised.encode("ascii")
    message = (
        _BLIND_DOMAIN
        + len(kind_bytes).to_bytes(1, "big")
        + kind_bytes
        + len(value).to_bytes(2, "big")
        + value
    )
    return hmac.new(index_key, message, hashlib.sha256).digest()[:BLIND_INDEX_SIZE]


def blind_index_of(index_key: bytes, identifier: PhoneNumber | PersonalNumber) -> bytes:
    kind = "phone" if isinstance(identifier, PhoneNumber) else "pnr"
    return blind_index(index_key, kind, identifier.value)


# ---------------------------------------------------------------- sealed fields

FIELD_KEY_SIZE = 32
_NONCE_SIZE = 12
_TAG_SIZE = 16
_FIELD_DOMAIN = b"callvault/field/v1\x00"


def field_ad(recording_id: uuid.UUID, field: str) -> bytes:
    """Associated data binding a sealed field to its recording and field name.

    ``recording_id.bytes (16) ‖ field name (ASCII)``: the id has a fixed length,
    so no other (id, field) pair gives the same bytes.
    """
    return recording_id.bytes + field.encode("ascii")


def _field_cipher(key: bytes) -> AESGCM:
    if len(key) != FIELD_KEY_SIZE:
        raise KeyUnavailable("field key must be 32 bytes")
    return AESGCM(key)


def seal_field(key: bytes, value: str, ad: bytes) -> bytes:
    """Encrypt one text field with AES-256-GCM under a fresh random 96-bit nonce.

    Blob layout::

        +-----------+----------------------------+-----------+
        | nonce 12  | ciphertext len(utf-8 value) | tag 16    |
        +-----------+----------------------------+-----------+

    The GCM associated data is ``"callvault/field/v1" 0x00 ‖ ad``, so a blob
    only opens under the same ``ad`` (use :func:`field_ad`) and never as any
    other kind of object sealed under the same key.  Random nonces are safe
    here: a per-recording key seals a handful of fields.
    """
    nonce = os.urandom(_NONCE_SIZE)
    return nonce + _field_cipher(key).encrypt(nonce, value.encode("utf-8"), _FIELD_DOMAIN + ad)


def open_field(key: bytes, blob: bytes, ad: bytes) -> str:
    """Decrypt a blob from :func:`seal_field`.

    Any failure of the blob (short, altered, wrong key, wrong ``ad``) raises the
    one opaque ``IntegrityError``; a key of the wrong size is ``KeyUnavailable``.
    """
    cipher = _field_cipher(key)
    if len(blob) < _NONCE_SIZE + _TAG_SIZE:
        raise IntegrityError()
    try:
        plain = cipher.decrypt(blob[:_NONCE_SIZE], blob[_NONCE_SIZE:], _FIELD_DOMAIN + ad)
        return plain.decode("utf-8")
    except (InvalidTag, UnicodeDecodeError):
        raise IntegrityError() from None
