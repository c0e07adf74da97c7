"""Bulk ingest into the embedded vault, against ``cp -r`` of the same tree.

Run: ``.venv/bin/python -m bench.bench_ingest [--files N] [--profile]``

* Corpus: ``--files`` (default 1000) synthetic calls of 20 s to 3 min at 8 kHz
  mono: about 70 % WAV (16-bit PCM, µ-law, A-law in equal parts) and 30 % MP3
  (lame, half CBR 32 kbit/s, half VBR).  A few espeak-ng phrases are laid
  out as a conversation bed; each file is a different stretch of it at its
  own gain with its own noise, so no two files are alike (the vault would
  refuse a duplicate).  Generation is not timed.
* Peer: ``cp -r`` of the tree after reading it once (page cache warm), best of
  three.  ``cp -r`` followed by ``sync`` of every copied file is also shown:
  the vault makes every object and commit durable, plain ``cp`` does not.
* Ours: ``services.ingest.ingest`` of every file, in process, into a fresh
  vault (SQLite WAL synchronous=FULL, local blob store, key file).  Each
  ingest decodes the whole file, hashes it, encrypts it to a fsynced object
  and commits three metadata transactions, one with its audit entry.  The
  time is split by phase by timing the vault's ports (probe, blob put, DB).
* Decode floor: ``analyse`` (the vault's probe) of every file on its own: the
  full decode that ingest cannot skip (duration from samples, peaks).
* Target: ours / ``cp -r`` >= 0.6 in MB/s.  ``--profile`` then ingests the
  corpus again under cProfile and prints where the time goes.

The generated files are fsynced before anything is timed, so no run pays for
writing back another's dirty pages.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import os
import pstats
import random
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from bench.common import (
    Row,
    bench_principal,
    fake_mobile,
    fake_personnummer,
    make_vault,
    report,
    row,
    target_row,
    timed,
)
from callvault.services.context import Vault
from callvault.services.details import CallDetails
from callvault.services.ingest import ingest
from callvault.testing.audio import SAMPLE_PHRASES_EN, SAMPLE_PHRASES_SV, make_speech_wav
from callvault.testing.audio import require_tool as require_audio_tool

RATE = 8000
MB = 1e6
TARGET_VS_CP = 0.6
# Forty care units, each with a recording policy (ingest refuses a unit without one).
UNITS = tuple(f"unit-{n:02d}" for n in range(40))
# kind -> (extension, libsndfile subtype or lame options)
KINDS: dict[str, tuple[str, Any]] = {
    "pcm16": (".wav", "PCM_16"),
    "ulaw": (".wav", "ULAW"),
    "alaw": (".wav", "ALAW"),
    "mp3-cbr": (".mp3", ["-b", "32"]),
    "mp3-vbr": (".mp3", ["-V", "4"]),
}


@dataclass(frozen=True)
class Corpus:
    root: Path
    files: list[Path]
    details: list[CallDetails]
    kinds: dict[str, int]
    audio_seconds: float

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in self.files)


# --- generation (not timed) ---------------------------------------------------------


def kind_plan(n: int, rng: random.Random) -> list[str]:
    """Exactly round(30 %) MP3 split CBR/VBR, the rest WAV split three ways, shuffled."""
    mp3 = round(0.3 * n)
    wav = n - mp3
    plan = ["mp3-cbr"] * (mp3 - mp3 // 2) + ["mp3-vbr"] * (mp3 // 2)
    for i, kind in enumerate(("pcm16", "ulaw", "alaw")):
        plan += [kind] * (wav // 3 + (1 if i < wav % 3 else 0))
    rng.shuffle(plan)
    return plan


def speech_bed(tmp: Path, seconds: float, rng: random.Random) -> np.ndarray[Any, Any]:
    """Phrases and pauses, two 'speakers' at different levels, at least ``seconds`` long."""
    phrases = []
    for i, text in enumerate((*SAMPLE_PHRASES_SV, *SAMPLE_PHRASES_EN)):
        path = make_speech_wav(tmp / f"phrase{i}.wav", text, voice="en" if i == 3 else "sv")
        data, _ = soundfile.read(str(path), dtype="float32")
        phrases.append(data)
        path.unlink()
    parts: list[np.ndarray[Any, Any]] = []
    total = 0
    while total < seconds * RATE:
        gain = 0.8 if len(parts) % 4 == 0 else 0.45
        parts.append(rng.choice(phrases) * gain)
        parts.append(np.zeros(int(rng.uniform(0.2, 1.5) * RATE), dtype=np.float32))
        total += len(parts[-2]) + len(parts[-1])
    return np.concatenate(parts)


def write_call(path: Path, kind: str, samples: np.ndarray[Any, Any]) -> None:
    ext, how = KINDS[kind]
    if ext == ".wav":
        soundfile.write(str(path), samples, RATE, subtype=how, format="WAV")
        return
    pcm = io.BytesIO()
    soundfile.write(pcm, samples, RATE, subtype="PCM_16", format="WAV")
    cmd = [require_audio_tool("lame"), "--quiet", "-m", "m", *how, "-", str(path)]
    subprocess.run(cmd, input=pcm.getvalue(), check=True, capture_output=True)


def generate(root: Path, n: int, seed: int, min_s: float, max_s: float) -> Corpus:
    rng = random.Random(seed)
    corpus = root / "corpus"
    corpus.mkdir()
    bed = speech_bed(root, max_s + 5, rng)
    plan = kind_plan(n, rng)
    lengths = [rng.uniform(min_s, max_s) for _ in range(n)]
    starts = [rng.randrange(0, len(bed) - int(s * RATE) + 1) for s in lengths]
    files = [corpus / f"call-{i:05d}{KINDS[k][0]}" for i, k in enumerate(plan)]

    def make(i: int) -> None:
        noise_rng = np.random.default_rng([seed, i])
        clip = bed[starts[i] : starts[i] + int(lengths[i] * RATE)]
        noisy = clip * noise_rng.uniform(0.6, 1.0) + noise_rng.normal(0, 0.004, len(clip))
        write_call(files[i], plan[i], np.clip(noisy, -1, 1).astype(np.float32))

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(make, range(n)))
    kinds: dict[str, int] = defaultdict(int)
    for kind in plan:
        kinds[kind] += 1
    return Corpus(corpus, files, call_details(rng, n), dict(kinds), sum(lengths))


def call_details(rng: random.Random, n: int) -> list[CallDetails]:
    """Parsed up front: the service API takes parsed details, parsing is not ingest."""
    today = dt.date.today()
    out = []
    for i in range(n):
        started = dt.datetime(2019, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
            seconds=rng.randrange(365 * 86400)
        )
        out.append(
            CallDetails.parse(
                care_unit=UNITS[rng.randrange(len(UNITS))],
                started_at=started,
                today=today,
                caller=fake_mobile(rng),
                personnummer=fake_personnummer(rng) if rng.random() < 0.6 else None,
                agent=f"agent-{rng.randrange(200)}",
                call_id=f"bench-{i}",
            )
        )
    return out


# --- the peer -----------------------------------------------------------------------


def warm(files: Iterable[Path]) -> None:
    """Read every file once so both sides start from the page cache."""
    for path in files:
        with path.open("rb", buffering=0) as f:
            while f.read(1 << 20):
                pass


def flush(files: list[Path]) -> None:
    """fsync just these files (``sync FILE...``), not the whole machine."""
    subprocess.run(["sync", *map(str, files)], check=True)


def cp_times(corpus: Corpus, work: Path, repeat: int) -> tuple[float, float]:
    """Best ``cp -r`` seconds, and the seconds of one ``cp -r`` + ``sync`` of every copy."""
    target = work / "cp-copy"
    src, dst = str(corpus.root), str(target)
    best = float("inf")
    for _ in range(repeat):
        best = min(best, timed(lambda: subprocess.run(["cp", "-r", src, dst], check=True)))
        shutil.rmtree(target)  # before writeback: ext4 drops the dirty pages
    copied = [target / p.name for p in corpus.files]

    def durable() -> None:
        subprocess.run(["cp", "-r", src, dst], check=True)
        flush(copied)

    durable_seconds = timed(durable)
    shutil.rmtree(target)
    return best, durable_seconds


# --- ours ---------------------------------------------------------------------------


class Phases:
    """Seconds spent inside each of the vault's ports, summed over a run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def instrument(self, vault: Vault) -> None:
        probe, blobs, store = vault.probe, vault.blobs, vault.store

        def timed_probe(path: Path, *, max_bytes: int) -> Any:
            start = time.perf_counter()
            try:
                return probe(path, max_bytes=max_bytes)
            finally:
                self.seconds["probe"] += time.perf_counter() - start

        vault.probe = timed_probe
        vault.blobs = _TimedBlobs(blobs, self.seconds)
        vault.store = _TimedStore(store, self.seconds)


