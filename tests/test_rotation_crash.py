"""kill -9 during ``callvault keys rotate``: nothing is lost, a re-run converges (R28).

Two hundred recordings spread over fifty call months and two retention
classes (a hundred bucket KEKs) make a rotation long enough to interrupt
in the middle.  After every kill each recording must still export byte for
byte, the key status must be consistent (every bucket KEK wrapped under a
root version that is still held, every recording under exactly one bucket
KEK) and the scrub must pass; a final uninterrupted run must leave one
version per bucket under the one remaining root version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
from callvault.bootstrap import create_vault, open_vault
from callvault.config import Settings
from callvault.core import format as cv1
from callvault.core.access import OPERATOR, Principal
from callvault.services import keyring
from callvault.services import vault as vault_service
from callvault.services.context import Vault
from callvault.services.details import CallDetails
from callvault.services.ingest import ingest
from callvault.services.recordings import export, object_reader
from callvault.services.verify import verify_vault
from callvault.testing.audio import make_tone_wav
from callvault.testing.lifecycle import allow_ingest

RECORDINGS = 200
MONTHS = 50
CLASSES = ("record", "quality")
KILLS = 8
PASSPHRASE = "rotation crash test passphrase"
ADMIN = Principal(name="crash-test", role=OPERATOR)


@dataclass
class CrashVault:
    settings: Settings
    env: dict[str, str]
    key_file: Path
    objects: Path
    sources: dict[uuid.UUID, bytes]  # recording id -> SHA-256 of the ingested file
    out: Path

    def popen_rotate(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "callvault", "keys", "rotate"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def run(self, *args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "callvault", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout


def call_start(n: int) -> tuple[str, str]:
    """Call ``n``'s start time and retention class: fifty months, two classes."""
    month = n % MONTHS
    year, month0 = divmod(month, 12)
    started = dt.datetime(2015 + year, month0 + 1, 1 + n % 27, 9, 30, tzinfo=dt.UTC)
    return started.isoformat(), CLASSES[(n // MONTHS) % len(CLASSES)]


@pytest.fixture
def crash_vault(tmp_path: Path) -> CrashVault:
    """The vault is made and filled in-process (fast); only rotation runs as a command."""
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    home, scratch = tmp_path / "vault-home", tmp_path / "vault-tmp"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
    env.update(
        CALLVAULT_HOME=str(home),
        CALLVAULT_PASSPHRASE_FILE=str(secret),
        TMPDIR=str(scratch),
        PYTHONDONTWRITEBYTECODE="1",
    )
    settings = Settings.from_env(env)
    vault = create_vault(settings)
    try:
        vault_service.initialise(vault, ADMIN)
        allow_ingest(vault, ["1177-sthlm"])
        assert isinstance(vault.keys, KeyfileProvider)
        # The lowest Argon2 cost: each command then opens the key file in milliseconds.
        vault.keys.change_passphrase(PASSPHRASE.encode(), kdf_params=KdfParams(1, 1024, 1))
        sources = _fill(vault, tmp_path / "in")
    finally:
        vault.close()
    out = tmp_path / "out"
    out.mkdir()
    return CrashVault(
        settings, env, home / "keys" / "callvault.key", home / "data" / "blobs", sources, out
    )


def _fill(vault: Vault, directory: Path) -> dict[uuid.UUID, bytes]:
    directory.mkdir()
    today = dt.date.today()
    sources = {}
    for n in range(RECORDINGS):
        wav = make_tone_wav(directory / f"{n}.wav", 0.25, frequency=300.0 + 7 * n)
        started_at, retention_class = call_start(n)
        details = CallDetails.parse(
            care_unit="1177-sthlm",
            started_at=started_at,
            today=today,
            retention_class=retention_class,
        )
        result = ingest(vault, ADMIN, wav, details)
        sources[result.recording_id] = hashlib.sha256(wav.read_bytes()).digest()
    return sources


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def rotate_until(cv: CrashVault, delay: float | None) -> tuple[float, bool]:
    """Run ``keys rotate``; SIGKILL it ``delay`` seconds after it starts rotating.

    The root key is rotated first, which replaces the key file, so a new inode
    marks the start of the real work (interpreter start-up is not counted).
    Returns (seconds from that start to the end, whether the process was killed).
    """
    inode = cv.key_file.stat().st_ino
    proc = cv.popen_rotate()
    while cv.key_file.stat().st_ino == inode and proc.poll() is None:
        time.sleep(0.001)
    started = time.monotonic()
    if delay is None:
        assert proc.wait(timeout=120) == 0
        return time.monotonic() - started, False
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    code = proc.wait(timeout=120)
    assert code in (0, -signal.SIGKILL), f"keys rotate failed on its own (exit code {code})"
    return time.monotonic() - started, code == -signal.SIGKILL


@dataclass(frozen=True)
class Check:
    mid_rotation: bool  # more than one root, or more than one version of some bucket
    buckets: dict[tuple[str, str], tuple[int, int, int]]  # -> (version, root, recordings)
    root_current: int
    root_versions: list[int]


def plaintext_sha256(vault: Vault, recording_id: uuid.UUID) -> bytes:
    """Decrypt a recording the way export does, without writing it or an audit entry."""
    with vault.store.transaction() as tx:
        row = tx.get_recording(recording_id)
    assert row is not None and row.ciphertext_size is not None
    dek = keyring.dek_for(vault, row)
    ad = cv1.associated_data(row.id, row.dek_id, row.media_type)
    cv1.check_commitment(dek, ad, row.commitment)
    digest = hashlib.sha256()
    for chunk in cv1.decrypt_stream(dek, ad, object_reader(vault, row), row.ciphertext_size):
        digest.update(chunk)
    return digest.digest()


def check_consistent_and_readable(
    cv: CrashVault, attempt: int, *, export_all: bool = False
) -> Check:
    """Every recording decrypts to its source, keys are consistent, the scrub passes.

    Exporting through the service writes (and syncs) one audit entry per
    recording, so it is done for every recording only where ``export_all``.
    """
    vault = open_vault(cv.settings)
    try:
        status = keyring.status(vault, ADMIN)
        held = set(status.root_versions)
        assert status.root_current in held
        per_bucket: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
        for month, klass, version, root, count in status.buckets:
            assert root in held, f"bucket {month}/{klass} v{version} under a missing root"
            per_bucket.setdefault((month, klass), []).append((version, root, count))
        assert len(per_bucket) == MONTHS * len(CLASSES)
        assert sum(b[4] for b in status.buckets) == RECORDINGS

        for n, (recording_id, digest) in enumerate(cv.sources.items()):
            if export_all:
                out = cv.out / f"{attempt}-{n}.wav"
                export(vault, ADMIN, recording_id, out, "rotation crash test")
                assert hashlib.sha256(out.read_bytes()).digest() == digest
                out.unlink()
            else:
                assert plaintext_sha256(vault, recording_id) == digest

        report = verify_vault(vault, ADMIN)
        assert report.ok, report.problems
        assert report.recordings_checked == RECORDINGS
    finally:
        vault.close()
    mid = len(held) > 1 or any(len(v) > 1 for v in per_bucket.values())
    newest = {key: max(versions) for key, versions in per_bucket.items()}
    return Check(mid, newest, status.root_current, sorted(held))


@pytest.mark.slow
def test_sigkill_at_any_point_of_rotation_loses_nothing_and_a_rerun_converges(
    crash_vault: CrashVault,
) -> None:
    cv = crash_vault
    objects = snapshot(cv.objects)
    assert len(objects) == RECORDINGS

    # One uninterrupted rotation measures how long the real work takes.
    work, killed = rotate_until(cv, None)
    assert not killed
    first = check_consistent_and_readable(cv, -1, export_all=True)
    assert not first.mid_rotation and first.root_versions == [2]

    rng = random.Random(20190218)
    landed_inside = 0
    for attempt in range(2 * KILLS):
        if landed_inside == KILLS:
            break
        # Slot k of KILLS equal slots of the measured duration, jittered within it.
        delay = work * (landed_inside + rng.random()) / KILLS
        elapsed, killed = rotate_until(cv, delay)
        state = check_consistent_and_readable(cv, attempt)
        if killed and state.mid_rotation:
            landed_inside += 1
        else:
            # It finished before the kill: the machine is faster than when measured.
            work = min(work, elapsed)
    assert landed_inside >= KILLS // 2, f"only {landed_inside} kills hit a rotation in progress"

    _, killed = rotate_until(cv, None)
    assert not killed
    final = check_consistent_and_readable(cv, KILLS, export_all=True)
    assert not final.mid_rotation
    assert final.root_versions == [final.root_current]  # every older root retired
    assert all(root == final.root_current for _, root, _ in final.buckets.values())
    assert all(version > first.buckets[key][0] for key, (version, _, _) in final.buckets.items())
    per_bucket = {key: count for key, (_, _, count) in final.buckets.items()}
    assert per_bucket == {key: count for key, (_, _, count) in first.buckets.items()}

    assert snapshot(cv.objects) == objects  # audio was never re-encrypted or rewritten
    assert [p.name for p in cv.key_file.parent.iterdir()] == [cv.key_file.name]
    assert f"held: {final.root_current}\n" in cv.run("keys", "status")
    assert cv.run("verify").splitlines()[-1] == "OK"
