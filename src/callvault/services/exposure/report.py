"""Rendering scan and doctor results for people (text) and machines (JSON)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from callvault.services.exposure.model import TargetResult

_VERDICT = {0: "clean", 1: "FINDINGS", 2: "INCOMPLETE"}


def render_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True)


def render_results(results: Iterable[TargetResult], code: int, what: str = "target") -> str:
    lines: list[str] = []
    for result in results:
        kind = "" if result.kind == "check" else f" ({result.kind})"
        lines.append(f"{what} {result.target}{kind}")
        for finding in result.findings:
            lines.append(f"  [{finding.severity.upper()}] {finding.title}: {finding.count}")
            lines.extend(f"      e.g. {example}" for example in finding.examples)
        if result.error:
            lines.append(f"  [INCOMPLETE] {result.error}")
        lines.extend(f"  note: {note}" for note in result.notes)
        if result.stats:
            stats = ", ".join(f"{k}={v}" for k, v in sorted(result.stats.items()))
            lines.append(f"  counted: {stats}")
        if not result.findings and not result.error:
            lines.append("  no findings")
    total = sum(len(r.findings) for r in results) if isinstance(results, list) else None
    summary = f"result: {_VERDICT.get(code, code)}"
    if total is not None:
        summary += f" ({total} finding{'s' if total != 1 else ''})"
    lines.append(summary)
    return "\n".join(lines)
