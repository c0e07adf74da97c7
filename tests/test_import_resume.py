"""kill -9 of the real import, again and again, then the same command (R26, R28).

The end state must be the one an uninterrupted import reaches: the same
recordings (no loss, no duplicate), no pending rows, no stray objects, every
verified original moved, nothing in clear on disk.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from callvault.testing.audio import make_mp3, make_tone_wav
from callvault.testing.lifecycle import policy_cli_args
from callvault.testing.scan import find_leaks, identifier_forms

UNIT_FOLDER = "Kund Västra"
UNIT = "1177-gbg"
FILES = 60
PHONE_BASE = 701740600  # +46 70-174 06 xx: PTS's range for fiction


def make_tree(root: Path, n: int = FILES) -> None:
    """``n`` distinct calls (a third MP3) in the 1177 layout, plus two bad files."""
    rng = random.Random(1177)
    for i in range(n):
        folder = root / UNIT_FOLDER / "2019" / f"2019-03-{1 + i % 28:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = f"201903{1 + i % 28:02d}_{8 + i % 10:02d}{i % 60:02d}00"
        wav = folder / f"0{PHONE_BASE + i % 100}_{stamp}.wav"
        make_tone_wav(wav, rng.uniform(1.0, 4.0), frequency=200 + 13 * i)
        if i % 3 == 0:
            make_mp3(wav.with_suffix(".mp3"), wav)
            wav.unlink()
    bad = root / UNIT_FOLDER / "2019" / "2019-03-01"
    (bad / f"0{PHONE_BASE}_20190301_235959.wav").write_bytes(b"RIFF\x00\x00")
    (bad / f"0{PHONE_BASE} med ö.mp3").write_bytes(b"ID3")


class Vault:
    def __init__(self, base: Path, name: str) -> None:
        self.home = base / name
        self.tmpdir = base / f"{name}-tmp"
        self.tmpdir.mkdir(parents=True)
        secret = base / "passphrase"
        if not secret.exists():
            secret.write_text("correct horse battery staple\n")
            secret.chmod(0o600)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
        self.env.update(
            CALLVAULT_HOME=str(self.home),
            CALLVAULT_PASSPHRASE_FILE=str(secret),
            TMPDIR=str(self.tmpdir),
            PYTHONDONTWRITEBYTECODE="1",
        )
        self.cli("init")
        self.cli(*policy_cli_args([UNIT]))

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "callvault", *args]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args), env=self.env, capture_output=True, text=True, timeout=300
        )

    def rows(self) -> list[tuple[object, ...]]:
        db = sqlite3.connect(self.home / "data" / "vault.db")
        try:
            query = (
                "SELECT state, care_unit, started_at, plaintext_size, duration_ms, media_type"
                " FROM recordings"
            )
            return sorted(db.execute(query).fetchall())
        finally:
            db.close()

    def objects(self) -> int:
        return sum(1 for p in (self.home / "data" / "blobs").rglob("*") if p.is_file())


def import_args(source: Path, moved: Path) -> list[str]:
    return [
        "import",
        str(source),
        "--preset",
        "1177",
        "--unit-map",
        f"{UNIT_FOLDER}={UNIT}",
        "--workers",
        "2",
        "--move-originals-to",
        str(moved),
        "--json",
    ]


def _done(vault: Vault) -> int:
    """Files the journal has as done, whatever their outcome."""
    folder = vault.home / "import"
    if not folder.exists():
        return 0
    lines = b"".join(p.read_bytes() for p in folder.iterdir()).splitlines()
    return len({json.loads(line)["k"] for line in lines if b'"s":"done"' in line})


def _wait_for_done(vault: Vault, proc: subprocess.Popen[bytes], count: int) -> None:
    deadline = time.monotonic() + 60
    while _done(vault) < count and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)


def test_import_resumes_after_repeated_kill_9_without_loss_or_duplicates(tmp_path):
    source = tmp_path / "archive"
    make_tree(source)
    calm_source = tmp_path / "archive-copy"
    shutil.copytree(source, calm_source)

    calm = Vault(tmp_path, "calm")
    started = time.monotonic()
    calm_run = calm.cli(*import_args(calm_source, tmp_path / "calm-moved"))
    whole = time.monotonic() - started
    calm_report = json.loads(calm_run.stdout)
    assert calm_report["outcomes"] == {"imported": FILES, "rejected": 2}, calm_run.stderr

    killed = Vault(tmp_path, "killed")
    moved = tmp_path / "killed-moved"
    rng = random.Random(28)
    kills = 0
    progress: list[int] = []
    while kills < 6:
        # A session of its own: the kill takes the parent and every worker at once.
        proc = subprocess.Popen(
            killed.argv(*import_args(source, moved)),
            env=killed.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if kills % 3 == 0:  # during start-up: keys, journal, worker processes
            time.sleep(rng.uniform(0.1, 0.5) * whole)
        else:  # a few files in, then anywhere inside the next ingests
            _wait_for_done(killed, proc, _done(killed) + rng.randint(1, 8))
            time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is not None:
            break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        progress.append(_done(killed))
    assert kills >= 4, "the import finished before it could be interrupted often enough"
    assert len({n for n in progress if 0 < n < FILES}) >= 2, f"no kill landed mid-run: {progress}"

    final = killed.cli(*import_args(source, moved))
    report = json.loads(final.stdout)
    assert report["outcomes"] == calm_report["outcomes"], final.stderr
    assert report["originals"] == {"moved": FILES}

    assert killed.rows() == calm.rows()
    assert {row[0] for row in killed.rows()} == {"active"}
    assert killed.objects() == calm.objects() == FILES
    assert len(list(moved.rglob("*.*"))) == FILES
    assert sorted(p.name for p in source.rglob("*.*")) == sorted(
        p.name for p in calm_source.rglob("*.*")
    ), "only the two bad files stay in the source, in both runs"

    needles = identifier_forms(f"+46{PHONE_BASE}")
    assert find_leaks([killed.home, killed.tmpdir], needles) == []
    journal = next((killed.home / "import").iterdir()).read_bytes()
    assert b"0701740" not in journal and b"Kund" not in journal
