"""Which passwords the vault accepts: pure policy, no hashing, no I/O but one bundled list.

Following NIST SP 800-63B section 3.1.1.2 and OWASP ASVS 5.0 V6.2: a minimum
length (12), a generous maximum, no composition rules, and a refusal of
passwords that attackers try first.  A password is refused when, compared
case-insensitively after Unicode NFKC normalisation, it

- is one of the 10,000 most common leaked passwords
  (``core/data/common-passwords.txt``, made from zxcvbn's frequency list by
  ``callvault.testing.common_passwords``);
- is such a password with digits or symbols put before or after it
  (``Password2024!``, ``!!dragon12345``): length padding adds no strength
  against a guesser who knows the trick;
- is one short piece repeated (``abcabcabcabc``), or uses fewer than five
  distinct characters;
- is a run along the alphabet, the digits or a keyboard row or column
  (``1234567890ab`` is not, ``qwertyuiopas`` is);
- contains the user name (of three or more characters) or the product name.

Every message names the rule and never echoes the password.
"""

from __future__ import annotations

import functools
import unicodedata
from importlib import resources
from typing import Final

from callvault.core.errors import InvalidInput

MIN_LENGTH: Final = 12
MAX_LENGTH: Final = 256
_MIN_DISTINCT = 5
_MIN_CORE = 3  # a shorter word inside padding ("ab" in "ab1234567890") is not a base
_CONTEXT_WORDS = ("callvault",)
# Runs a person makes by sliding along the keyboard or counting; a password
# that is a piece of one of these (either direction) is refused.
_WALKS = (
    "abcdefghijklmnopqrstuvwxyz",
    "0123456789" * 4,
    "qwertyuiopasdfghjklzxcvbnm",
    "qwertzuiopasdfghjklyxcvbnm",
    "azertyuiopqsdfghjklmwxcvbn",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    "qazwsxedcrfvtgbyhnujmikolp",
    "1q2w3e4r5t6y7u8i9o0p",
    "!@#$%^&*()_+",
)


@functools.cache
def common_passwords() -> frozenset[str]:
    """The bundled list, lower-cased; comment lines dropped."""
    text = (
        resources.files("callvault.core")
        .joinpath("data/common-passwords.txt")
        .read_text(encoding="ascii")
    )
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def normalise(password: str) -> str:
    """The form that is checked and hashed: NFKC, so the same password typed
    on another keyboard or system (composed or decomposed accents) matches."""
    return unicodedata.normalize("NFKC", password)


def check_password(password: object, username: str) -> str:
    """Return the normalised password if the policy accepts it; ``InvalidInput`` otherwise."""
    if not isinstance(password, str):
        raise InvalidInput("password must be text")
    text = normalise(password)
    if len(text) < MIN_LENGTH:
        raise InvalidInput(f"password must be at least {MIN_LENGTH} characters long")
    if len(text) > MAX_LENGTH:
        raise InvalidInput(f"password must be at most {MAX_LENGTH} characters long")
    if not text.isprintable():
        raise InvalidInput("password must not contain control characters")
    folded = text.casefold()
    if _is_common(folded):
        raise InvalidInput("password is too common: it is on a list of leaked passwords")
    if _is_repetitive(folded):
        raise InvalidInput("password is too repetitive")
    if _is_walk(folded):
        raise InvalidInput("password is a sequence of neighbouring keys or characters")
    if _mentions(folded, username):
        raise InvalidInput("password must not contain the user name or the product name")
    return text


def _is_common(folded: str) -> bool:
    listed = common_passwords()
    if folded in listed:
        return True
    core = _strip_padding(folded)
    return len(core) >= _MIN_CORE and core in listed


def _strip_padding(folded: str) -> str:
    start, end = 0, len(folded)
    while start < end and not folded[start].isalpha():
        start += 1
    while end > start and not folded[end - 1].isalpha():
        end -= 1
    return folded[start:end]


def _is_repetitive(folded: str) -> bool:
    # A string is a repetition of a shorter unit iff it occurs inside itself
    # doubled at an offset other than 0 and its length.
    repeated = (folded + folded).find(folded, 1) < len(folded)
    return repeated or len(set(folded)) < _MIN_DISTINCT


def _is_walk(folded: str) -> bool:
    return any(folded in walk or folded in walk[::-1] for walk in _WALKS)


def _mentions(folded: str, username: str) -> bool:
    name = username.casefold()
    if len(name) >= _MIN_CORE and (name in folded or name[::-1] in folded):
        return True
    return any(word in folded for word in _CONTEXT_WORDS)
