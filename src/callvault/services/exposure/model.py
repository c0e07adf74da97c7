"""Findings, per-target results, the request budget and masking of examples.

A finding is something an owner must fix (recordings reachable, personal
data in names, plain HTTP on a TLS port, ...); a note is context that needs
no action (a listing that holds nothing sensitive, a login wall).  Examples
are shown masked the way the core masks identifiers (``+4670*****05``,
``19121212-****``): a report is itself a file that must hold no personal data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from callvault.core.identifiers import find_identifiers

HIGH = "high"
MEDIUM = "medium"

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_INCOMPLETE = 2


def mask(text: str, today: dt.date) -> str:
    """``text`` with every phone number and personnummer replaced by its masked form."""
    out = text
    for found in reversed(find_identifiers(text, today=today)):
        out = out[: found.start] + str(found.identifier) + out[found.end :]
    return out


def identifier_kinds(text: str, today: dt.date) -> set[str]:
    """``{"phone", "pnr"}`` or a subset: which identifiers ``text`` carries."""
    return {found.kind for found in find_identifiers(text, today=today)}


@dataclass
class Finding:
    code: str
    severity: str
    title: str
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "title": self.title,
            "count": self.count,
            "examples": list(self.examples),
        }


@dataclass
class TargetResult:
    """What one target showed; ``error`` set means it could not be scanned (fully)."""

    target: str
    kind: str
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    max_examples: int = 5

    def add(self, code: str, severity: str, title: str, example: str | None = None) -> None:
        """Count one more instance of ``code``; keep the first few (masked) examples."""
        for finding in self.findings:
            if finding.code == code:
                break
        else:
            finding = Finding(code, severity, title)
            self.findings.append(finding)
        finding.count += 1
        room = len(finding.examples) < self.max_examples
        if example is not None and room and example not in finding.examples:
            finding.examples.append(example)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def bump(self, stat: str, by: int = 1) -> None:
        self.stats[stat] = self.stats.get(stat, 0) + by

    def has(self, code: str) -> bool:
        return any(f.code == code for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "kind": self.kind,
            "complete": self.error is None,
            "error": self.error,
            "findings": [f.as_dict() for f in self.findings],
            "notes": list(self.notes),
            "stats": dict(sorted(self.stats.items())),
        }


def exit_code(results: list[TargetResult]) -> int:
    """1 if anything was found, else 2 if any target could not be checked fully, else 0."""
    if any(r.findings for r in results):
        return EXIT_FINDINGS
    if any(r.error for r in results):
        return EXIT_INCOMPLETE
    return EXIT_CLEAN


class BudgetSpent(Exception):
    """The scan reached its request limit."""


class Budget:
    """At most ``max_requests`` operations, at most ``rate`` per second."""

    def __init__(
        self,
        max_requests: int,
        rate: float,
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
    ) -> None:
        self.left = max_requests
        self.interval = 1.0 / rate
        self._sleep, self._monotonic = sleep, monotonic
        self._next = monotonic()
        self.used = 0

    def spend(self) -> None:
        if self.left <= 0:
            raise BudgetSpent
        now = self._monotonic()
        if now < self._next:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + self.interval
        self.left -= 1
        self.used += 1
