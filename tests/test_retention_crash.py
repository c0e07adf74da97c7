"""kill -9 during ``callvault retention sweep``: a re-run converges to a clean run's end (R20, R28).

About a thousand due recordings (planted rows with real objects under real bucket
KEKs) and a few ingested calls that must survive (on legal hold, or record
documents) make a sweep long enough to interrupt.  A copy of the vault is
swept once without interruption, to measure the work and to know the end
state.  The original is then killed at spread-out points: after every kill
each surviving call must still decrypt to its source, every shredded
recording must have exactly one receipt, no object may be left that neither
a row nor the shred queue names, and the audit log must verify.  A final
run must reach the clean run's end state.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import shutil
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
from callvault.services import audit, keyring, retention
from callvault.services import vault as vault_service
from callvault.services.details import CallDetails
from callvault.services.ingest import ingest
from callvault.services.recordings import object_reader
from callvault.testing.audio import make_tone_wav
from callvault.testing.lifecycle import allow_ingest, plant_due_rows

PLANTED = 1000
KILLS = 6
PASSPHRASE = "sweep crash test passphrase"
OP = Principal(name="crash-test", role=OPERATOR)


@dataclass
class SweepVault:
    home: Path
    env: dict[str, str]
    keep: dict[uuid.UUID, bytes]  # survivors -> SHA-256 of the source audio
    due: set[uuid.UUID]

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    def copy(self, to: Path) -> SweepVault:
        shutil.copytree(self.home, to / "vault-home", symlinks=True)
        env = {**self.env, "CALLVAULT_HOME": str(to / "vault-home")}
        return SweepVault(to / "vault-home", env, self.keep, self.due)

    def sweep(self, kill_after: float | None) -> tuple[float, bool]:
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "callvault", "retention", "sweep"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if kill_after is None:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
            return time.monotonic() - started, False
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode in (0, -signal.SIGKILL), err
        return time.monotonic() - started, proc.returncode == -signal.SIGKILL


def _call(
    directory: Path, n: int, klass: str, started: str, today: dt.date
) -> tuple[Path, CallDetails]:
    wav = make_tone_wav(directory / f"{n}.wav", 0.2, frequency=300.0 + 11 * n)
    details = CallDetails.parse(
        care_unit="unit-a", started_at=started, today=today, retention_class=klass
    )
    return wav, details


@pytest.fixture
def sweep_vault(tmp_path: Path) -> SweepVault:
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
    vault = create_vault(Settings.from_env(env))
    keep: dict[uuid.UUID, bytes] = {}
    due: set[uuid.UUID] = set()
    try:
        vault_service.initialise(vault, OP)
        assert isinstance(vault.keys, KeyfileProvider)
        vault.keys.change_passphrase(PASSPHRASE.encode(), kdf_params=KdfParams(1, 1024, 1))
        allow_ingest(vault, ["unit-a"])
        (tmp_path / "in").mkdir()
        today = dt.date.today()
        calls = [
            ("quality", "2015-06-03T10:00:00+00:00", "hold"),
            ("quality", "2015-06-04T10:00:00+00:00", "hold"),
            ("record", "2024-03-01T10:00:00+00:00", "keep"),  # ten years not over
            ("quality", "2015-06-05T10:00:00+00:00", "due"),
        ]
        for n, (klass, started, fate) in enumerate(calls):
            wav, details = _call(tmp_path / "in", n, klass, started, today)
            recording_id = ingest(vault, OP, wav, details).recording_id
            if fate == "due":
                due.add(recording_id)
                continue
            keep[recording_id] = hashlib.sha256(wav.read_bytes()).digest()
            if fate == "hold":
                retention.hold(vault, OP, recording_id, "DNR 2015/9")
        due |= set(plant_due_rows(vault, PLANTED))
    finally:
        vault.close()
    return SweepVault(home, env, keep, due)


def plaintext_sha256(vault: object, recording_id: uuid.UUID) -> bytes:
    from callvault.services.context import Vault

    assert isinstance(vault, Vault)
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


@dataclass(frozen=True)
class State:
    rows: frozenset[uuid.UUID]
    buckets: frozenset[str]
    shredded: int
    queued: int


def check(sv: SweepVault) -> State:
    """The invariants that hold after any kill; returns what the vault holds."""
    vault = open_vault(sv.settings)
    try:
        rows = {r.id: r for r in vault.store.iter_recordings()}
        for recording_id, digest in sv.keep.items():
            assert plaintext_sha256(vault, recording_id) == digest
        receipts = [
            r.recording_id for r in vault.store.iter_audit() if r.action == "recording:shred"
        ]
        assert len(receipts) == len(set(receipts)), "a recording was shredded twice"
        gone = sv.due - set(rows)
        assert set(receipts) == gone, "every shredded recording has one receipt, and only they"
        with vault.store.transaction(read_only=True) as tx:
            queued = set(tx.lifecycle.queued_objects(10**6))
            buckets = frozenset(f"{b.month}/{b.retention_class}" for b in tx.bucket_keks())
        stored = set(vault.blobs.names())
        assert stored <= {r.object_name for r in rows.values()} | queued, "orphaned objects"
        assert {r.object_name for r in rows.values()} <= stored, "a live recording lost its object"
        report = audit.check(vault)
        assert report.ok, report.problems
    finally:
        vault.close()
    return State(frozenset(rows), buckets, len(receipts), len(queued))


@pytest.mark.slow
def test_sigkill_at_any_point_of_a_sweep_converges_to_the_clean_end_state(
    sweep_vault: SweepVault, tmp_path: Path
) -> None:
    """R20/R28: idempotent and resumable; held calls and record documents untouched."""
    clean = sweep_vault.copy(tmp_path / "clean")
    work, _ = clean.sweep(None)
    expected = check(clean)
    assert expected.rows == frozenset(sweep_vault.keep)
    assert expected.shredded == PLANTED + 1 and expected.queued == 0
    assert expected.buckets == frozenset({"2015-06/quality", "2024-03/record"})

    # A sweep with nothing to do is start-up and shut-down only; the rest is work.
    idle, _ = clean.sweep(None)
    busy = max(work - idle, 0.5)
    rng = random.Random(20260225)
    interrupted, before = 0, check(sweep_vault)
    for _attempt in range(5 * KILLS):
        if interrupted == KILLS:
            break
        # Each kill takes a small bite of what is left, so several land inside
        # even when a loaded machine makes start-up times vary.
        _, killed = sweep_vault.sweep(idle * 0.8 + busy * rng.uniform(0.02, 0.2))
        state = check(sweep_vault)
        if state == expected:
            break
        interrupted += killed and state != before
        before = state
    assert interrupted >= 2, f"only {interrupted} kills landed inside a sweep"
    sweep_vault.sweep(None)
    assert check(sweep_vault) == expected
