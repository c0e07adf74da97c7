"""Leak scanning for tests: planted identifiers and plaintext audio in written files.

Used by the R3/R4 tests: after a workload that carried known phone numbers
and personnummer, every byte the vault wrote is searched for them in the
forms people type and the forms code normalises to.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from callvault.adapters.audio import starts_with_plaintext_audio


def identifier_forms(phone_e164: str | None = None, personnummer: str | None = None) -> list[bytes]:
    """Byte strings whose presence anywhere would leak the planted values."""
    forms: set[str] = set()
    if phone_e164:
        national = "0" + phone_e164.removeprefix("+46")
        forms |= {phone_e164, phone_e164.lstrip("+"), national, national[1:]}
    if personnummer:
        digits = personnummer.replace("-", "").replace("+", "")
        forms |= {digits, digits[2:], f"{digits[2:8]}-{digits[8:]}", f"{digits[:8]}-{digits[8:]}"}
    encoded: list[bytes] = []
    for form in forms:
        encoded += [form.encode(), form.encode("utf-16-le")]
    return encoded


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]


def find_leaks(roots: Iterable[Path], needles: list[bytes]) -> list[str]:
    """Every (file, problem) where a needle occurs or a file starts like audio."""
    problems = []
    for path in files_under(*roots):
        data = path.read_bytes()
        if starts_with_plaintext_audio(data[:16]):
            problems.append(f"{path}: starts with plaintext audio magic")
        for needle in needles:
            if needle in data:
                problems.append(f"{path}: contains a planted identifier")
                break
        for needle in needles:
            if needle.decode("latin-1") in str(path):
                problems.append(f"{path}: name contains a planted identifier")
                break
    return problems