class _TimedBlobs:
    def __init__(self, inner: Any, seconds: dict[str, float]) -> None:
        self._inner, self._seconds = inner, seconds

    def put(self, name: str, chunks: Iterable[bytes]) -> int:
        start = time.perf_counter()
        try:
            return int(self._inner.put(name, chunks))
        finally:
            self._seconds["put"] += time.perf_counter() - start

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _TimedStore:
    def __init__(self, inner: Any, seconds: dict[str, float]) -> None:
        self._inner, self._seconds = inner, seconds

    @contextmanager
    def transaction(self, read_only: bool = False) -> Iterator[Any]:
        start = time.perf_counter()
        try:
            with self._inner.transaction(read_only=read_only) as tx:
                yield tx
        finally:
            self._seconds["db"] += time.perf_counter() - start

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def decode_all(vault: Vault, corpus: Corpus) -> float:
    """Seconds to run the vault's probe (full decode) over every file, nothing else."""
    start = time.perf_counter()
    for path in corpus.files:
        vault.probe(path, max_bytes=vault.max_ingest_bytes)
    return time.perf_counter() - start


def ingest_all(vault: Vault, corpus: Corpus) -> float:
    principal = bench_principal()
    start = time.perf_counter()
    for path, details in zip(corpus.files, corpus.details, strict=True):
        if ingest(vault, principal, path, details).duplicate:
            raise SystemExit("a generated file was taken for a duplicate")
    return time.perf_counter() - start


