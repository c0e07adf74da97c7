"""Background jobs: integrity-scrub throughput of 1 and 2 worker processes, against peers.

Run: ``.venv/bin/python -m bench.bench_jobs [--recordings N] [--seconds S] [--parts P]``

* Setup: an embedded vault (SQLite WAL, local objects) with ``--recordings``
  ingested calls of ``--seconds`` of audio each.
* Ours: the scrub split into ``--parts`` ``scrub_range`` jobs (the periodic
  scrub's own split), run by N ``callvault worker`` processes, N = 1
  then 2, on the embedded queue.  Each object is read, hashed (SHA-256
  against the row), its key commitment checked and every segment decrypted
  and authenticated; a ``vault:verify`` entry per range.  The jobs become
  ready once every worker has started; timed from the first job's start to
  the last job's end, so neither start-up nor the first poll is counted.  The scaling ratio is the
  2-worker throughput over the 1-worker one; on a 2-core machine it can at
  best approach 2.
* Peers, on the same objects: one process doing the same checks in a loop
  without any queue (the floor for ours at N = 1), and ``openssl dgst
  -sha256`` over every object file (hashing alone: a lower bound on any scrub,
  which must also decrypt).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import bench_principal, make_vault, report, row
from callvault.core.jobs import JobKind, id_ranges
from callvault.services.context import Vault
from callvault.services.details import CallDetails
from callvault.services.ingest import ingest
from callvault.services.verify import check_recording
from callvault.testing.audio import make_tone_wav

PASSPHRASE = "benchmark passphrase"


def fill(vault: Vault, tmp: Path, count: int, seconds: float) -> int:
    """Ingest ``count`` calls; returns the total ciphertext bytes."""
    src = tmp / "src"
    src.mkdir()
    for n in range(count):
        wav = make_tone_wav(src / f"{n}.wav", seconds, frequency=200.0 + 7 * n)
        details = CallDetails.parse(
            care_unit="unit-bench",
            started_at=f"2026-10-{1 + n % 28:02d}T10:{n % 60:02d}:00+00:00",
            today=dt.date(2026, 11, 25),
        )
        ingest(vault, bench_principal(), wav, details)
        wav.unlink()
    return sum(r.ciphertext_size or 0 for r in vault.store.iter_recordings())


def run_workers(vault: Vault, env: dict[str, str], n: int, parts: int, startup: float) -> float:
    """Seconds from the first scrub job's start to the last one's end.

    The jobs are queued to become ready ``startup`` seconds from now, so every
    worker has opened the vault and is polling by then: start-up is not timed.
    """
    assert vault.jobs is not None
    ready = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=startup)
    ids = []
    for lo, hi in id_ranges(parts):
        payload = {"lo": str(lo), "hi": str(hi)}
        ids.append(vault.jobs.enqueue(JobKind.SCRUB_RANGE.value, payload, run_after=ready))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "callvault", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(n)
    ]
    try:
        while True:
            infos = [vault.jobs.job(i) for i in ids if i is not None]
            if all(j is not None and j.state.value in ("done", "failed") for j in infos):
                break
            assert all(p.poll() is None for p in procs), "a worker died"
            time.sleep(0.2)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err.decode(errors="replace")
    assert all(j is not None and j.state.value == "done" for j in infos)
    first = min(j.started_at for j in infos if j and j.started_at)
    return (max(j.updated_at for j in infos if j) - first).total_seconds()


def no_queue(vault: Vault) -> float:
    started = time.perf_counter()
    for r in vault.store.iter_recordings():
        assert check_recording(vault, r) is None
    return time.perf_counter() - started


def openssl(blobs: Path) -> float:
    files = [str(p) for p in blobs.rglob("*") if p.is_file()]
    started = time.perf_counter()
    subprocess.run(["openssl", "dgst", "-sha256", *files], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--recordings", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=600.0, help="audio per recording")
    parser.add_argument("--parts", type=int, default=4, help="scrub_range jobs")
    parser.add_argument("--startup", type=float, default=8.0, help="seconds workers get to start")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cvbench-jobs-", dir=args.workdir) as tmp_name:
        tmp = Path(tmp_name)
        home = tmp / "vault"
        vault = make_vault(home, policy_units=["unit-bench"])
        total_bytes = fill(vault, tmp, args.recordings, args.seconds)
        secret = tmp / "passphrase"
        secret.write_text(PASSPHRASE + "\n")
        secret.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
        env.update(
            CALLVAULT_HOME=str(home),
            CALLVAULT_PASSPHRASE_FILE=str(secret),
            CALLVAULT_JOBS_SCRUB_HOURS="0",
            CALLVAULT_JOBS_SWEEP_MINUTES="0",
        )
        vault.close()
        from callvault.bootstrap import open_vault
        from callvault.config import Settings

        vault = open_vault(Settings.from_env(env))
        timings: dict[int, float] = {}
        # Best of --repeat, alternating N: the machine may be shared, and the
        # least disturbed run is the closest to what the code costs.
        for _ in range(args.repeat):
            for n in (1, 2):
                took = run_workers(vault, env, n, args.parts, args.startup)
                timings[n] = min(timings.get(n, took), took)
        assert vault.jobs is not None
        done = [j for j in vault.jobs.jobs(limit=1000) if j.kind == JobKind.SCRUB_RANGE.value]
        runs = 2 * args.repeat
        assert len(done) == runs * args.parts and all(j.state.value == "done" for j in done)
        assert sum(j.progress_done for j in done) == runs * args.recordings
        peer_seconds = min(no_queue(vault) for _ in range(args.repeat))
        openssl_seconds = min(openssl(home / "data" / "blobs") for _ in range(args.repeat))
        vault.close()

    mib = total_bytes / 1024**2
    per = {n: args.recordings / s for n, s in timings.items()}
    rows = [
        row("recordings", args.recordings, "recordings"),
        row("ciphertext", mib, "MiB"),
        row("scrub_range jobs per run", args.parts, "jobs"),
        row("ours: 1 worker", timings[1], "s"),
        row("ours: 1 worker throughput", per[1], "rec/s"),
        row("ours: 2 workers", timings[2], "s"),
        row("ours: 2 workers throughput", per[2], "rec/s"),
        row("scaling 2 workers / 1 worker [x]", per[2] / per[1], "x"),
        row("peer: one process, no queue", peer_seconds, "s"),
        row(
            "ours 1 worker / no-queue peer (throughput) [x]",
            per[1] * peer_seconds / args.recordings,
            "x",
        ),
        row("peer: openssl dgst -sha256 (hash only)", openssl_seconds, "s"),
        row("openssl hashing rate", mib / openssl_seconds, "MiB/s"),
    ]
    report("jobs", rows)


if __name__ == "__main__":
    main()
