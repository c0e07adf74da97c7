"""Legacy archive import (``callvault import``) of a 1177-style tree, against ``cp -r``.

Run: ``.venv/bin/python -m bench.bench_import [--files N] [--gib G] [--workers W]``

* Corpus: the ingest benchmark's generator (espeak-ng speech bed, about 70 %
  WAV in three encodings, 30 % MP3 CBR/VBR, every file different), laid out
  the way the exposed 1177 NAS was: ``customer/year/date/number_datetime.ext``
  with a synthetic caller number in every name.  ``--files`` (default 300,
  5-60 s calls) sets the count; ``--files 10000`` is the large-count run and
  ``--gib 1`` makes about 1 GiB of 5-15 minute calls instead.  Generation is
  not timed.
* Peer: ``cp -r`` of the same tree in the same run, page cache warm, best of 3.
* Ours: the real ``callvault import --preset 1177 --workers W`` command
  (default: every core) into a fresh vault (``init`` with its default key
  derivation, one recording policy per unit), timed from process start to
  exit: it walks, decodes, encrypts, writes fsynced objects and commits,
  verifies every record by decrypting it, and journals each file.
* Target: ours / ``cp -r`` >= 0.6 in MB/s.
* Projection: the 1177 archive (2.7 M files, about 170,000 hours) on one
  machine like this one, scaled from the measured audio hours and files per
  second: the slower of the two bounds it from above, the faster from below.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_ingest import Corpus, flush, generate, warm
from bench.common import Row, report, row, target_row, timed
from callvault.testing.lifecycle import policy_cli_args

MB = 1e6
TARGET_VS_CP = 0.6
ARCHIVE_FILES = 2_700_000
ARCHIVE_HOURS = 170_000
GIB_MIN_SECONDS, GIB_MAX_SECONDS = 300.0, 900.0
# The corpus mix at 8 kHz mono, measured on generated files.
BYTES_PER_AUDIO_SECOND = 8_400
ESTIMATE = "1177 archive (2.7 M files, 170,000 h): at most"


def layout(corpus: Corpus, tree: Path) -> list[Path]:
    """Move the generated files into ``customer/year/date/number_datetime.ext``."""
    moved = []
    for path, details in zip(corpus.files, corpus.details, strict=True):
        assert details.caller is not None
        started = details.started_at
        number = "0" + details.caller.value.removeprefix("+46")
        folder = tree / details.care_unit / f"{started:%Y}" / f"{started:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{number}_{started:%Y%m%d_%H%M%S}{path.suffix}"
        if target.exists():  # same caller in the same second: keep both
            target = target.with_name(f"{number}_{started:%Y%m%d_%H%M%S}-{len(moved)}{path.suffix}")
        path.rename(target)
        moved.append(target)
    return moved


def cp_seconds(tree: Path, work: Path, repeat: int = 3) -> float:
    target = work / "cp-copy"
    best = float("inf")
    for _ in range(repeat):
        best = min(
            best, timed(lambda: subprocess.run(["cp", "-r", str(tree), str(target)], check=True))
        )
        shutil.rmtree(target)
    return best


class CliVault:
    """A fresh vault driven through the real command."""

    def __init__(self, work: Path) -> None:
        secret = work / "passphrase"
        secret.write_text("benchmark passphrase\n")
        secret.chmod(0o600)
        self.home = work / "vault"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
        self.env.update(CALLVAULT_HOME=str(self.home), CALLVAULT_PASSPHRASE_FILE=str(secret))

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "callvault", *args]
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, check=False)


def import_tree(
    vault: CliVault, tree: Path, units: list[str], workers: int
) -> tuple[float, dict[str, Any]]:
    for args in (("init",), tuple(policy_cli_args(units))):
        proc = vault.run(*args)
        if proc.returncode:
            raise SystemExit(f"callvault {args[0]} failed: {proc.stderr}")
    start = time.perf_counter()
    proc = vault.run("import", str(tree), "--preset", "1177", "--workers", str(workers), "--json")
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(
            f"callvault import failed ({proc.returncode}): "
            f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return seconds, json.loads(proc.stdout)


def projection(files: int, audio_seconds: float, seconds: float) -> list[Row]:
    """Days for the 1177 archive.  With time = a * files + b * audio, scaling the
    run by the larger of the two ratios bounds it from above, by the smaller from
    below (the corpus has shorter calls than the archive's mean of ~3.8 min)."""
    by_hours = ARCHIVE_HOURS * 3600 / (audio_seconds / seconds)
    by_files = ARCHIVE_FILES / (files / seconds)
    return [
        row("1177 archive: scaled by audio hours", by_hours / 86400, "days"),
        row("1177 archive: scaled by files", by_files / 86400, "days"),
        row(ESTIMATE, max(by_hours, by_files) / 86400, "days"),
        row("1177 archive: at least", min(by_hours, by_files) / 86400, "days"),
    ]


def rows_for(
    corpus: Corpus, files: list[Path], cp: float, ours: float, result: dict[str, Any], workers: int
) -> list[Row]:
    size = sum(p.stat().st_size for p in files)
    n = len(files)
    mix = ", ".join(f"{k} {v}" for k, v in sorted(corpus.kinds.items()))
    imported = result["outcomes"].get("imported", 0)
    rows = [
        row("files", n, "files"),
        row("corpus size", size / MB, "MB"),
        row("audio", corpus.audio_seconds / 3600, "hours"),
        row("mix", mix),
        row("workers", workers, "processes"),
        row("imported and verified", imported, "files"),
        row("cp -r (page cache warm, best of 3)", cp, "s"),
        row("cp -r", size / cp / MB, "MB/s"),
        row("cp -r", n / cp, "files/s"),
        row("ours: callvault import (whole command)", ours, "s"),
        row("ours: callvault import", size / ours / MB, "MB/s"),
        row("ours: callvault import", n / ours, "files/s"),
        row("ours: callvault import", corpus.audio_seconds / 3600 / ours * 3600, "audio hours/h"),
        target_row("import / cp -r (MB/s)", cp / ours, "x", at_least=TARGET_VS_CP),
    ]
    return rows + projection(n, corpus.audio_seconds, ours)


def sizing(args: argparse.Namespace) -> tuple[int, float, float]:
    if args.gib is None:
        return args.files, args.min_seconds, args.max_seconds
    mean = (GIB_MIN_SECONDS + GIB_MAX_SECONDS) / 2
    files = max(1, math.ceil(args.gib * 1024**3 / (mean * BYTES_PER_AUDIO_SECOND)))
    return files, GIB_MIN_SECONDS, GIB_MAX_SECONDS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--files", type=int, default=300, help="files to generate and import")
    parser.add_argument("--min-seconds", type=float, default=5.0, help="shortest call")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="longest call")
    parser.add_argument(
        "--gib", type=float, default=None, help="instead: about G GiB of 5-15 min calls"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=1177)
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temp dir")
    args = parser.parse_args(argv)
    files, min_s, max_s = sizing(args)
    if files < 1 or not 1 <= min_s <= max_s or args.workers < 1:
        parser.error("need --files >= 1, 1 <= --min-seconds <= --max-seconds, --workers >= 1")
    with tempfile.TemporaryDirectory(prefix="cvbench-import-", dir=args.workdir) as tmp:
        work = Path(tmp)
        corpus = generate(work, files, args.seed, min_s, max_s)
        tree = work / "archive"
        paths = layout(corpus, tree)
        flush(paths)
        warm(paths)
        cp = cp_seconds(tree, work)
        units = sorted({d.care_unit for d in corpus.details})
        ours, result = import_tree(CliVault(work), tree, units, args.workers)
        if result["outcomes"] != {"imported": files}:
            raise SystemExit(f"expected {files} imported, got {result['outcomes']}")
        report("import", rows_for(corpus, paths, cp, ours, result, args.workers))


if __name__ == "__main__":
    main()