def profile_ingest(work: Path, corpus: Corpus, top: int = 25) -> None:
    vault = make_vault(work / "vault-profiled", UNITS)
    profiler = cProfile.Profile()
    profiler.runcall(ingest_all, vault, corpus)
    vault.close()
    for order in ("tottime", "cumulative"):
        print(f"\n-- cProfile of the ingest loop, top {top} by {order} --")
        pstats.Stats(profiler).sort_stats(order).print_stats(top)


# --- report -------------------------------------------------------------------------


@dataclass(frozen=True)
class Peers:
    """Seconds of the runs ours is compared with."""

    cp: float
    cp_sync: float
    decode: float


def rows_for(corpus: Corpus, peers: Peers, ours: float, phases: Phases) -> list[Row]:
    size, n = corpus.size, len(corpus.files)
    cp, cp_sync = peers.cp, peers.cp_sync
    mix = ", ".join(f"{k} {v}" for k, v in sorted(corpus.kinds.items()))
    rows = [
        row("files", n, "files"),
        row("corpus size", size / MB, "MB"),
        row("audio", corpus.audio_seconds / 3600, "hours"),
        row("mix", mix),
        row("cp -r (page cache warm, best of 3)", cp, "s"),
        row("cp -r", size / cp / MB, "MB/s"),
        row("cp -r", n / cp, "files/s"),
        row("cp -r + sync of every copied file", size / cp_sync / MB, "MB/s"),
        row("decode floor: analyse() of every file", size / peers.decode / MB, "MB/s"),
        row("ours: ingest", ours, "s"),
        row("ours: ingest", size / ours / MB, "MB/s"),
        row("ours: ingest", n / ours, "files/s"),
    ]
    shares = {
        "decode + probe (analyse)": phases.seconds["probe"],
        "read + SHA-256 + encrypt + write + fsync (blob put)": phases.seconds["put"],
        "metadata DB transactions (incl. audit entry)": phases.seconds["db"],
        "other (SHA-256 pass, HMAC, key wrap, sealing)": ours - sum(phases.seconds.values()),
    }
    rows += [row(f"phase: {k}", 100 * v / ours, "% of ingest") for k, v in shares.items()]
    rows.append(target_row("ingest / cp -r (MB/s)", cp / ours, "x", at_least=TARGET_VS_CP))
    rows.append(row("ingest / (cp -r + sync) (MB/s)", cp_sync / ours, "x"))
    rows.append(row("ingest / decode floor (MB/s)", peers.decode / ours, "x"))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--files", type=int, default=1000, help="files to generate and ingest")
    parser.add_argument("--min-seconds", type=float, default=20.0, help="shortest call")
    parser.add_argument("--max-seconds", type=float, default=180.0, help="longest call")
    parser.add_argument("--seed", type=int, default=1177)
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temp dir")
    parser.add_argument("--profile", action="store_true", help="then ingest again under cProfile")
    args = parser.parse_args(argv)
    if args.files < 1 or not 1 <= args.min_seconds <= args.max_seconds:
        parser.error("need --files >= 1 and 1 <= --min-seconds <= --max-seconds")
    with tempfile.TemporaryDirectory(prefix="cvbench-ingest-", dir=args.workdir) as tmp:
        work = Path(tmp)
        corpus = generate(work, args.files, args.seed, args.min_seconds, args.max_seconds)
        flush(corpus.files)
        warm(corpus.files)
        cp, cp_sync = cp_times(corpus, work, repeat=3)
        vault = make_vault(work / "vault", UNITS)
        decode = decode_all(vault, corpus)
        phases = Phases()
        phases.instrument(vault)
        ours = ingest_all(vault, corpus)
        stored = sum(1 for _ in vault.blobs.names())
        vault.close()
        if stored != args.files:
            raise SystemExit(f"expected {args.files} objects in the blob store, found {stored}")
        report("ingest", rows_for(corpus, Peers(cp, cp_sync, decode), ours, phases))
        if args.profile:
            profile_ingest(work, corpus)


if __name__ == "__main__":
    main()
