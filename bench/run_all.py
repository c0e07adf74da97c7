"""Run every benchmark, then print one table of the ratios and targets.

Run: ``.venv/bin/python -m bench.run_all [--only crypto,audit] [--quick]`` (``make bench``)

Each benchmark runs in its own process (so peak RSS, page cache and
SQLAlchemy state are its own) with its defaults, or with tiny sizes under
``--quick``; each writes ``<name>.json`` to the results directory, and the
summary (every row that has a target, and every ratio) goes to
``summary.json``.  A benchmark that crashes is reported and makes the exit
status 1; a missed target does not: benchmarks report, they do not gate.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import Row, report, results_dir

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = (
    "crypto", "ingest", "audit", "search", "http", "extract", "import", "s3", "retention",
    "jobs", "scale",
)  # fmt: skip
# Sizes small enough to run in seconds: for checking that the code still runs.
QUICK_ARGS: dict[str, list[str]] = {
    "crypto": ["--size-mib", "4", "--seconds", "1", "--reads", "20", "--repeat", "1"],
    "ingest": ["--files", "10", "--min-seconds", "2", "--max-seconds", "4"],
    "audit": ["--events", "20", "--group-events", "200", "--batch", "50"],
    "search": ["--rows", "2000", "--queries", "20"],
    "retention": ["--rows", "2000"],
    "scale": ["--rows", "3000", "--queries", "20"],
    "jobs": [
        *("--recordings", "4", "--seconds", "5", "--parts", "2"),
        *("--startup", "4", "--repeat", "1"),
    ],
    "extract": ["--recordings", "2", "--accesses", "50", "--noise", "200"],
    "import": ["--files", "6", "--min-seconds", "2", "--max-seconds", "4"],
    "s3": ["--files", "3", "--seconds", "2", "--reads", "20"],
    "http": [
        *("--recordings", "2", "--minutes", "0.5", "--connections", "4", "--seconds", "2"),
        *("--rounds", "1", "--players", "10", "--sustain-seconds", "2"),
        *("--player-chunk-kib", "16"),
    ],
}


def run(name: str, quick: bool) -> bool:
    """Run one benchmark in a child process; True if it exited cleanly."""
    argv = [sys.executable, "-m", f"bench.bench_{name}", *(QUICK_ARGS[name] if quick else [])]
    print(f"\n### {' '.join(argv[1:])}", flush=True)
    started = time.perf_counter()
    code = subprocess.run(argv, cwd=ROOT, check=False).returncode
    print(f"### {name}: exit {code} after {time.perf_counter() - started:.0f} s", flush=True)
    return code == 0


def summarise(names: list[str], since: float, directory: Path) -> list[Row]:
    """Rows with a target, and ratio rows (unit ``x``), from each fresh result file."""
    rows: list[Row] = []
    for name in names:
        path = directory / f"{name}.json"
        if not path.exists() or path.stat().st_mtime < since:
            rows.append({"bench": name, "measure": "no fresh results", "ok": False})
            continue
        data: dict[str, Any] = json.loads(path.read_text())
        for entry in data["rows"]:
            if entry.get("target") or entry.get("unit") == "x":
                rows.append(
                    {
                        "bench": name,
                        "measure": entry["measure"],
                        "value": entry["value"],
                        "unit": entry.get("unit", ""),
                        "target": entry.get("target", ""),
                        "ok": entry.get("ok", ""),
                    }
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated names")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds, not minutes)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; choose from {', '.join(BENCHMARKS)}")
    since = time.time()
    failed = [name for name in names if not run(name, args.quick)]
    rows = summarise(names, since, results_dir())
    report("summary", rows)
    checked = [r for r in rows if isinstance(r.get("ok"), bool)]
    met = sum(1 for r in checked if r["ok"])
    print(f"targets met: {met} of {len(checked)}; benchmarks failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
