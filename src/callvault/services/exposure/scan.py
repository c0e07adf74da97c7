"""``scan``: check each target the owner names and collect one report (R25).

A target is an ``http(s)://`` URL, an ``s3://`` bucket, or a local folder.
Malformed targets are refused before anything is contacted (``InvalidInput``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from callvault.core.errors import InvalidInput
from callvault.services.exposure.directory import DirectoryScan
from callvault.services.exposure.model import TargetResult, exit_code
from callvault.services.exposure.ports import Limits, Tools
from callvault.services.exposure.s3 import S3Scan
from callvault.services.exposure.web import WebScan

MAX_TARGETS = 100


@dataclass(frozen=True)
class ScanReport:
    results: list[TargetResult]

    @property
    def exit_code(self) -> int:
        return exit_code(self.results)

    def as_dict(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "findings": sum(len(r.findings) for r in self.results),
            "targets": [r.as_dict() for r in self.results],
        }


def check_limits(limits: Limits) -> None:
    if not 1 <= limits.max_requests <= 1_000_000:
        raise InvalidInput("--max-requests must be between 1 and 1000000")
    if not 0 < limits.rate <= 1000:
        raise InvalidInput("--rate must be above 0 and at most 1000 requests per second")
    if not 0 <= limits.max_depth <= 64:
        raise InvalidInput("--max-depth must be between 0 and 64")


def _planned(target: str, limits: Limits, tools: Tools) -> WebScan | S3Scan | DirectoryScan:
    if target.startswith(("http://", "https://")):
        return WebScan(target, limits, tools)
    if target.startswith("s3://"):
        return S3Scan(target, limits, tools)
    if "://" in target:
        raise InvalidInput("targets are http(s):// URLs, s3:// buckets or local folders")
    return DirectoryScan(target, limits, tools)


def scan(targets: Sequence[str], limits: Limits, tools: Tools) -> ScanReport:
    """Scan every target in turn, each with its own budget of ``limits``."""
    if not targets:
        raise InvalidInput("name at least one target")
    if len(targets) > MAX_TARGETS:
        raise InvalidInput(f"at most {MAX_TARGETS} targets per run")
    check_limits(limits)
    planned = [_planned(t, limits, tools) for t in targets]  # all validated before any request
    return ScanReport([p.run() for p in planned])
